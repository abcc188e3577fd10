"""Rule example_figures: candidate panels with saliency (Fig. 8) and anatomical filtering (Fig. 11) of one dataset."""

from cmbflow.figures.site_examples import example_figures
from cmbflow.logs import setup_logging

setup_logging(snakemake.log[0])
example_figures(snakemake.params.runs, snakemake.params.swi, snakemake.params.regions, snakemake.wildcards.dataset,
                snakemake.params.filtered_variant, dict(snakemake.output), snakemake.params.models, snakemake.params.subjects)
