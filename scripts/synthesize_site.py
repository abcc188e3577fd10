"""Rule synthesize_site: dataset_description.json and participants.tsv of a synthetic site."""

from pathlib import Path

from cmbflow.logs import setup_logging
from cmbflow.synth.cohort import write_dataset_files
from cmbflow.sites import SiteParams

setup_logging(snakemake.log[0])
site = SiteParams.from_config(snakemake.wildcards.site, snakemake.params.site)
write_dataset_files(site, Path(snakemake.output.description).parent, list(snakemake.input.markers))
