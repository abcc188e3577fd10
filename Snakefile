# cmbflow: cerebral microbleed detection, anatomical localization and evaluation.
# See README.md; configuration in config.yaml, validated by schemas/config.schema.yaml.

import os

from snakemake.utils import min_version, validate

from cmbflow.config import check_config, datasets_from_cli

min_version("9.0")


# Defaults live beside this Snakefile, so `snakemake -d WORKDIR` still finds them.
configfile: os.path.join(workflow.basedir, "config.yaml")


# A `datasets:` mapping passed with --configfile replaces the synthetic cohort (see README).
if (user_datasets := datasets_from_cli(workflow.overwrite_configfiles)) is not None:
    config["datasets"] = user_datasets
validate(config, "schemas/config.schema.yaml")
check_config(config)


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/atlas.smk"
include: "rules/synth.smk"
include: "rules/inputs.smk"
include: "rules/preproc.smk"


rule all:
    input:
        final_outputs(),
    default_target: True
