"""Rule detection_sensitivity: sensitivity at fixed false positives per subject, per variant x dataset."""

import logging

from cmbflow.evaluation.detection import sensitivity_table
from cmbflow.logs import setup_logging

setup_logging(snakemake.log[0])
table = sensitivity_table(snakemake.params.runs, snakemake.params.masks)
table.to_csv(snakemake.output[0], sep="\t", index=False, float_format="%.3f")
logging.getLogger("cmbflow").info("sensitivity:\n%s", table.to_string(index=False))
