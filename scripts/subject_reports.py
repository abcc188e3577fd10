"""Rule subject_reports: the census of the report variant on one dataset -> a PDF and an HTML report per subject."""

from cmbflow.figures.subject_report import ReportModels, SubjectFiles, write_subject_reports
from cmbflow.logs import setup_logging
from cmbflow.models.card import operating_threshold, threshold_source

setup_logging(snakemake.log[0])
point, configured = snakemake.input.operating_point, snakemake.params.score_threshold
models = ReportModels((snakemake.params.variant, snakemake.params.detector), snakemake.params.localizer,
                      operating_threshold(point, configured), threshold_source(point, configured))
write_subject_reports(snakemake.wildcards.dataset, {key: SubjectFiles(**files) for key, files in snakemake.params.subjects.items()},
                      snakemake.input.cmbs, snakemake.input.counts, models, snakemake.output[0],
                      snakemake.params.choice, snakemake.params.margin_mm)
