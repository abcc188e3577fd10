"""Rule anatomical_filtering: sensitivity and FPs per subject before / after filtering, per variant x dataset."""

import logging

from cmbflow.evaluation.localization import filtering_table
from cmbflow.logs import setup_logging

setup_logging(snakemake.log[0])
table = filtering_table(snakemake.params.runs, snakemake.params.masks, snakemake.params.thresholds)
table.to_csv(snakemake.output[0], sep="\t", index=False, float_format="%.3f")
logging.getLogger("cmbflow").info("anatomical filtering:\n%s", table.to_string(index=False))
