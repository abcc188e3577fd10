# cmbflow: cerebral microbleed detection, anatomical localization and evaluation.
# See README.md; configuration in config.yaml, validated by schemas/config.schema.yaml.

import os

from snakemake.utils import min_version

from cmbflow.config import apply_replaced, check_config, expand_user_paths, replaced_from_cli, validate_config

min_version("9.0")


# Defaults live beside this Snakefile, so `snakemake -d WORKDIR` still finds them.
configfile: os.path.join(workflow.basedir, "config.yaml")


# `datasets:` and `detector.variants:` passed with --configfile replace the defaults (see README).
apply_replaced(config, replaced_from_cli(workflow.overwrite_configfiles))
validate_config(config, os.path.join(workflow.basedir, "schemas/config.schema.yaml"),
                [os.path.join(workflow.basedir, "config.yaml"), *workflow.overwrite_configfiles])
expand_user_paths(config)
check_config(config)


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/atlas.smk"
include: "rules/synth.smk"
include: "rules/inputs.smk"
include: "rules/preproc.smk"
include: "rules/detector.smk"
include: "rules/localization.smk"
include: "rules/evaluation.smk"


rule all:
    input:
        final_outputs(),
        scored_outputs,
    default_target: True
