"""Evaluation of one detector variant on one annotated dataset, before and after anatomical
filtering: matched candidates, FROC with bootstrap bands, precision-recall, and the metrics
at the operating point, also per MARS region.

``before`` scores every candidate; ``after`` only the kept ones (anatomical filtering),
matched anew, so that a CMB whose first hit was removed can still be found by a kept one.
A CMB's region is the region map's (the one config ``localization`` chooses) at its centre.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from cmbflow.atlas import REGION_NAMES
from cmbflow.evaluation.detection import (HitRule, SubjectTruth, definite_lesions, load_truth, match_candidates,
                                         possible_as_definite)
from cmbflow.evaluation.froc import (FP_LEVELS, average_precision, bootstrap_froc, cpm, froc_curve, metrics_at, pr_curve,
                                     sensitivity_at)
from cmbflow.io.coords import world_to_voxel
from cmbflow.evaluation.subjects import agreement, centre_distance_f1, subject_table
from cmbflow.localization.regions import read_chosen_regions, regions_at

log = logging.getLogger(__name__)

FILTERS = ("before", "after")
COUNTED_REGIONS = tuple(REGION_NAMES[code] for code in (1, 2, 3))
BAND_LEVELS = np.geomspace(1 / 16, 16, 33)  # FPs per subject at which the bootstrap band is drawn


def load_dataset_truth(subjects: dict[str, dict], margin_mm: float = 0.0, choice: str = "either") -> dict[str, SubjectTruth]:
    """The CMBs of every subject of ``subjects`` (key -> ``mask`` and/or ``markers``, optional
    ``regions``: map name -> region map of the model-ready grid), read once; with region maps,
    each CMB's ``region`` is that of localization ``choice`` (maps grown by ``margin_mm``;
    :func:`cmbflow.localization.regions.chosen_codes`) at its centre, as for candidates."""
    truths = {}
    for key, files in subjects.items():
        truth = load_truth(files.get("mask"), files.get("markers"))
        if files.get("regions"):
            codes, affine = read_chosen_regions(files["regions"], choice, margin_mm)
            points = truth.lesions[["x", "y", "z"]].to_numpy(float).reshape(-1, 3)
            truth.lesions = truth.lesions.assign(region=[REGION_NAMES[c] for c in regions_at(world_to_voxel(affine, points), codes)])
        truths[str(key)] = truth
    return truths


def match_dataset(candidates: pd.DataFrame, truths: dict[str, SubjectTruth], rule: HitRule) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Match the candidates of every subject of ``truths`` (:func:`load_dataset_truth`).

    Returns the matched candidates of all subjects (:func:`match_candidates`) and the CMBs
    (``subject``, ``lesion``, ``x, y, z`` world mm, ``radius_mm``, ``region``, ``rating``,
    ``best_score``: the highest score of a candidate hitting it, NaN if none)."""
    matched, lesions = [], []
    for key, truth in truths.items():
        rows = candidates[candidates["subject"].astype(str) == key]
        table = match_candidates(rows, truth, rule).assign(subject=key)
        found = table[table["lesion"] > 0].groupby("lesion")["score"].max()
        matched.append(table)
        lesions.append(truth.lesions.assign(subject=key, best_score=truth.lesions["lesion"].map(found)))
    columns = ["subject", "lesion", "x", "y", "z", "radius_mm", "region", "rating", "best_score"]
    lesion_table = pd.concat(lesions, ignore_index=True) if lesions else pd.DataFrame(columns=columns)
    lesion_table = lesion_table.reindex(columns=columns)
    return pd.concat(matched, ignore_index=True), lesion_table


def region_metrics(matched: pd.DataFrame, lesions: pd.DataFrame, n_subjects: int, threshold: float) -> list[dict]:
    """:func:`metrics_at` per MARS region: CMBs by their region, false positives by the
    candidate's ``region``."""
    rows = []
    for region in COUNTED_REGIONS:
        in_region = lesions[lesions["region"] == region]
        keys = set(zip(in_region["subject"], in_region["lesion"]))
        hit = matched[[(s, lesion) in keys for s, lesion in zip(matched["subject"], matched["lesion"])]]
        false = matched[(matched["outcome"] == "fp") & (matched.get("region") == region)]
        rows.append({"region": region, "cmbs": len(in_region),
                     **metrics_at(pd.concat([hit, false]), len(in_region), n_subjects, threshold)})
    return rows


def evaluate_detection(candidates_table: str, subjects: dict[str, dict], rule: HitRule, threshold: float,
                       outputs: dict[str, str], margin_mm: float = 0.0, n_boot: int = 1000, seed: int = 0,
                       threshold_source: str = "", choice: str = "either", valdo_distance_voxels: float = 5.0) -> pd.DataFrame:
    """Evaluate one variant x dataset and write ``outputs`` (:func:`cmbflow.paths.evaluation_files`).
    ``threshold_source`` says where the operating ``threshold`` comes from (written with it);
    ``choice``: the localization that set the candidates' regions, used for the CMBs' too.
    Subject-level agreement and the centre-distance F1s (:mod:`cmbflow.evaluation.subjects`;
    ``valdo_distance_voxels``) join each filter's summary; the per-subject table is the census's
    (after filtering). Returns the summary (one row per filter)."""
    candidates = pd.read_csv(candidates_table, sep="\t", dtype={"subject": str, "candidate": str})
    n_subjects = len(subjects)
    truths = load_dataset_truth(subjects, margin_mm, choice)  # masks and region maps read once for both filters
    summaries, froc_tables, bands, pr_tables, regions, matched_tables = [], [], [], [], [], []
    for name in FILTERS:
        chosen = candidates if name == "before" else candidates[candidates["kept"].astype(bool)]
        matched, all_lesions = match_dataset(chosen, truths, rule)
        matched_tables.append(matched.assign(filter=name))
        lesions = definite_lesions(all_lesions)  # possible CMBs: left out of scoring
        n_lesions = len(lesions)
        row = {"filter": name, "subjects": n_subjects, "cmbs": n_lesions, "cmbs_possible": len(all_lesions) - n_lesions,
               "threshold": threshold,
               "threshold_source": threshold_source,
               **metrics_at(matched, n_lesions, n_subjects, threshold)}
        if n_lesions:
            points = froc_curve(matched, n_lesions, n_subjects)
            per_subject = lesions.groupby("subject").size().reindex(list(subjects), fill_value=0).to_dict()
            band, cpms = bootstrap_froc(matched, per_subject, BAND_LEVELS, n_boot, seed)
            pr = pr_curve(matched, n_lesions)
            row.update({"cpm": cpm(points), "cpm_lower": float(np.percentile(cpms, 2.5)),
                        "cpm_upper": float(np.percentile(cpms, 97.5)), "ap": average_precision(pr),
                        # the CPM had possible CMBs been scored as definite (equal to cpm without any)
                        "cpm_all_cmbs": cpm(froc_curve(possible_as_definite(matched), len(all_lesions), n_subjects))})
            row.update({f"sens_at_{level:g}_fp": value for level, value in zip(FP_LEVELS, sensitivity_at(points))})
            froc_tables.append(points.assign(filter=name))
            bands.append(pd.DataFrame({"filter": name, "fp_per_subject": BAND_LEVELS,
                                       "sensitivity": np.interp(BAND_LEVELS, points["fp_per_subject"], points["sensitivity"]),
                                       "lower": np.percentile(band, 2.5, axis=0), "upper": np.percentile(band, 97.5, axis=0)}))
            pr_tables.append(pr.assign(filter=name))
            regions += [{"filter": name, **r} for r in region_metrics(matched, lesions, n_subjects, threshold)]
        subject_rows = subject_table(matched, lesions, list(truths), threshold)
        row.update(agreement(subject_rows, n_boot, seed))
        row.update(centre_distance_f1(chosen, truths, threshold, rule.r_min_mm, valdo_distance_voxels))
        if name == "before":
            all_lesions.to_csv(outputs["lesions"], sep="\t", index=False, float_format="%.4f")
        else:
            subject_rows.to_csv(outputs["subjects"], sep="\t", index=False, float_format="%.4f")
        summaries.append(row)
        log.info("%s: %d CMBs scored (%d rated possible, left out), CPM %s, at %.3f: sensitivity %.3f, %.2f FPs per subject",
                 name, n_lesions, row["cmbs_possible"], f"{row['cpm']:.3f}" if "cpm" in row else "n/a", threshold,
                 row["sensitivity"], row["fp_per_subject"])
    Path(outputs["summary"]).parent.mkdir(parents=True, exist_ok=True)
    summary = pd.DataFrame(summaries)
    for key, tables in (("froc", froc_tables), ("froc_band", bands), ("pr", pr_tables), ("regions", regions),
                        ("matched", matched_tables)):
        frame = pd.DataFrame(tables) if key == "regions" else (pd.concat(tables, ignore_index=True) if tables else pd.DataFrame())
        frame.to_csv(outputs[key], sep="\t", index=False, float_format="%.5f")
    summary.to_csv(outputs["summary"], sep="\t", index=False, float_format="%.4f")
    return summary
