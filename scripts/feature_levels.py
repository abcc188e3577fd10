"""Rule feature_levels: decoder feature maps and probability of the baseline vs the FFM detector at one CMB (Fig. 6)."""

import pandas as pd

from cmbflow.device import prepare_cpu
from cmbflow.figures.feature_levels import plot_feature_levels
from cmbflow.logs import setup_logging

setup_logging(snakemake.log[0])
prepare_cpu(snakemake.threads)
lesions = pd.read_csv(snakemake.input.lesions, sep="\t", dtype={"subject": str})
subject = str(lesions["subject"].iloc[0])  # the first test subject with a CMB
plot_feature_levels(snakemake.params.models, snakemake.params.subjects[subject], lesions[lesions["subject"] == subject], subject,
                    snakemake.output.png, snakemake.output.pdf)
