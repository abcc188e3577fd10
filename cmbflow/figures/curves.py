"""Training curves of a network: total loss (train, validation) and, for the detector, its parts."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


DETECTOR_PARTS = (("train_cls", "L_cls (focal)"), ("train_reg", "L_reg (smooth L1)"), ("train_con", "L_con (concentration)"))


def plot_training_curves(curves: pd.DataFrame, out_png: str, title: str, loss_name: str = "L_cls + L_reg + λ·L_con") -> None:
    """Left: train and validation loss per logged iteration; right (when ``curves`` has the
    detector's ``train_cls/reg/con`` columns): those loss parts on a log scale."""
    parts_present = [(column, name) for column, name in DETECTOR_PARTS if column in curves and (curves[column] > 0).any()]
    fig, axes = plt.subplots(1, 2 if parts_present else 1, figsize=(10 if parts_present else 5.5, 3.8), squeeze=False)
    total = axes[0, 0]
    total.plot(curves["iteration"], curves["train_loss"], marker="o", label="train")
    total.plot(curves["iteration"], curves["validation_loss"], marker="s", label="validation")
    total.set(xlabel="iteration", ylabel="loss", title=loss_name)
    total.legend()
    if parts_present:
        parts = axes[0, 1]
        for column, name in parts_present:
            parts.plot(curves["iteration"], curves[column], marker=".", label=name)
        parts.set(xlabel="iteration", ylabel="train loss part", yscale="log", title="loss parts")
        parts.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
