# The built-in physics-based synthetic cohort: canonical template, one job per subject.


rule synthesize_tissue_maps:
    output:
        maps=paths.synth_tissue_maps("{contrast}"),
    log:
        paths.log("synth", "tissue_{contrast}"),
    benchmark:
        paths.benchmark("synth", "tissue_{contrast}")
    threads: 1
    resources:
        mem_mb=3000,  # the 1 mm template grid and two distance transforms
        runtime=10,
    wildcard_constraints:
        contrast="t1|t2",
    conda:
        "../envs/synth.yaml"
    script:
        "../scripts/synthesize_tissue_maps.py"


rule synthesize_template:
    input:
        atlas=paths.region_atlas(),
        tissue=paths.synth_tissue_maps(site_contrast(config["synth"]["template_site"])),
    output:
        **{name: paths.synth_template(name) for name in ("swi", "phase", "brainmask", "regions")},
    params:
        site=lambda wildcards: site_config(config["synth"]["template_site"]),
        site_name=config["synth"]["template_site"],
    log:
        paths.log("synth", "template"),
    benchmark:
        paths.benchmark("synth", "template")
    threads: 1
    priority: 2  # every subject's preprocessing waits for it: before the subjects of equal priority
    resources:
        mem_mb=3000,  # whole 1 mm template grid with FFT padding
        runtime=10,
    conda:
        "../envs/synth.yaml"
    script:
        "../scripts/synthesize_template.py"


rule synthesize_subject:
    input:
        atlas=paths.region_atlas(),
        tissue=lambda wildcards: paths.synth_tissue_maps(site_contrast(wildcards.site)),
    output:
        **synth_subject_outputs("{site}", "{subject}"),
    params:
        site=lambda wildcards: site_config(wildcards.site),
        seed=config["synth"]["seed"],
        randomization=config["synth"]["randomization"],  # ranges of a `randomize` site's per-subject draws
        progress=config["progress_bars"],
    log:
        paths.log("synth", "site-{site}_sub-{subject}"),
    benchmark:
        paths.benchmark("synth", "site-{site}_sub-{subject}")
    threads: 1  # one subject per core parallelizes better than threaded FFTs
    priority: training_site_first
    resources:
        mem_mb=2500,  # template maps + 1 mm simulation grid (measured ~1.3 GB at default scale)
        runtime=10,
    conda:
        "../envs/synth.yaml"
    script:
        "../scripts/synthesize_subject.py"


rule synthesize_site:
    input:
        markers=lambda wildcards: [
            synth_subject_outputs(wildcards.site, subject)["markers"]
            for subject in site_subjects(wildcards.site)
        ],
    output:
        description=f"{paths.synth_root('{site}')}/dataset_description.json",
        participants=f"{paths.synth_root('{site}')}/participants.tsv",
    params:
        site=lambda wildcards: site_config(wildcards.site),
    log:
        paths.log("synth", "site-{site}"),
    threads: 1
    priority: training_site_first  # the dataset's validation, and so its preprocessing, waits for it
    resources:
        mem_mb=500,
        runtime=5,
    conda:
        "../envs/synth.yaml"
    script:
        "../scripts/synthesize_site.py"


rule synth_overview:
    input:
        lambda wildcards: [
            path
            for subject in site_subjects(wildcards.site)[:4]
            for path in synth_subject_outputs(wildcards.site, subject).values()
        ],
    output:
        report(
            paths.output("qc", "synth_{site}", suffix="overview", ext=".png"),
            caption="../report/synth_overview.rst",
            category="QC",
            subcategory="Synthetic cohort",
            labels={"site": "{site}"},
        ),
    params:
        site=lambda wildcards: wildcards.site,
        subjects=lambda wildcards: site_subjects(wildcards.site)[:4],
    log:
        paths.log("qc", "synth_{site}_overview"),
    threads: 1
    resources:
        mem_mb=1500,
        runtime=5,
    conda:
        "../envs/figures.yaml"
    script:
        "../scripts/synth_overview.py"
