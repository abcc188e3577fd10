"""Rule site_figures: FROC, precision-recall, FPs per subject and census-count agreement of every variant on one dataset."""

from cmbflow.figures.site import site_figures
from cmbflow.logs import setup_logging

setup_logging(snakemake.log[0])
site_figures(snakemake.params.runs, snakemake.params.subjects, snakemake.wildcards.dataset, dict(snakemake.output))
