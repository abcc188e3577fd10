"""Rule segment_regions: the localizer over the test subjects of one dataset -> MARS region maps."""

from cmbflow.device import prepare_cpu
from cmbflow.localization.segment import run_segmentation
from cmbflow.logs import setup_logging

setup_logging(snakemake.log[0])
prepare_cpu(snakemake.threads)
run_segmentation(snakemake.input.weights, snakemake.input.card, snakemake.params.subjects, snakemake.params.outputs,
                 show_progress=snakemake.params.progress)
