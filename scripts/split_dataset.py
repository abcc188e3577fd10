"""Rule split_dataset: seeded train/test split of an internal dataset's subjects."""

import logging

import pandas as pd

from cmbflow.config import split_subjects
from cmbflow.logs import setup_logging

setup_logging(snakemake.log[0])
manifest = pd.read_csv(snakemake.input[0], sep="\t", dtype={"key": str, "subject": str})
split = split_subjects(list(manifest["key"]), snakemake.params.test_fraction, snakemake.params.seed)
table = pd.DataFrame({"key": list(split), "split": list(split.values())})
table.to_csv(snakemake.output[0], sep="\t", index=False)
logging.getLogger("cmbflow").info("split: %s", table["split"].value_counts().to_dict())
