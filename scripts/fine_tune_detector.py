"""Rule fine_tune_detector: a trained detector tuned on a dataset's calibration subjects -> a new model folder."""

import torch

from cmbflow.logs import setup_logging
from cmbflow.training.fine_tune import fine_tune_detector

setup_logging(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
fine_tune_detector(snakemake.wildcards.name, snakemake.input.parent_weights, snakemake.input.parent_card,
                   snakemake.params.settings, snakemake.params.subjects,
                   {k: snakemake.output[k] for k in ("weights", "card", "curves", "curves_png")},
                   snakemake.params.checkpoint, snakemake.params.held_out, snakemake.params.config,
                   workflow_dir=snakemake.params.workflow_dir, show_progress=snakemake.config["progress_bars"])
