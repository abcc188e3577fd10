"""Training curves of a detector variant: total loss (train, validation) and its parts."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


def plot_training_curves(curves: pd.DataFrame, out_png: str, title: str) -> None:
    """Left: train and validation loss per logged iteration; right: the train loss parts
    (classification, regression, concentration) on a log scale."""
    fig, (total, parts) = plt.subplots(1, 2, figsize=(10, 3.8))
    total.plot(curves["iteration"], curves["train_loss"], marker="o", label="train")
    total.plot(curves["iteration"], curves["validation_loss"], marker="s", label="validation")
    total.set(xlabel="iteration", ylabel="loss", title="L_cls + L_reg + λ·L_con")
    total.legend()
    for column, name in (("train_cls", "L_cls (focal)"), ("train_reg", "L_reg (smooth L1)"), ("train_con", "L_con (concentration)")):
        if (curves[column] > 0).any():
            parts.plot(curves["iteration"], curves[column], marker=".", label=name)
    parts.set(xlabel="iteration", ylabel="train loss part", yscale="log", title="loss parts")
    parts.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
