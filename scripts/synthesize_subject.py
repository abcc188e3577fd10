"""Rule synthesize_subject: simulate one subject of a synthetic site and write its files."""

from cmbflow.logs import setup_logging
from cmbflow.synth.cohort import make_simulator, synthesize_subject
from cmbflow.synth.randomize import Randomization
from cmbflow.sites import SiteParams

setup_logging(snakemake.log[0])
site = SiteParams.from_config(snakemake.wildcards.site, snakemake.params.site)
simulator = make_simulator(snakemake.input.atlas, workers=snakemake.threads, contrast=site.anatomy_contrast,
                           tissue_path=snakemake.input.tissue)
synthesize_subject(simulator, site, snakemake.wildcards.subject, snakemake.params.seed, dict(snakemake.output.items()),
                   Randomization.from_config(snakemake.params.randomization))
