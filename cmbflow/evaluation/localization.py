"""Evaluation of anatomical localization and filtering.

* **Region accuracy** at the true CMB centres (the generator's markers, world mm) and
  **Dice per class** of a region map, both against the generator's true region map of a
  synthetic subject, for the network's segmentation and for the warped atlas side by side.
  Maps on the model-ready grid are compared on the true map's grid (nearest neighbour).
* **Filtering**: sensitivity and false positives per subject before and after removing the
  candidates outside every region (network and atlas), for all candidates and at the
  operating threshold.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd

from cmbflow.atlas import REGION_NAMES
from cmbflow.evaluation.detection import HitRule, definite_lesions
from cmbflow.evaluation.run import load_dataset_truth, match_dataset
from cmbflow.io.coords import world_to_voxel
from cmbflow.localization.regions import CHOICES, MAPS, grow_regions, maps_of, regions_at
from cmbflow.preprocessing.grid import Grid


def class_overlaps(predicted: np.ndarray, truth: np.ndarray) -> dict[int, tuple[int, int]]:
    """Per MARS code: ``(2 |P ∩ T|, |P| + |T|)`` of two label maps on the same grid (summed
    over subjects before dividing, for a pooled Dice)."""
    return {code: (2 * int(((predicted == code) & (truth == code)).sum()), int((predicted == code).sum() + (truth == code).sum()))
            for code in REGION_NAMES}


def dice_per_class(predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Dice of each MARS class of two label maps on the same grid (NaN where both lack it)."""
    return {REGION_NAMES[code]: common / total if total else float("nan")
            for code, (common, total) in class_overlaps(predicted, truth).items()}


def _subject_scores(maps: dict[str, str], truth_regions: str, markers: str, margin_mm: float) -> dict[str, dict]:
    """Per map name: codes at the true centres (regions grown by ``margin_mm``, as for the
    candidates), true codes there, and Dice overlaps (maps as they are)."""
    truth_image = nib.load(truth_regions)
    truth = np.asarray(truth_image.dataobj).astype(np.int64)
    grid = Grid(truth_image.affine, tuple(int(n) for n in truth.shape[:3]))
    points = pd.read_csv(markers, sep="\t")[["x", "y", "z"]].to_numpy(float)
    true_codes = regions_at(world_to_voxel(truth_image.affine, points), truth)
    from cmbflow.preprocessing.resample import resample_to_grid  # here: ANTs takes seconds to import; filtering_table needs none

    scores = {}
    for name, path in maps.items():
        image = nib.load(path)
        codes = np.asarray(image.dataobj).astype(np.uint8)  # MARS codes 0-3
        grown = grow_regions(codes, image.header.get_zooms()[:3], margin_mm)
        scores[name] = {"predicted": regions_at(world_to_voxel(image.affine, points), grown), "true": true_codes,
                        "overlaps": class_overlaps(resample_to_grid(codes, image.affine, grid, "label"), truth)}
    return scores


def localization_accuracy(datasets: dict[str, dict[str, dict[str, str]]], margin_mm: float = 0.0) -> pd.DataFrame:
    """One row per dataset x method (``network``, ``atlas``): CMBs, accuracy of the region at
    the true CMB centres, and Dice per class pooled over the dataset's voxels.

    ``datasets``: dataset -> subject -> ``network``, ``atlas`` (maps on the model-ready grid),
    ``truth_regions`` (true map) and ``markers`` (true CMB centres, world mm RAS+). The region
    at a centre is looked up as for candidates, in regions grown by ``margin_mm``."""
    rows = []
    for dataset, subjects in datasets.items():
        pooled = {method: {"hits": 0, "cmbs": 0, "overlaps": {code: [0, 0] for code in REGION_NAMES}} for method in MAPS}
        for files in subjects.values():
            maps = {method: files[method] for method in MAPS}
            for method, score in _subject_scores(maps, files["truth_regions"], files["markers"], margin_mm).items():
                pooled[method]["hits"] += int((score["predicted"] == score["true"]).sum())
                pooled[method]["cmbs"] += len(score["true"])
                for code, (common, total) in score["overlaps"].items():
                    pooled[method]["overlaps"][code][0] += common
                    pooled[method]["overlaps"][code][1] += total
        for method, totals in pooled.items():
            row = {"dataset": dataset, "method": method, "subjects": len(subjects), "cmbs": totals["cmbs"],
                   "accuracy_at_cmbs": totals["hits"] / totals["cmbs"] if totals["cmbs"] else np.nan}
            row.update({f"dice_{REGION_NAMES[code]}": common / total if total else np.nan
                        for code, (common, total) in totals["overlaps"].items()})
            rows.append(row)
    return pd.DataFrame(rows)


def _operating_point(candidates: pd.DataFrame, truths: dict, rule: HitRule) -> dict[str, float]:
    matched, lesions = match_dataset(candidates, truths, rule)
    outcomes = matched["outcome"]
    return {"tp": int((outcomes == "tp").sum()), "fp": int((outcomes == "fp").sum()),
            "cmbs": len(definite_lesions(lesions))}


def filtering_table(runs: list[dict], subjects: dict[str, dict[str, dict]], rule: HitRule) -> pd.DataFrame:
    """One row per run (``variant``, ``dataset``, ``table`` of localized candidates with
    ``region_network``, ``region_atlas``, ``thresholds``) x score threshold x stage
    (``before``, ``network``, ``atlas``, ``either``): true and false positives, sensitivity and
    FPs per subject of the candidates scoring at least the threshold, before and after removing
    those outside every region of that localization (``either``: outside in both maps).
    ``subjects``: dataset -> subject -> ``mask`` / ``markers``."""
    outside = REGION_NAMES[0]
    rows = []
    for run in runs:
        table = pd.read_csv(run["table"], sep="\t", dtype={"subject": str, "candidate": str})
        dataset_subjects = subjects[run["dataset"]]
        truths = load_dataset_truth({key: {k: v for k, v in files.items() if k != "regions"}  # read once per run
                                     for key, files in dataset_subjects.items()})
        for threshold in run["thresholds"]:
            chosen = table[table["score"] >= threshold]
            stages = {"before": chosen, **{choice: chosen[np.any([chosen[f"region_{name}"] != outside for name in maps_of(choice)], axis=0)]
                                           for choice in CHOICES}}
            for stage, candidates in stages.items():
                point = _operating_point(candidates, truths, rule)
                rows.append({"variant": run["variant"], "dataset": run["dataset"], "score_threshold": threshold,
                             "filter": stage, "subjects": len(dataset_subjects), "cmbs": point["cmbs"],
                             "tp": point["tp"], "fp": point["fp"],
                             "sensitivity": point["tp"] / point["cmbs"] if point["cmbs"] else np.nan,
                             "fp_per_subject": point["fp"] / len(dataset_subjects)})
    return pd.DataFrame(rows)
