"""Rule export_census: a variant's census on one dataset -> per subject a 3D Slicer markups file and a label map."""

from cmbflow.localization.export import export_census
from cmbflow.logs import setup_logging

setup_logging(snakemake.log[0])
export_census(snakemake.input.cmbs, snakemake.params.originals, snakemake.wildcards.variant, snakemake.wildcards.dataset)
