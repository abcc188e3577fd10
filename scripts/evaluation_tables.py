"""Rule evaluation_tables: models x sites, localization and literature tables (TSV + Markdown)."""

import logging
from pathlib import Path

import pandas as pd

from cmbflow.evaluation.tables import markdown, models_by_site
from cmbflow.logs import setup_logging

setup_logging(snakemake.log[0])
models = models_by_site(snakemake.params.runs)
models.to_csv(snakemake.output.models, sep="\t", index=False, float_format="%.4f")
Path(snakemake.output.models_md).write_text(markdown(
    models, "Detection: models x sites",
    "Sensitivity, FPs per subject, precision and F1 at each variant's operating point; CPM (95 % bootstrap "
    "interval) and AP over all candidates; before and after anatomical filtering. CMBs rated possible (cmbs_possible: "
    "hidden in a signal void, docs/method.md) are left out of every number but cpm_all_cmbs, which scores them as definite."))
if snakemake.input.localization:
    localization = pd.read_csv(snakemake.input.localization[0], sep="\t")
    text = markdown(localization, "Anatomical localization", "Region accuracy at the true CMB centres and Dice per "
                    "class against the generator's true region map: network vs warped atlas.")
else:
    text = "# Anatomical localization\n\nNo dataset with true region maps (synthetic sites only).\n"
Path(snakemake.output.localization_md).write_text(text)
literature = pd.read_csv(snakemake.params.literature, sep="\t", dtype=str).fillna("")
Path(snakemake.output.literature).write_text(markdown(
    literature, "Published results (other data)",
    "**Other data, not comparable one to one**: numbers as the publications report them, on their own cohorts "
    "(see shared/reference/method-paper.md)."))
logging.getLogger("cmbflow").info("models x sites:\n%s", models.to_string(index=False))
