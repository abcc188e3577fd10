"""Rule feature_embedding: t-SNE of TP / FP / FN / TN feature vectors of one variant on one dataset."""

from cmbflow.device import prepare_cpu
from cmbflow.figures.embedding import feature_embedding
from cmbflow.logs import setup_logging

setup_logging(snakemake.log[0])
prepare_cpu(snakemake.threads)
feature_embedding(snakemake.input.weights, snakemake.input.card, snakemake.params.subjects, snakemake.input.candidates,
                  snakemake.params.evaluation,
                  f"{snakemake.wildcards.variant} on {snakemake.wildcards.dataset}: t-SNE",
                  {"table": snakemake.output.table, "png": snakemake.output.png, "pdf": snakemake.output.pdf},
                  snakemake.params.seed, snakemake.params.cpu_bfloat16)
