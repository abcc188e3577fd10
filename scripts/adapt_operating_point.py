"""Rule adapt_operating_point: a detector's operating point moved to one dataset's background
scores, without labels -> operating_point.json."""

from cmbflow.evaluation.site_adaptation import write_adapted_operating_point
from cmbflow.logs import setup_logging

setup_logging(snakemake.log[0])
write_adapted_operating_point(snakemake.input.operating_point, snakemake.input.detections, snakemake.params.brainmasks,
                              snakemake.params.options, snakemake.params.inference, snakemake.wildcards.dataset,
                              snakemake.output[0])
