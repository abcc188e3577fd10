"""Rule detect_cmbs: one trained variant over the test subjects of one dataset -> candidate tables."""

from cmbflow.device import prepare_cpu
from cmbflow.inference.run import run_detection
from cmbflow.logs import setup_logging

setup_logging(snakemake.log[0])
prepare_cpu(snakemake.threads)
run_detection(snakemake.input.weights, snakemake.input.card, snakemake.params.subjects, snakemake.params.options,
              {"table": snakemake.output.table}, snakemake.params.subject_tables,
              snakemake.params.probability_maps, show_progress=snakemake.params.progress)
