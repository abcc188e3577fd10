"""Rule localization_accuracy: region accuracy at the true CMB centres and Dice, network vs atlas."""

import logging

from cmbflow.evaluation.localization import localization_accuracy
from cmbflow.logs import setup_logging

setup_logging(snakemake.log[0])
table = localization_accuracy(snakemake.params.datasets, snakemake.params.margin_mm)
table.to_csv(snakemake.output[0], sep="\t", index=False, float_format="%.3f")
logging.getLogger("cmbflow").info("localization:\n%s", table.to_string(index=False))
