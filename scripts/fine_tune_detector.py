"""Rule fine_tune_detector: a trained detector tuned on a dataset's calibration subjects -> a new model folder."""

from pathlib import Path

import pandas as pd

from cmbflow.device import prepare_cpu
from cmbflow.figures.curves import plot_training_curves
from cmbflow.logs import setup_logging
from cmbflow.training.fine_tune import fine_tune_detector

# the checkout's git commit goes into the model card; not a rule param, so that moving the checkout retrains nothing
WORKFLOW_DIR = str(Path(snakemake.scriptdir).parent)
setup_logging(snakemake.log[0])
prepare_cpu(snakemake.threads)
fine_tune_detector(snakemake.wildcards.name, snakemake.input.parent_weights, snakemake.input.parent_card,
                   snakemake.params.settings, snakemake.params.subjects,
                   {k: snakemake.output[k] for k in ("weights", "card", "curves", "curves_png")},
                   snakemake.params.checkpoint, snakemake.params.held_out, snakemake.params.config,
                   workflow_dir=WORKFLOW_DIR, show_progress=snakemake.config["progress_bars"])
plot_training_curves(pd.read_csv(snakemake.output.curves, sep="\t"), snakemake.output.curves_png,
                     title=f"{snakemake.wildcards.name}: fine-tuning curves")
