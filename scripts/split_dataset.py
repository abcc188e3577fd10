"""Rule split_dataset (a checkpoint): the seeded split of a dataset's subjects (internal:
train/test; train: all train; external: calibration/test), decided here once; every later rule reads this table."""

import logging
from collections import Counter

import pandas as pd

from cmbflow.config import dataset_split, write_split
from cmbflow.logs import setup_logging

setup_logging(snakemake.log[0])
manifest = pd.read_csv(snakemake.input[0], sep="\t", dtype={"key": str, "subject": str})
split = dataset_split(list(manifest["key"]), snakemake.params.dataset, snakemake.params.split)
write_split(snakemake.output[0], split)
logging.getLogger("cmbflow").info("split: %s", dict(Counter(split.values())))
