"""Rule synthesize_subject: simulate one subject of a synthetic site and write its files."""

from cmbflow.logs import setup_logging
from cmbflow.synth.cohort import synthesize_subject
from cmbflow.synth.site import SiteParams

setup_logging(snakemake.log[0])
site = SiteParams.from_config(snakemake.wildcards.site, snakemake.params.site)
synthesize_subject(site, snakemake.wildcards.subject, snakemake.params.seed, snakemake.input.atlas,
                   dict(snakemake.output.items()), workers=snakemake.threads)
