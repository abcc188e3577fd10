"""Rule train_localizer: the localization network on the internal training subjects -> its model folder."""

import torch

from cmbflow.localization.train import train_localizer_model
from cmbflow.logs import setup_logging

setup_logging(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
train_localizer_model(snakemake.params.config, snakemake.params.subjects, snakemake.params.spacing,
                      dict(snakemake.output.items()), snakemake.params.held_out, workflow_dir=snakemake.params.workflow_dir)
