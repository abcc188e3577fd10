# Detection evaluation per variant x annotated dataset (before / after anatomical filtering),
# the tables that compare models and sites, and the figures of the paper's results.


rule evaluate_detection:
    input:
        candidates=paths.candidate_files("{variant}", "{dataset}")["table"],
        operating_point=lambda wildcards: operating_point_file(wildcards.variant, wildcards.dataset),
        network=paths.region_segmentations("{dataset}"),
        annotations=evaluation_inputs,
    output:
        **paths.evaluation_files("{variant}", "{dataset}"),
    params:
        subjects=lambda wildcards: evaluation_subjects(wildcards.dataset),
        hit_rule=config["evaluation"]["hit_rule"],
        score_threshold=config["census"]["score_threshold"],
        margin_mm=config["region_margin_mm"],
        choice=config["localization"],
        bootstrap=config["evaluation"]["bootstrap"],
        seed=config["evaluation"]["seed"],
        valdo_distance_voxels=config["evaluation"]["valdo_distance_voxels"],
    log:
        paths.log("evaluation", "evaluate_{variant}_{dataset}"),
    benchmark:
        paths.benchmark("evaluation", "evaluate_{variant}_{dataset}")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
    conda:
        "../envs/figures.yaml"
    script:
        "../scripts/evaluate_detection.py"


rule evaluation_tables:
    input:
        summaries=lambda wildcards: [paths.evaluation_files(v, d)["summary"] for v in VARIANTS for d in evaluated_datasets()],
        localization=[paths.localization_accuracy()] if TRUTH_DATASETS else [],
    output:
        models=report(
            paths.evaluation_table("models_by_site", ".tsv"),
            caption="../report/models_by_site.rst",
            category="Evaluation",
            subcategory="Tables",
            labels={"table": "models x sites (Table 1/4)", "format": "TSV"},
        ),
        models_md=paths.evaluation_table("models_by_site", ".md"),
        localization_md=paths.evaluation_table("localization", ".md"),
        literature=report(
            paths.evaluation_table("literature", ".md"),
            caption="../report/literature.rst",
            category="Evaluation",
            subcategory="Tables",
            labels={"table": "published results (other data)", "format": "Markdown"},
        ),
    params:
        runs=lambda wildcards: [{"variant": v, "dataset": d, "summary": paths.evaluation_files(v, d)["summary"]}
                                for v in VARIANTS for d in evaluated_datasets()],
        literature=os.path.join(workflow.basedir, "report", "literature.tsv"),
    log:
        paths.log("evaluation", "evaluation_tables"),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../envs/figures.yaml"
    script:
        "../scripts/evaluation_tables.py"


rule paired_comparison:
    input:
        tables=lambda wildcards: [paths.evaluation_files(v, d)[k] for v in VARIANTS for d in evaluated_datasets()
                                  for k in ("matched", "lesions")],
    output:
        table=report(
            paths.evaluation_table("paired_differences", ".tsv"),
            caption="../report/paired_differences.rst",
            category="Evaluation",
            subcategory="Tables",
            labels={"table": "paired differences between variants", "format": "TSV"},
        ),
        markdown=paths.evaluation_table("paired_differences", ".md"),
        png=report(
            paths.figure("models", "paired_differences")["png"],
            caption="../report/paired_differences.rst",
            category="Evaluation",
            subcategory="Tables",
            labels={"table": "paired differences between variants", "format": "forest plot"},
        ),
        pdf=paths.figure("models", "paired_differences")["pdf"],
    params:
        runs=lambda wildcards: {d: {v: paths.evaluation_files(v, d) for v in VARIANTS} for d in evaluated_datasets()},
        subjects=lambda wildcards: {d: test_subjects(d) for d in evaluated_datasets()},
        bootstrap=config["evaluation"]["bootstrap"],
        seed=config["evaluation"]["seed"],
    log:
        paths.log("evaluation", "paired_comparison"),
    benchmark:
        paths.benchmark("evaluation", "paired_comparison")
    threads: 1
    resources:
        mem_mb=1500,
        runtime=15,
    conda:
        "../envs/figures.yaml"
    script:
        "../scripts/paired_comparison.py"


rule site_figures:
    input:
        tables=lambda wildcards: [paths.evaluation_files(v, wildcards.dataset)[k] for v in VARIANTS
                                  for k in ("summary", "froc", "froc_band", "pr", "matched", "subjects")],
        split=split_first,  # the params read the test subjects
    output:
        froc=report(paths.figure("{dataset}", "froc")["png"], caption="../report/froc.rst", category="Evaluation",
                    subcategory="{dataset}", labels={"dataset": "{dataset}", "figure": "FROC (Fig. 9a)"}),
        froc_pdf=paths.figure("{dataset}", "froc")["pdf"],
        pr=report(paths.figure("{dataset}", "precision_recall")["png"], caption="../report/precision_recall.rst",
                  category="Evaluation", subcategory="{dataset}", labels={"dataset": "{dataset}", "figure": "precision-recall (Fig. 9b)"}),
        pr_pdf=paths.figure("{dataset}", "precision_recall")["pdf"],
        fps=report(paths.figure("{dataset}", "fp_per_subject")["png"], caption="../report/fp_per_subject.rst",
                   category="Evaluation", subcategory="{dataset}", labels={"dataset": "{dataset}", "figure": "FPs per subject (Fig. 10)"}),
        fps_pdf=paths.figure("{dataset}", "fp_per_subject")["pdf"],
        counts=report(paths.figure("{dataset}", "count_agreement")["png"], caption="../report/count_agreement.rst",
                      category="Evaluation", subcategory="{dataset}", labels={"dataset": "{dataset}", "figure": "census counts (Bland-Altman)"}),
        counts_pdf=paths.figure("{dataset}", "count_agreement")["pdf"],
    params:
        runs=lambda wildcards: {v: paths.evaluation_files(v, wildcards.dataset) for v in VARIANTS},
        subjects=lambda wildcards: test_subjects(wildcards.dataset),
    log:
        paths.log("figures", "site_figures_{dataset}"),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../envs/figures.yaml"
    script:
        "../scripts/site_figures.py"


rule feature_embedding:
    input:
        weights=lambda wildcards: detector_model(wildcards.variant)["weights"],
        card=lambda wildcards: detector_model(wildcards.variant)["card"],
        candidates=paths.candidate_files("{variant}", "{dataset}")["table"],
        evaluation=lambda wildcards: [paths.evaluation_files(wildcards.variant, wildcards.dataset)[k] for k in ("matched", "lesions", "summary")],
        images=lambda wildcards: [p for files in segmentation_subjects(wildcards.dataset).values() for p in files.values()],
    output:
        table=paths.figure("{variant}/{dataset}", "tsne")["png"].replace(".png", ".tsv"),
        png=report(paths.figure("{variant}/{dataset}", "tsne")["png"], caption="../report/tsne.rst", category="Evaluation",
                   subcategory="{dataset}", labels={"dataset": "{dataset}", "figure": "t-SNE (Fig. 7)", "variant": "{variant}"}),
        pdf=paths.figure("{variant}/{dataset}", "tsne")["pdf"],
    params:
        subjects=lambda wildcards: {key: preproc_inputs(wildcards.dataset, key, ("swi", "phase", "brainmask"))
                                    for key in test_subjects(wildcards.dataset)},
        evaluation=lambda wildcards: paths.evaluation_files(wildcards.variant, wildcards.dataset),
        seed=config["evaluation"]["seed"],
        cpu_bfloat16=config["detector"]["inference"]["cpu_bfloat16"],  # as inference computed the candidates' vectors
    log:
        paths.log("figures", "tsne_{variant}_{dataset}"),
    benchmark:
        paths.benchmark("figures", "tsne_{variant}_{dataset}")
    threads: 1
    resources:
        mem_mb=3000,
        runtime=15,
    conda:
        "../envs/detector.yaml"
    script:
        "../scripts/feature_embedding.py"


rule example_figures:
    input:
        tables=lambda wildcards: [path for files in example_runs(wildcards.dataset).values() for path in files.values()],
        network=paths.region_segmentations("{dataset}"),
        images=lambda wildcards: [paths.preproc_subject_files(wildcards.dataset, key)[kind]
                                  for key in test_subjects(wildcards.dataset) for kind in ("swi", "regions")],
        # the saliency beside each panel runs every variant's model on its subject's inputs
        models=lambda wildcards: [detector_model(v)[kind] for v in VARIANTS for kind in ("weights", "card")],
        inputs=lambda wildcards: [path for subject in detection_subjects(wildcards.dataset).values() for path in subject["files"].values()],
    output:
        panels=report(paths.figure("{dataset}", "candidate_panels")["png"], caption="../report/candidate_panels.rst",
                      category="Evaluation", subcategory="{dataset}", labels={"dataset": "{dataset}", "figure": "candidates (Fig. 8)"}),
        panels_pdf=paths.figure("{dataset}", "candidate_panels")["pdf"],
        filtered=report(paths.figure("{dataset}", "anatomical_filtering")["png"], caption="../report/filtered_candidates.rst",
                        category="Evaluation", subcategory="{dataset}", labels={"dataset": "{dataset}", "figure": "filtering (Fig. 11)"}),
        filtered_pdf=paths.figure("{dataset}", "anatomical_filtering")["pdf"],
    params:
        runs=lambda wildcards: example_runs(wildcards.dataset),
        swi=lambda wildcards: {key: paths.preproc_subject_files(wildcards.dataset, key)["swi"] for key in test_subjects(wildcards.dataset)},
        # the map drawn under the candidates: the network's unless localization is atlas only
        regions=lambda wildcards: {key: files[maps_of(config["localization"])[0]] for key, files in region_maps(wildcards.dataset).items()},
        filtered_variant=FULL_VARIANT or VARIANTS[-1],  # the full model (a run of fine-tuned models alone: the last)
        models=lambda wildcards: {v: {kind: detector_model(v)[kind] for kind in ("weights", "card")} for v in VARIANTS},
        subjects=lambda wildcards: {key: subject["files"] for key, subject in detection_subjects(wildcards.dataset).items()},
    log:
        paths.log("figures", "examples_{dataset}"),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=5,
    conda:
        "../envs/figures.yaml"
    script:
        "../scripts/example_figures.py"


rule feature_levels:
    input:
        models=[detector_model(v)[k] for v in (BASELINE, FUSED) if v for k in ("weights", "card")],
        lesions=lambda wildcards: paths.evaluation_files(BASELINE, figure_dataset())["lesions"],
        images=lambda wildcards: [path for key in test_subjects(figure_dataset())
                                  for path in preproc_inputs(figure_dataset(), key, ("swi", "phase", "brainmask")).values()],
    output:
        png=report(paths.figure("models", "feature_levels")["png"], caption="../report/feature_levels.rst",
                   category="Detector", subcategory="Feature fusion", labels={"figure": "decoder levels, baseline vs FFM (Fig. 6)"}),
        pdf=paths.figure("models", "feature_levels")["pdf"],
    params:
        models={v: (detector_model(v)["weights"], detector_model(v)["card"]) for v in (BASELINE, FUSED) if v},
        # every test subject's files: the script draws the first one with a CMB (from the lesions table)
        subjects=lambda wildcards: {key: preproc_inputs(figure_dataset(), key, ("swi", "phase", "brainmask"))
                                    for key in test_subjects(figure_dataset())},
    log:
        paths.log("figures", "feature_levels"),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=5,
    conda:
        "../envs/detector.yaml"
    script:
        "../scripts/feature_levels.py"
