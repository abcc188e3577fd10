"""Rule synth_overview: QC figure of the first subjects of a synthetic site."""

from cmbflow import paths
from cmbflow.figures.qc import cohort_overview
from cmbflow.logs import setup_logging

setup_logging(snakemake.log[0])
site = snakemake.params.site
subjects = [{"name": f"sub-{s}", **paths.synth_subject_files(site, s)} for s in snakemake.params.subjects]
cohort_overview(subjects, snakemake.output[0], title=f"Synthetic site '{site}': CMBs circled")
