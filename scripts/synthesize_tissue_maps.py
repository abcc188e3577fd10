"""Rule synthesize_tissue_maps: the template's tissue parameter maps from one of its images, built once."""

from cmbflow.logs import setup_logging
from cmbflow.synth.cohort import write_tissue_maps

setup_logging(snakemake.log[0])
write_tissue_maps(snakemake.wildcards.contrast, snakemake.output.maps)
