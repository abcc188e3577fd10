# The input contract: every dataset is validated before anything heavy, then split.
# DICOM datasets are converted first, one job per subject, into results/dicom/<dataset>/.


rule convert_dicom:
    output:
        **paths.dicom_subject_files("{dataset}", "{subject}"),
    params:
        folder=lambda wildcards: dicom_subjects(wildcards.dataset, config["datasets"][wildcards.dataset])[wildcards.subject],
        settings=lambda wildcards: dict(config["datasets"][wildcards.dataset]["dicom"]),
    log:
        paths.log("inputs", "dicom_{dataset}_sub-{subject}"),
    threads: 1
    priority: 10  # before validation, which waits for it
    resources:
        mem_mb=2000,  # dcm2niix holds one series; an rms echo combination all echoes of one
        runtime=10,
    conda:
        "../envs/io.yaml"
    wildcard_constraints:
        dataset=dataset_constraint(NO_PHASE_DATASETS, among=False),
    script:
        "../scripts/convert_dicom.py"


# A DICOM dataset without phase (config `phase: false`): the magnitude alone.
use rule convert_dicom as convert_dicom_without_phase with:
    output:
        **{kind: path for kind, path in paths.dicom_subject_files("{dataset}", "{subject}").items() if not kind.startswith("phase")},
    wildcard_constraints:
        dataset=dataset_constraint(NO_PHASE_DATASETS, among=True),


rule validate_dataset:
    input:
        dataset_input_files,
    output:
        report(
            paths.output("inputs", "{dataset}", suffix="manifest", ext=".tsv"),
            caption="../report/manifest.rst",
            category="QC",
            subcategory="Inputs",
            labels={"dataset": "{dataset}"},
        ),
    params:
        dataset=lambda wildcards: dataset_settings(wildcards.dataset),
        tolerance_mm=config["validation"]["affine_tolerance_mm"],
    log:
        paths.log("inputs", "validate_{dataset}"),
    threads: 1
    priority: 10  # a bad input fails first, before the atlas, template or synthesis jobs take the cores
    resources:
        mem_mb=2000,  # one subject's volumes at a time
        runtime=15,
    conda:
        "../envs/io.yaml"
    script:
        "../scripts/validate_dataset.py"


checkpoint split_dataset:  # every later rule reads the table it writes (common.smk, split_of)
    input:
        paths.output("inputs", "{dataset}", suffix="manifest", ext=".tsv"),
    output:
        paths.output("inputs", "{dataset}", suffix="split", ext=".tsv"),
    params:
        dataset=lambda wildcards: config["datasets"][wildcards.dataset],
        split=config["split"],
    log:
        paths.log("inputs", "split_{dataset}"),
    threads: 1
    priority: 10  # seconds of work that every training waits for (run 6: it ran after other sites' subjects)
    resources:
        mem_mb=500,
        runtime=5,
    conda:
        "../envs/io.yaml"
    script:
        "../scripts/split_dataset.py"
