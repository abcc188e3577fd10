"""Rule paired_comparison: paired subject-level bootstrap of ΔCPM and Δsensitivity between every variant pair."""

import logging

from pathlib import Path

from cmbflow.evaluation.paired import paired_table
from cmbflow.evaluation.tables import markdown
from cmbflow.figures.evaluation import plot_paired_differences
from cmbflow.logs import setup_logging

setup_logging(snakemake.log[0])
table = paired_table(snakemake.params.runs, snakemake.params.subjects, snakemake.params.bootstrap, snakemake.params.seed)
table.to_csv(snakemake.output.table, sep="\t", index=False, float_format="%.4f")
Path(snakemake.output.markdown).write_text(markdown(
    table, "Paired differences between variants",
    "b − a per dataset, before and after anatomical filtering; 95 % intervals from a paired subject-level bootstrap "
    "(the same subjects drawn for both variants in each replicate); p_not_better: share of replicates with b ≤ a."))
plot_paired_differences(table, "Paired differences between variants (after anatomical filtering)", snakemake.output.png,
                        snakemake.output.pdf)
logging.getLogger("cmbflow").info("paired differences:\n%s", table.to_string(index=False))
