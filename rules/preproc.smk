# Per subject: N4, template registration, atlas into subject space, model-ready grid.
# One job per (dataset, subject); validation of the whole dataset comes first.


rule preprocess_subject:
    input:
        manifest=paths.output("inputs", "{dataset}", suffix="manifest", ext=".tsv"),
        images=subject_files,
        template_image=TEMPLATE["image"],
        template_regions=TEMPLATE["regions"],
        template_brainmask=TEMPLATE["brainmask"],
        truth=truth_regions,
    output:
        **preproc_files("{dataset}", "{subject}"),
        qc=registration_qc_figure(),
    params:
        dataset=lambda wildcards: input_settings(wildcards.dataset),
        options=config["preprocessing"],
        target_spacing=TARGET_SPACING,
    log:
        paths.log("preproc", "{dataset}_sub-{subject}"),
    benchmark:
        paths.benchmark("preproc", "{dataset}_sub-{subject}")
    threads: config["preprocessing"]["threads"]
    priority: training_subject_first
    resources:
        mem_mb=4000,  # measured peak ~0.9 GB at the default scale; 1 mm isotropic data needs more
        runtime=20,
    wildcard_constraints:
        dataset=dataset_constraint(NO_PHASE_DATASETS, among=False),
    conda:
        "../envs/preproc.yaml"
    script:
        "../scripts/preprocess_subject.py"


# The same job for a dataset without phase (config `phase: false`): no phase image out.
use rule preprocess_subject as preprocess_subject_without_phase with:
    output:
        **preproc_files("{dataset}", "{subject}", phase=False),
        qc=registration_qc_figure(),
    wildcard_constraints:
        dataset=dataset_constraint(NO_PHASE_DATASETS, among=True),


rule registration_quality:
    input:
        lambda wildcards: [
            paths.preproc_subject_files(wildcards.dataset, key)["quality"] for key in SUBJECTS[wildcards.dataset]
        ],
    output:
        report(
            paths.registration_quality("{dataset}"),
            caption="../report/registration_quality.rst",
            category="Registration QC",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "table": "registration quality"},
        ),
    log:
        paths.log("preproc", "{dataset}_registration_quality"),
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    conda:
        "../envs/io.yaml"
    script:
        "../scripts/registration_quality.py"
