"""Rule preprocess_subject: one subject into the model-ready frame, plus its QC figure."""

from cmbflow.preprocessing.antsimage import set_threads

set_threads(snakemake.threads)  # before ANTs starts its thread pool

import pandas as pd  # noqa: E402

from cmbflow.figures.registration_qc import registration_qc  # noqa: E402
from cmbflow.logs import setup_logging  # noqa: E402
from cmbflow.preprocessing.subject import PreprocSettings, TemplateFiles, preprocess_subject  # noqa: E402

setup_logging(snakemake.log[0])
key = snakemake.wildcards.subject
manifest = pd.read_csv(snakemake.input.manifest, sep="\t", dtype=str, keep_default_na=False).set_index("key")
template = TemplateFiles(snakemake.input.template_image, snakemake.input.template_regions, snakemake.input.template_brainmask)
settings = PreprocSettings.from_config(snakemake.params.options, snakemake.params.target_spacing)
result = preprocess_subject(key, manifest.loc[key].to_dict(), snakemake.params.dataset, template, settings,
                            dict(snakemake.output.items()), truth_regions=snakemake.input.truth[0] if snakemake.input.truth else None)
registration_qc(result.swi, result.regions, result.brainmask, result.grid, result.markers, snakemake.output.qc,
                title=f"{snakemake.wildcards.dataset} sub-{key}: normalized SWI, warped MARS atlas, CMB markers")
