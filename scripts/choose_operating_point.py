"""Rule choose_operating_point: a trained variant's score threshold on its validation subjects -> operating_point.json."""

import torch

from cmbflow.inference.operating_point import write_operating_point
from cmbflow.logs import setup_logging

setup_logging(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
write_operating_point(snakemake.input.weights, snakemake.input.card, snakemake.params.subjects, snakemake.params.inference,
                      snakemake.output[0])
