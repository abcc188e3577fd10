"""Rule evaluate_detection: one variant's candidates on one annotated dataset -> FROC, PR, operating-point metrics."""

from cmbflow.evaluation.detection import HitRule
from cmbflow.evaluation.run import evaluate_detection
from cmbflow.logs import setup_logging
from cmbflow.models.card import operating_threshold, threshold_source

setup_logging(snakemake.log[0])
evaluate_detection(snakemake.input.candidates, snakemake.params.subjects, HitRule.from_config(snakemake.params.hit_rule),
                   operating_threshold(snakemake.input.operating_point, snakemake.params.score_threshold), dict(snakemake.output),
                   snakemake.params.margin_mm, snakemake.params.bootstrap, snakemake.params.seed,
                   threshold_source(snakemake.input.operating_point, snakemake.params.score_threshold),
                   snakemake.params.choice, snakemake.params.valdo_distance_voxels)
