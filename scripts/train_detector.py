"""Rule train_detector: one detector variant on the internal training subjects -> its model folder."""

import torch

from cmbflow.logs import setup_logging
from cmbflow.training.variant import train_variant

setup_logging(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
train_variant(snakemake.wildcards.variant, snakemake.params.config, snakemake.params.subjects, snakemake.params.spacing,
              dict(snakemake.output.items()), snakemake.params.checkpoint, snakemake.params.held_out,
              workflow_dir=snakemake.params.workflow_dir)
