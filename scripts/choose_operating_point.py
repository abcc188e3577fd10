"""Rules choose_operating_point / calibrate_operating_point: a detector's score threshold on
annotated subjects that are never scored -> operating_point.json."""

from cmbflow.device import prepare_cpu
from cmbflow.evaluation.operating_point import write_operating_point
from cmbflow.logs import setup_logging

setup_logging(snakemake.log[0])
prepare_cpu(snakemake.threads)
write_operating_point(snakemake.input.weights, snakemake.input.card, snakemake.params.subjects, snakemake.params.inference,
                      snakemake.output[0], names=snakemake.params.names, source=snakemake.params.source,
                      criterion=snakemake.params.criterion, home_datasets=snakemake.params.get("home_datasets"))
