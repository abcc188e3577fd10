"""Which subjects should the operating point be chosen on? Census error under other rules.

For finished runs (a default run, or the ``seed-N`` folders of ``benchmarks/seed_benchmark.py``), it
finds the candidates of the detector's validation subjects (every site's) and of the home site's
training subjects with the run's inference settings, matches them as ``choose_operating_point`` does,
chooses a threshold by each rule of :data:`RULES`, moves it to each external site by the run's own
label-free adaptation shift, and scores the census of the test subjects' kept candidates (after
anatomical filtering, possible CMBs left out) at it. Nothing of the runs is changed.

    python benchmarks/operating_point_benchmark.py --runs /tmp/seeds/seed-0 /tmp/seeds/seed-1 --out rules.tsv

docs/results.md, "Training length", has its first measurement (four seeds, 2026-12-05).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from cmbflow import paths
from cmbflow.evaluation.froc import choose_operating_point
from cmbflow.evaluation.operating_point import matched_candidates
from cmbflow.evaluation.site_adaptation import adapt_threshold, background_score
from cmbflow.inference.detect import InferenceSettings
from cmbflow.io.model_input import PhaseScaling, model_inputs
from cmbflow.models.weights import build_detector
from cmbflow.training.patches import load_subject

REPO = Path(__file__).resolve().parents[1]
HOME = "synth_internal"
# rule -> (which subjects, criterion options): "home" the home site's validation subjects (today's
# rule), "validation" every validation subject, "home_all" the home site's validation and training ones
RULES = {"1 FP / subject, home validation (now)": ("home", {"criterion": "fp_rate", "fp_per_subject": 1.0}),
         "1 FP / subject, all validation": ("validation", {"criterion": "fp_rate", "fp_per_subject": 1.0}),
         "0.5 FP / subject, home validation": ("home", {"criterion": "fp_rate", "fp_per_subject": 0.5}),
         "highest F1, home validation + training": ("home_all", {"criterion": "f1"})}


def candidate_tables(run: Path, variant: str, inference: dict) -> pd.DataFrame:
    """Matched candidates (``score``, ``outcome``) of the run's validation and home training
    subjects on the model-ready grid, with ``subject`` (``dataset/key``), ``n_lesions``, ``role``."""
    model_dir = run / "results/models" / variant
    card = json.loads((model_dir / "model_card.json").read_text())
    validation = list(card["data_split"]["validation"])
    training = [name for name in card["data_split"]["train"] if name.split("/")[0] == HOME]
    model = build_detector(card["network"])
    model.load_state_dict(torch.load(model_dir / "model.pt", map_location="cpu", weights_only=True)["detector"])
    settings = InferenceSettings.from_config(inference)
    scaling = PhaseScaling.from_record(card.get("normalization"), str(model_dir))
    tables = []
    for name in validation + training:
        dataset, key = name.split("/")
        files = {part: str(run / path) for part, path in paths.preproc_subject_files(dataset, key).items()}
        subject = load_subject(name, files, scaling, model_inputs(card))
        n_lesions = len(np.unique(subject.labels[subject.labels > 0]))
        tables.append(matched_candidates(model, subject, card["anchors_mm"], settings).assign(
            n_lesions=n_lesions, role="validation" if name in validation else "train"))
    return pd.concat(tables, ignore_index=True)


def census_error(run: Path, variant: str, dataset: str, threshold: float) -> tuple[float, float, float]:
    """Mean absolute census error, false positives per test subject and sensitivity (definite CMBs
    hit) on ``dataset`` at ``threshold``."""
    folder = run / "results/evaluation" / variant / dataset
    matched = pd.read_csv(folder / "matched.tsv", sep="\t", dtype={"subject": str})
    lesions = pd.read_csv(folder / "lesions.tsv", sep="\t", dtype={"subject": str})
    subjects = pd.read_csv(folder / "subjects.tsv", sep="\t", dtype={"subject": str})["subject"]
    kept = matched[(matched["filter"] == "after") & matched["kept"] & (matched["outcome"] != "possible")]
    errors, false = [], []
    for key in subjects:
        truth = int(((lesions["subject"] == key) & (lesions["rating"] == "definite")).sum())
        found = kept[(kept["subject"] == key) & (kept["score"] >= threshold)]
        errors.append(abs(len(found) - truth))
        false.append(int((found["outcome"] == "fp").sum()))
    hits = kept[(kept["outcome"] == "tp") & (kept["score"] >= threshold)][["subject", "lesion"]].drop_duplicates()
    return float(np.mean(errors)), float(np.mean(false)), len(hits) / max(int((lesions["rating"] == "definite").sum()), 1)


def score_rules(run: Path, variant: str, candidates: pd.DataFrame, datasets: list[str], floor: float) -> list[dict]:
    """One row per rule: its threshold and, per dataset, the census error at it, adapted to each
    external site as ``adapt_operating_point`` would (``floor``: the search's score threshold)."""
    ranks = tuple(json.loads((run / "results/models" / variant / "operating_point.json").read_text())["background_ranks"])
    roles = candidates.groupby("subject")["role"].first()
    groups = {"validation": [n for n in roles.index if roles[n] == "validation"],
              "home_all": [n for n in roles.index if n.split("/")[0] == HOME]}
    # without a home validation subject the run itself chose on every validation subject
    groups["home"] = [n for n in groups["validation"] if n.split("/")[0] == HOME] or groups["validation"]
    rows = []
    for rule, (group, options) in RULES.items():
        chosen = candidates[candidates["subject"].isin(groups[group])]
        n_lesions = int(chosen.groupby("subject")["n_lesions"].first().sum())
        threshold = choose_operating_point(chosen, n_lesions, len(groups[group]), **options)["threshold"]
        # the site adaptation compares a site's background with that of the subjects the point was chosen on
        home_level = background_score([table["score"].to_numpy(float) for _, table in chosen.groupby("subject")],
                                      ranks, floor)
        row = {"run": str(run), "rule": rule, "subjects": len(groups[group]), "threshold": round(threshold, 3)}
        for dataset in datasets:
            adapted = run / "results/adaptation" / variant / dataset / "operating_point.json"
            site_threshold = threshold
            if adapted.exists():
                record = json.loads(adapted.read_text())["adaptation"]
                site_threshold, _ = adapt_threshold(threshold, home_level, record["background_score"], record["max_logit_shift"])
            error, false, sensitivity = census_error(run, variant, dataset, site_threshold)
            row.update({f"{dataset}_count_mae": round(error, 2), f"{dataset}_fp_per_subject": round(false, 2),
                        f"{dataset}_sensitivity": round(sensitivity, 3)})
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, nargs="+", required=True, help="finished runs (folders holding results/)")
    parser.add_argument("--variant", default="rpn_ffm_hspl")
    parser.add_argument("--config", type=Path, default=REPO / "config.yaml", help="config whose detector.inference is used")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, help="also write the table here (TSV)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    inference = yaml.safe_load(args.config.read_text())["detector"]["inference"]
    rows = []
    for run in args.runs:
        run = run.resolve()
        datasets = sorted(path.name for path in (run / "results/evaluation" / args.variant).iterdir() if path.is_dir())
        candidates = candidate_tables(run, args.variant, inference)
        rows.extend(score_rules(run, args.variant, candidates, datasets, float(inference["score_threshold"])))
    table = pd.DataFrame(rows)
    if args.out:
        table.to_csv(args.out, sep="\t", index=False)
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
