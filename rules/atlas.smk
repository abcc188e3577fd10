# The MARS region atlas on the ICBM 2009c grid, with the T1w and brain mask it was built on
# (the `icbm_t1` registration template). Used by the synthetic cohort and by registration.


rule build_region_atlas:
    output:
        regions=paths.icbm_template("regions"),
        t1w=paths.icbm_template("t1w"),
        brainmask=paths.icbm_template("brainmask"),
    params:
        lobar_wm_mm=config["atlas"]["lobar_wm_mm"],
        deep_wm_mm=config["atlas"]["deep_wm_mm"],
    log:
        paths.log("atlas", "build_region_atlas"),
    threads: 1
    resources:
        mem_mb=2500,  # three distance transforms of the 1 mm template (8.5 M voxels)
        runtime=10,
    conda:
        "../envs/synth.yaml"
    script:
        "../scripts/build_region_atlas.py"
