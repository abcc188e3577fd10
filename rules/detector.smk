# The detector: one training job per variant (config detector.variants), then one inference
# job per variant x dataset over that dataset's test subjects (raw detections; localization.smk
# adds the regions). Evaluation is in evaluation.smk.


# Not part of the DAG when config `models:` names trained models.
if TRAINING:

    rule train_detector:
        input:
            images=training_files,  # the training split's subjects (read from split.tsv)
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
            subjects=lambda wildcards: training_subjects(),
            held_out=lambda wildcards: held_out_subjects(),
            spacing=TARGET_SPACING,
            checkpoint=lambda wildcards: paths.training_checkpoint(wildcards.variant),
        log:
            paths.log("detector", "train_{variant}"),
        benchmark:
            paths.benchmark("detector", "train_{variant}")
        wildcard_constraints:
            variant="|".join(BASE_VARIANTS),
        threads: config["detector"]["training"]["threads"]
        priority: 1  # training gates everything downstream: before inference and evaluation jobs
        resources:
            mem_mb=6000,  # measured peak ~2 GB (all training volumes in memory) at the default scale
            # ours: 12-16 min on one core; the RetinaNet baseline ~6x that (docs/development.md)
            runtime=lambda wildcards: network_runtime(120 if is_ours(wildcards.variant) else 360),
            gpu=GPU,
        conda:
            "../envs/detector.yaml"
        script:
            "../scripts/train_detector.py"

if OWN_POINTS:

    rule choose_operating_point:
        input:
            weights=lambda wildcards: detector_model(wildcards.variant)["weights"],
            card=lambda wildcards: detector_model(wildcards.variant)["card"],
            images=lambda wildcards: [p for files in operating_subjects(wildcards.variant)[0].values() for p in files.values()],
        output:
            paths.model_files("{variant}")["operating_point"],
        params:
            subjects=lambda wildcards: operating_subjects(wildcards.variant)[0],
            names=lambda wildcards: operating_subjects(wildcards.variant)[1],
            source=lambda wildcards: (f"the {FINE_TUNED[wildcards.variant]['dataset']} subjects it was fine-tuned on"
                                      if wildcards.variant in FINE_TUNED
                                      else "validation subjects of training (model card data_split.validation)"),
            inference=config["detector"]["inference"],  # a change re-runs this rule, not training
            criterion=POINT_CRITERION,
            # config detector.operating_point.subjects: every validation subject, or the home site's alone
            home_datasets=INTERNAL_DATASETS if config["detector"]["operating_point"]["subjects"] == "home" else None,
        wildcard_constraints:
            variant="|".join(OWN_POINTS),
        log:
            paths.log("detector", "operating_point_{variant}"),
        benchmark:
            paths.benchmark("detector", "operating_point_{variant}")
        threads: config["detector"]["inference"]["threads"]
        resources:
            mem_mb=4000,
            runtime=network_runtime(30),
            gpu=GPU,
        conda:
            "../envs/detector.yaml"
        script:
            "../scripts/choose_operating_point.py"


rule calibrate_operating_point:
    input:
        weights=lambda wildcards: detector_model(wildcards.variant)["weights"],
        card=lambda wildcards: detector_model(wildcards.variant)["card"],
        images=lambda wildcards: [p for files in calibration_subject_files(wildcards.dataset).values() for p in files.values()],
    output:
        paths.calibrated_operating_point("{variant}", "{dataset}"),
    params:
        subjects=lambda wildcards: calibration_subject_files(wildcards.dataset),
        names=lambda wildcards: list(calibration_subject_files(wildcards.dataset)),
        source=lambda wildcards: f"calibration subjects of {wildcards.dataset} (datasets.{wildcards.dataset}.calibrate)",
        inference=config["detector"]["inference"],
        criterion=POINT_CRITERION,
    log:
        paths.log("detector", "calibrate_{variant}_{dataset}"),
    benchmark:
        paths.benchmark("detector", "calibrate_{variant}_{dataset}")
    threads: config["detector"]["inference"]["threads"]
    resources:
        mem_mb=4000,
        runtime=network_runtime(30),
        gpu=GPU,
    conda:
        "../envs/detector.yaml"
    script:
        "../scripts/choose_operating_point.py"


rule adapt_operating_point:
    input:
        operating_point=lambda wildcards: detector_model(wildcards.variant)["operating_point"],
        detections=paths.detection_files("{variant}", "{dataset}")["table"],
        brainmasks=lambda wildcards: list(adaptation_brainmasks(wildcards.dataset).values()),
    output:
        paths.adapted_operating_point("{variant}", "{dataset}"),
    params:
        brainmasks=lambda wildcards: adaptation_brainmasks(wildcards.dataset),
        options=config["detector"]["operating_point"],
        inference=config["detector"]["inference"],  # the candidates' search, as the home level's
    log:
        paths.log("detector", "adapt_{variant}_{dataset}"),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../envs/detector.yaml"
    script:
        "../scripts/adapt_operating_point.py"


if FINE_TUNED:

    rule fine_tune_detector:
        input:
            parent_weights=lambda wildcards: parent_model(wildcards.name)["weights"],
            parent_card=lambda wildcards: parent_model(wildcards.name)["card"],
            images=lambda wildcards: [p for files in calibration_subject_files(FINE_TUNED[wildcards.name]["dataset"]).values()
                                      for p in files.values()],
        output:
            weights=paths.model_files("{name}")["weights"],
            card=paths.model_files("{name}")["card"],
            curves=paths.model_files("{name}")["curves"],
            curves_png=report(
                paths.model_files("{name}")["curves_png"],
                caption="../report/training_curves.rst",
                category="Detector",
                subcategory="Fine-tuning",
                labels={"variant": "{name}", "figure": "curves"},
            ),
        params:
            settings=lambda wildcards: FINE_TUNED[wildcards.name],
            parent=lambda wildcards: os.path.dirname(parent_model(wildcards.name)["weights"]),
            subjects=lambda wildcards: calibration_subject_files(FINE_TUNED[wildcards.name]["dataset"]),
            held_out=lambda wildcards: [f"{FINE_TUNED[wildcards.name]['dataset']}/{key}"
                                        for key in test_subjects(FINE_TUNED[wildcards.name]["dataset"])],
            checkpoint=lambda wildcards: paths.training_checkpoint(wildcards.name),
            config=model_config("detector"),
        wildcard_constraints:
            name="|".join(FINE_TUNED),
        log:
            paths.log("detector", "fine_tune_{name}"),
        benchmark:
            paths.benchmark("detector", "fine_tune_{name}")
        threads: config["detector"]["training"]["threads"]
        priority: 1
        resources:
            mem_mb=4000,
            runtime=network_runtime(60),
            gpu=GPU,
        conda:
            "../envs/detector.yaml"
        script:
            "../scripts/fine_tune_detector.py"


rule detect_cmbs:
    input:
        weights=lambda wildcards: detector_model(wildcards.variant)["weights"],
        card=lambda wildcards: detector_model(wildcards.variant)["card"],
        images=detection_files,
    output:
        table=paths.detection_files("{variant}", "{dataset}")["table"],
        subjects=directory(paths.detection_files("{variant}", "{dataset}")["subjects"]),
    params:
        subjects=lambda wildcards: detection_subjects(wildcards.dataset),
        subject_tables=lambda wildcards: {
            key: paths.subject_detections(wildcards.variant, wildcards.dataset, key)
            for key in test_subjects(wildcards.dataset)
        },
        probability_maps=lambda wildcards: (
            {
                key: paths.subject_detections(wildcards.variant, wildcards.dataset, key, "probability")
                for key in test_subjects(wildcards.dataset)
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
        runtime=network_runtime(60),
        gpu=GPU,
    conda:
        "../envs/detector.yaml"
    script:
        "../scripts/detect_cmbs.py"

