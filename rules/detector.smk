# The detector: one training job per variant (config detector.variants), then one inference
# job per variant x dataset over that dataset's test subjects (raw detections; localization.smk
# adds the regions). Evaluation is in evaluation.smk.


# Not part of the DAG when config `models:` names trained models.
if TRAINING:

    rule train_detector:
        input:
            splits=[paths.output("inputs", name, suffix="split", ext=".tsv") for name in INTERNAL_DATASETS],
            images=training_files,
        output:
            weights=paths.model_files("{variant}")["weights"],
            card=paths.model_files("{variant}")["card"],
            curves=report(
                paths.model_files("{variant}")["curves"],
                caption="../report/training_curves.rst",
                category="Detector",
                subcategory="Training",
                labels={"variant": "{variant}", "figure": "curves (table)"},
            ),
            curves_png=report(
                paths.model_files("{variant}")["curves_png"],
                caption="../report/training_curves.rst",
                category="Detector",
                subcategory="Training",
                labels={"variant": "{variant}", "figure": "curves"},
            ),
        params:
            config=model_config("detector"),
            subjects=training_subjects(),
            held_out=[f"{name}/{key}" for name in INTERNAL_DATASETS for key in TEST_SUBJECTS[name]],
            spacing=TARGET_SPACING,
            checkpoint=lambda wildcards: paths.training_checkpoint(wildcards.variant),
            workflow_dir=workflow.basedir,
        log:
            paths.log("detector", "train_{variant}"),
        benchmark:
            paths.benchmark("detector", "train_{variant}")
        threads: config["detector"]["training"]["threads"]
        priority: 1  # training gates everything downstream: before inference and evaluation jobs
        resources:
            mem_mb=6000,  # measured peak ~2 GB (all training volumes in memory) at the default scale
            runtime=120,
            gpu=1 if config["use_gpu"] else 0,  # a cluster GPU for training (SLURM: --gpus=1)
        conda:
            "../envs/detector.yaml"
        script:
            "../scripts/train_detector.py"

    rule choose_operating_point:
        input:
            weights=paths.model_files("{variant}")["weights"],
            card=paths.model_files("{variant}")["card"],  # names the validation subjects
            images=training_files,
        output:
            paths.model_files("{variant}")["operating_point"],
        params:
            subjects=training_subjects(),
            inference=config["detector"]["inference"],  # a change re-runs this rule, not training
        log:
            paths.log("detector", "operating_point_{variant}"),
        benchmark:
            paths.benchmark("detector", "operating_point_{variant}")
        threads: config["detector"]["inference"]["threads"]
        resources:
            mem_mb=4000,
            runtime=30,
        conda:
            "../envs/detector.yaml"
        script:
            "../scripts/choose_operating_point.py"


rule detect_cmbs:
    input:
        weights=lambda wildcards: detector_model(wildcards.variant)["weights"],
        card=lambda wildcards: detector_model(wildcards.variant)["card"],
        images=detection_files,
    output:
        table=paths.detection_files("{variant}", "{dataset}")["table"],
        features=paths.detection_files("{variant}", "{dataset}")["features"],
        subjects=directory(paths.detection_files("{variant}", "{dataset}")["subjects"]),
    params:
        subjects=lambda wildcards: detection_subjects(wildcards.dataset),
        subject_tables=lambda wildcards: {
            key: paths.subject_detections(wildcards.variant, wildcards.dataset, key)
            for key in TEST_SUBJECTS[wildcards.dataset]
        },
        probability_maps=lambda wildcards: (
            {
                key: paths.subject_detections(wildcards.variant, wildcards.dataset, key, "probability")
                for key in TEST_SUBJECTS[wildcards.dataset]
            }
            if config["detector"]["inference"]["probability_maps"]
            else None
        ),
        options=config["detector"]["inference"],
        progress=config["progress_bars"],
    log:
        paths.log("detector", "detect_{variant}_{dataset}"),
    benchmark:
        paths.benchmark("detector", "detect_{variant}_{dataset}")
    threads: config["detector"]["inference"]["threads"]
    resources:
        mem_mb=4000,  # one subject at a time; a 512 x 448 x 72 grid needs ~3 GB (benchmarks/)
        runtime=60,
    conda:
        "../envs/detector.yaml"
    script:
        "../scripts/detect_cmbs.py"

