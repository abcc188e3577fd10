"""Rule train_localizer: the localization network on the training subjects (internal and role train) -> its folder."""

from pathlib import Path

import pandas as pd

from cmbflow.device import prepare_cpu
from cmbflow.figures.curves import plot_training_curves
from cmbflow.localization.train import train_localizer_model
from cmbflow.logs import setup_logging

# the checkout's git commit goes into the model card; not a rule param, so that moving the checkout retrains nothing
WORKFLOW_DIR = str(Path(snakemake.scriptdir).parent)
setup_logging(snakemake.log[0])
prepare_cpu(snakemake.threads)
train_localizer_model(snakemake.params.config, snakemake.params.subjects, snakemake.params.spacing,
                      dict(snakemake.output.items()), snakemake.params.held_out, workflow_dir=WORKFLOW_DIR,
                      show_progress=snakemake.config["progress_bars"], checkpoint=snakemake.params.checkpoint)
plot_training_curves(pd.read_csv(snakemake.output.curves, sep="\t"), snakemake.output.curves_png,
                     title="localizer: training curves", loss_name="soft Dice + weighted cross-entropy")
