"""Does the RetinaNet baseline's classifier learn? A short training and how far its scores separate.

Trains the baseline (a variant ``{architecture: retinanet}``) for ``--iterations`` on a finished
run's training and validation subjects (the split and resolved config of a model card of that run),
then cuts ``--patches`` validation patches as training cuts them (no augmentation) and compares the
classification logits of the anchors MONAI's ATSS matcher gives a CMB with those of every other
anchor: their AUC, and the share of the other anchors scoring above the median matched one (the
false positives a threshold there lets through). The run is only read. docs/results.md,
"Statistical power":

    python benchmarks/baseline_separation.py --run /tmp/bench --iterations 1000 --hard-negative-pool 100 [--depth 18] [--json OUT]

A full training at the benchmark scale costs 82 min on one core; this shows in minutes whether a
setting learns at all (the 2400-iteration run of 2026-12-05 ended at an AUC of 0.56).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np


def separation(detector, patches: list[dict]) -> dict:
    """AUC of the matched anchors' logits against the unmatched ones' over ``patches`` (those
    with a CMB), and the share of unmatched anchors above the median matched logit."""
    import torch
    from sklearn.metrics import roc_auc_score

    detector.eval()
    matched_logits, other_logits = [], []
    for patch in patches:
        images = patch["image"][None]
        with torch.no_grad():
            out = detector.network(images)
        detector.generate_anchors(images, out)
        locations = [level.shape[2:].numel() for level in out[detector.cls_key]]
        logits = detector._reshape_maps(out[detector.cls_key])[0, :, 0]  # MONAI's anchor order
        target = {"box": patch["boxes"], "label": torch.zeros(len(patch["boxes"]), dtype=torch.long)}
        matched = detector.compute_anchor_matched_idxs(detector.anchors, [target], locations)[0]
        matched_logits.append(logits[matched >= 0])
        other_logits.append(logits[matched < 0])
    pos, neg = torch.cat(matched_logits).numpy(), torch.cat(other_logits).numpy()
    auc = roc_auc_score(np.r_[np.ones(len(pos)), np.zeros(len(neg))], np.r_[pos, neg])
    return {"auc": round(float(auc), 3), "above_median_matched": round(float((neg > np.median(pos)).mean()), 5),
            "matched_anchors": len(pos), "matched_logit_mean": round(float(pos.mean()), 2),
            "other_logit_mean": round(float(neg.mean()), 2), "logit_sd": round(float(np.r_[pos, neg].std()), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="a finished run's directory (only read)")
    parser.add_argument("--card", default="results/models/rpn_ffm_hspl/model_card.json",
                        help="a model card of the run, relative to it: the split and resolved config")
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--hard-negative-pool", type=float, help="detector.retinanet.hard_negative_pool (default: the run's, else the schema's)")
    parser.add_argument("--depth", type=int, help="detector.retinanet.depth (default: the run's, else the schema's)")
    parser.add_argument("--learning-rate", type=float, help="detector.training.learning_rate (default: the run's)")
    parser.add_argument("--patches", type=int, default=40, help="validation patches cut (those with a CMB are scored)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    import torch

    from cmbflow import paths
    from cmbflow.settings import schema_defaults
    from cmbflow.training import loop
    from cmbflow.training.patches import load_subject
    from cmbflow.training.variant import input_phase_scaling, variant_settings

    torch.set_num_threads(args.threads)
    out = args.json.resolve() if args.json else None
    os.chdir(args.run)  # the run's relative paths (results/...)
    card = json.loads(Path(args.card).read_text())
    detector = dict(card["resolved_config"]["detector"])
    chosen = {key: value for key, value in (("hard_negative_pool", args.hard_negative_pool), ("depth", args.depth))
              if value is not None}
    detector["retinanet"] = {**schema_defaults("detector")["retinanet"], **detector.get("retinanet", {}), **chosen}
    detector["variants"] = {"retinanet": {"architecture": "retinanet"}}
    settings = variant_settings(detector, "retinanet")
    settings = replace(settings, iterations=args.iterations, checkpoint_every=0,
                       learning_rate=args.learning_rate or settings.learning_rate)
    scaling = input_phase_scaling(detector)

    def load(keys):
        return [load_subject(key, paths.preproc_subject_files(*key.split("/")), scaling, settings.inputs) for key in keys]

    train, validation = load(card["data_split"]["train"]), load(card["data_split"]["validation"])
    start = time.perf_counter()
    checkpoint = Path(tempfile.gettempdir()) / f"baseline_separation_{os.getpid()}.ckpt"  # removed when training ends
    state, curves = loop.train_detector(train, validation, settings, checkpoint)
    seconds = time.perf_counter() - start
    model = loop.build_model(settings, train[0].spacing)
    model.load_state_dict(state["detector"])
    sampler = loop.patch_sampler(validation, settings, seed=123, augment=False)
    patches = [patch for patch in (sampler.sample() for _ in range(args.patches)) if len(patch["boxes"])]
    result = {"iterations": args.iterations, "hard_negative_pool": settings.retinanet_hard_negative_pool,
              "depth": settings.retinanet_depth, "learning_rate": settings.learning_rate, "training_s": round(seconds, 1),
              "final_train_cls": round(float(curves["train_cls"].iloc[-1]), 3),
              "final_validation_loss": round(float(curves["validation_loss"].iloc[-1]), 3), **separation(model, patches)}
    print(json.dumps(result))
    if out:
        out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
