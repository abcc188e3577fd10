"""Rule train_detector: one detector variant on the training subjects (internal and role train) -> its model folder."""

import pandas as pd
import torch

from cmbflow.figures.curves import plot_training_curves
from cmbflow.logs import setup_logging
from cmbflow.training.variant import train_variant

setup_logging(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
train_variant(snakemake.wildcards.variant, snakemake.params.config, snakemake.params.subjects, snakemake.params.spacing,
              dict(snakemake.output.items()), snakemake.params.checkpoint, snakemake.params.held_out,
              workflow_dir=snakemake.params.workflow_dir, show_progress=snakemake.config["progress_bars"])
plot_training_curves(pd.read_csv(snakemake.output.curves, sep="\t"), snakemake.output.curves_png,
                     title=f"{snakemake.wildcards.variant}: training curves")
