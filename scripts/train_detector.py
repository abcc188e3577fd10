"""Rule train_detector: one detector variant on the training subjects (internal and role train) -> its model folder."""

from pathlib import Path

import pandas as pd

from cmbflow.device import prepare_cpu
from cmbflow.figures.curves import plot_training_curves
from cmbflow.logs import setup_logging
from cmbflow.training.variant import train_variant

# the checkout's git commit goes into the model card; not a rule param, so that moving the checkout retrains nothing
WORKFLOW_DIR = str(Path(snakemake.scriptdir).parent)
setup_logging(snakemake.log[0])
prepare_cpu(snakemake.threads)
train_variant(snakemake.wildcards.variant, snakemake.params.config, snakemake.params.subjects, snakemake.params.spacing,
              dict(snakemake.output.items()), snakemake.params.checkpoint, snakemake.params.held_out,
              workflow_dir=WORKFLOW_DIR, show_progress=snakemake.config["progress_bars"])
plot_training_curves(pd.read_csv(snakemake.output.curves, sep="\t"), snakemake.output.curves_png,
                     title=f"{snakemake.wildcards.variant}: training curves")
