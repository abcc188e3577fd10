"""Rule synthesize_template: canonical, un-warped SWI-like template and its region atlas."""

from cmbflow.logs import setup_logging
from cmbflow.synth.cohort import synthesize_template
from cmbflow.sites import SiteParams

setup_logging(snakemake.log[0])
site = SiteParams.from_config(snakemake.params.site_name, snakemake.params.site)
synthesize_template(site, snakemake.input.atlas, dict(snakemake.output.items()), workers=snakemake.threads,
                    tissue_path=snakemake.input.tissue)
