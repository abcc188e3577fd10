"""Rule localize_candidates: a variant's detections on one dataset -> candidates with region and kept, and the census."""

from cmbflow.localization.run import run_localization
from cmbflow.logs import setup_logging
from cmbflow.models.card import operating_threshold, threshold_source

setup_logging(snakemake.log[0])
run_localization(snakemake.input.detections, snakemake.params.subjects, snakemake.params.choice, snakemake.params.margin_mm,
                 operating_threshold(snakemake.input.operating_point, snakemake.params.score_threshold),
                 {"table": snakemake.output.table, "cmbs": snakemake.output.cmbs, "counts": snakemake.output.counts},
                 snakemake.params.subject_tables,
                 threshold_source(snakemake.input.operating_point, snakemake.params.score_threshold))
