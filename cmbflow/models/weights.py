"""A trained model's weights: plain ``state_dict``s beside its card (:mod:`cmbflow.models.card`).

The weights file holds state_dicts (``detector`` and, for HSPL, ``prototypes``) and is loaded
with ``torch.load(weights_only=True)``: no pickled code runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from cmbflow.models.detector import CMBDetector
from cmbflow.models.retinanet import build_retinanet


def save_model(folder_files: dict[str, str], state: dict[str, dict[str, torch.Tensor]], card: dict) -> None:
    """Write the weights (``state``: name -> state_dict) and the card to the paths of
    :func:`cmbflow.paths.model_files`."""
    torch.save(state, folder_files["weights"])
    Path(folder_files["card"]).write_text(json.dumps(card, indent=2, default=str) + "\n")


def load_model(weights: str | Path, card: str | Path) -> tuple[nn.Module, dict]:
    """The trained detector (eval mode, CPU; :func:`build_detector`) and its card."""
    card_content = json.loads(Path(card).read_text())
    model = build_detector(card_content["network"])
    state = torch.load(weights, map_location="cpu", weights_only=True)
    model.load_state_dict(state["detector"])
    return model.eval(), card_content


def build_detector(network: dict) -> nn.Module:
    """An untrained detector from the card's ``network`` record: ``architecture`` ``retinanet``,
    MONAI's RetinaNet (:func:`cmbflow.models.retinanet.build_retinanet` of the record's other
    keys); else (cards before the baseline had none) our :class:`CMBDetector` of the record's
    keys (JSON lists become tuples)."""
    network = dict(network)
    if network.pop("architecture", "cmbflow") == "retinanet":
        return build_retinanet(**network)
    return CMBDetector(**{k: tuple(map(tuple, v)) if k == "strides" else (tuple(v) if isinstance(v, list) else v)
                          for k, v in network.items()})
