# Anatomical localization: the localizer is trained once; it segments each dataset's test
# subjects into MARS regions; each variant's detections get a region (network and atlas) and
# `kept`, and the census; the evaluation compares network and atlas against the true regions.


# Not part of the DAG when config `models:` names trained models.
if TRAINING:

    rule train_localizer:
        input:
            images=lambda wildcards: [path for files in localizer_subjects().values() for path in files.values()],
        output:
            weights=paths.localizer_files()["weights"],
            card=paths.localizer_files()["card"],
            curves=report(
                paths.localizer_files()["curves"],
                caption="../report/localizer_curves.rst",
                category="Localization",
                subcategory="Training",
                labels={"model": "localizer", "figure": "curves (table)"},
            ),
            curves_png=report(
                paths.localizer_files()["curves_png"],
                caption="../report/localizer_curves.rst",
                category="Localization",
                subcategory="Training",
                labels={"model": "localizer", "figure": "curves"},
            ),
        params:
            config=model_config("localizer"),
            subjects=lambda wildcards: localizer_subjects(),
            held_out=lambda wildcards: held_out_subjects(),
            spacing=TARGET_SPACING,
            checkpoint=paths.training_checkpoint(paths.LOCALIZER),
        log:
            paths.log("localization", "train_localizer"),
        benchmark:
            paths.benchmark("localization", "train_localizer")
        threads: config["localizer"]["threads"]
        priority: 2  # the longest training job: started first, beside the detector trainings, not after them
        resources:
            mem_mb=6000,  # all training volumes with their coordinate channels in memory (~2 GB default)
            runtime=network_runtime(120),
            gpu=GPU,
        conda:
            "../envs/detector.yaml"
        script:
            "../scripts/train_localizer.py"

rule segment_regions:
    input:
        weights=localizer_model()["weights"],
        card=localizer_model()["card"],
        images=lambda wildcards: [path for files in segmentation_subjects(wildcards.dataset).values() for path in files.values()],
    output:
        directory(paths.region_segmentations("{dataset}")),
    params:
        subjects=lambda wildcards: segmentation_subjects(wildcards.dataset),
        outputs=lambda wildcards: {key: paths.region_segmentation(wildcards.dataset, key) for key in test_subjects(wildcards.dataset)},
        progress=config["progress_bars"],
    log:
        paths.log("localization", "segment_{dataset}"),
    benchmark:
        paths.benchmark("localization", "segment_{dataset}")
    threads: config["localizer"]["threads"]
    resources:
        mem_mb=4000,
        runtime=network_runtime(60),
        gpu=GPU,
    conda:
        "../envs/detector.yaml"
    script:
        "../scripts/segment_regions.py"


rule localize_candidates:
    input:
        detections=paths.detection_files("{variant}", "{dataset}")["table"],
        operating_point=lambda wildcards: operating_point_file(wildcards.variant, wildcards.dataset),
        network=paths.region_segmentations("{dataset}"),
        atlas=lambda wildcards: [files["atlas"] for files in region_maps(wildcards.dataset).values()],
    output:
        table=paths.candidate_files("{variant}", "{dataset}")["table"],
        subjects=directory(paths.candidate_files("{variant}", "{dataset}")["subjects"]),
        cmbs=report(
            paths.census_files("{variant}", "{dataset}")["cmbs"],
            caption="../report/census.rst",
            category="Localization",
            subcategory="Census",
            labels={"variant": "{variant}", "dataset": "{dataset}", "table": "CMBs"},
        ),
        counts=report(
            paths.census_files("{variant}", "{dataset}")["counts"],
            caption="../report/census.rst",
            category="Localization",
            subcategory="Census",
            labels={"variant": "{variant}", "dataset": "{dataset}", "table": "counts per region"},
        ),
    params:
        subjects=lambda wildcards: region_maps(wildcards.dataset),
        subject_tables=lambda wildcards: {
            key: paths.subject_candidates(wildcards.variant, wildcards.dataset, key) for key in test_subjects(wildcards.dataset)
        },
        choice=config["localization"],
        margin_mm=config["region_margin_mm"],
        score_threshold=config["census"]["score_threshold"],
    log:
        paths.log("localization", "localize_{variant}_{dataset}"),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/figures.yaml"
    script:
        "../scripts/localize_candidates.py"


rule export_census:
    input:
        cmbs=paths.census_files("{variant}", "{dataset}")["cmbs"],
        originals=lambda wildcards: [subject["original"] for subject in detection_subjects(wildcards.dataset).values()],
    output:
        # per subject: sub-<key>_desc-cmb_markups.mrk.json (3D Slicer) and sub-<key>_desc-cmb_dseg.nii.gz (original grid);
        # which subjects a dataset scores is known only after the split checkpoint
        directory(paths.export_folder("{variant}", "{dataset}")),
    params:
        originals=lambda wildcards: {key: subject["original"] for key, subject in detection_subjects(wildcards.dataset).items()},
    log:
        paths.log("localization", "export_{variant}_{dataset}"),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/figures.yaml"
    script:
        "../scripts/export_census.py"


rule subject_reports:
    input:
        cmbs=lambda wildcards: paths.census_files(REPORT_VARIANT, wildcards.dataset)["cmbs"],
        counts=lambda wildcards: paths.census_files(REPORT_VARIANT, wildcards.dataset)["counts"],
        operating_point=lambda wildcards: operating_point_file(REPORT_VARIANT, wildcards.dataset),
        detector=lambda wildcards: [detector_model(REPORT_VARIANT)[kind] for kind in ("card", "weights")],
        localizer=[localizer_model()[kind] for kind in ("card", "weights")] if config["localization"] != "atlas" else [],
        subjects=lambda wildcards: [path for files in report_subjects(wildcards.dataset).values()
                                    for path in (files["swi"], files["quality"], files["qc"], *files["inputs"].values())],
        network=lambda wildcards: [paths.region_segmentations(wildcards.dataset)] if config["localization"] != "atlas" else [],
    output:
        # per subject: sub-<key>_report.pdf and .html; which subjects a dataset scores is known only after the split checkpoint
        directory(paths.report_folder("{dataset}")),
    params:
        subjects=lambda wildcards: report_subjects(wildcards.dataset),
        variant=REPORT_VARIANT,
        detector=lambda wildcards: detector_model(REPORT_VARIANT),
        localizer=localizer_model() if config["localization"] != "atlas" else None,
        score_threshold=config["census"]["score_threshold"],
        choice=config["localization"],
        margin_mm=config["region_margin_mm"],
    log:
        paths.log("figures", "subject_reports_{dataset}"),
    benchmark:
        paths.benchmark("figures", "subject_reports_{dataset}")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    conda:
        "../envs/figures.yaml"
    script:
        "../scripts/subject_reports.py"


rule localization_accuracy:
    input:
        network=[paths.region_segmentations(d) for d in TRUTH_DATASETS],
        truth=lambda wildcards: [path for d in TRUTH_DATASETS for files in truth_files(d).values() for path in files.values()],
    output:
        report(
            paths.localization_accuracy(),
            caption="../report/localization_accuracy.rst",
            category="Localization",
            subcategory="Evaluation",
            labels={"table": "region accuracy and Dice, network vs atlas"},
        ),
    params:
        datasets=lambda wildcards: {d: {key: {**region_maps(d)[key], **truth_files(d)[key]} for key in test_subjects(d)}
                                    for d in TRUTH_DATASETS},
        margin_mm=config["region_margin_mm"],
    log:
        paths.log("localization", "localization_accuracy"),
    threads: 1
    resources:
        mem_mb=3000,
        runtime=10,
    conda:
        "../envs/figures.yaml"
    script:
        "../scripts/localization_accuracy.py"


rule anatomical_filtering:
    input:
        tables=lambda wildcards: [paths.candidate_files(v, d)["table"] for v in VARIANTS for d in evaluated_datasets()],
        operating_points=lambda wildcards: [operating_point_file(v, d) for v in VARIANTS for d in evaluated_datasets()],
        annotations=lambda wildcards: [path for d in evaluated_datasets() for files in evaluation_subjects(d).values()
                                       for kind, path in files.items() if path and kind != "regions"],
    output:
        report(
            paths.anatomical_filtering(),
            caption="../report/anatomical_filtering.rst",
            category="Localization",
            subcategory="Evaluation",
            labels={"table": "filtering: sensitivity and FPs before / after"},
        ),
    params:
        runs=lambda wildcards: [
            {"variant": v, "dataset": d, "table": paths.candidate_files(v, d)["table"],
             "operating_point": operating_point_file(v, d)}
            for v in VARIANTS
            for d in evaluated_datasets()
        ],
        subjects=lambda wildcards: {d: evaluation_subjects(d) for d in evaluated_datasets()},
        hit_rule=config["evaluation"]["hit_rule"],
        # every candidate, and the operating point (each variant's, unless census.score_threshold is set)
        all_candidates=config["detector"]["inference"]["score_threshold"],
        operating=config["census"]["score_threshold"],
    log:
        paths.log("localization", "anatomical_filtering"),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/figures.yaml"
    script:
        "../scripts/anatomical_filtering.py"
