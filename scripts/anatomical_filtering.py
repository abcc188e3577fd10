"""Rule anatomical_filtering: sensitivity and FPs per subject before / after filtering, per variant x dataset."""

import logging

from cmbflow.evaluation.detection import HitRule
from cmbflow.evaluation.localization import filtering_table
from cmbflow.logs import setup_logging
from cmbflow.models.card import operating_threshold

setup_logging(snakemake.log[0])
runs = [{**run, "thresholds": sorted({snakemake.params.all_candidates, operating_threshold(run["operating_point"], snakemake.params.operating)})}
        for run in snakemake.params.runs]
table = filtering_table(runs, snakemake.params.subjects, HitRule.from_config(snakemake.params.hit_rule))
table.to_csv(snakemake.output[0], sep="\t", index=False, float_format="%.3f")
logging.getLogger("cmbflow").info("anatomical filtering:\n%s", table.to_string(index=False))
