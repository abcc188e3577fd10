"""Rule build_region_atlas: MARS region atlas, brain-extracted T1w and brain mask on the ICBM 2009c grid."""

from cmbflow.atlas import build_region_atlas, load_template
from cmbflow.io.nifti import save_volume
from cmbflow.logs import setup_logging

setup_logging(snakemake.log[0])
template = load_template()
regions = build_region_atlas(template, snakemake.params.lobar_wm_mm, snakemake.params.deep_wm_mm)
save_volume(snakemake.output.regions, regions, template.affine, dtype="uint8")
save_volume(snakemake.output.t1w, template.t1 * template.brain, template.affine, dtype="float32")
save_volume(snakemake.output.brainmask, template.brain, template.affine, dtype="uint8")
