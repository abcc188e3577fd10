"""Rule registration_quality: the per-dataset table of registration quality."""

import logging

import pandas as pd

from cmbflow.logs import setup_logging
from cmbflow.preprocessing.quality import summarize

setup_logging(snakemake.log[0])
table = summarize(pd.concat([pd.read_csv(path, sep="\t", dtype={"subject": str}) for path in snakemake.input]))
table.to_csv(snakemake.output[0], sep="\t", index=False, float_format="%.4f")
flagged = table.loc[table["flag"] == "check", "subject"].tolist()
logging.getLogger("cmbflow").info("%d subjects; flagged for a look: %s", len(table), flagged or "none")
