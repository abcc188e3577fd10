"""Rule split_dataset: seeded split of a dataset's subjects (internal: train/test; external: calibration/test)."""

import logging

import pandas as pd

from cmbflow.config import dataset_split
from cmbflow.logs import setup_logging

setup_logging(snakemake.log[0])
manifest = pd.read_csv(snakemake.input[0], sep="\t", dtype={"key": str, "subject": str})
split = dataset_split(list(manifest["key"]), snakemake.params.dataset, snakemake.params.split)
table = pd.DataFrame({"key": list(split), "split": list(split.values())})
table.to_csv(snakemake.output[0], sep="\t", index=False)
logging.getLogger("cmbflow").info("split: %s", table["split"].value_counts().to_dict())
