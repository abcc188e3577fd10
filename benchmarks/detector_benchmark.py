"""Benchmark of the detector: inference seconds and peak memory per subject, training patches/s.

Usage:  python benchmarks/detector_benchmark.py [--threads 2] [--side-by-side 1] [--config config.yaml] [--cases ...]
                                                [--model DIR] [--json OUT]

Cases (each in a fresh process, so its peak resident memory is its own):
  full_size       a 512 x 448 x 72 subject at 0.5 x 0.5 x 2 mm (the paper's internal protocol),
                  generated on the fly; the network runs on all of its voxels (configured precision)
  full_size_fp32  the same in float32 (detector.inference.cpu_bfloat16 off)
  retinanet_full_size  MONAI's RetinaNet (the LUNA16 bundle's network and inferer, untrained) on the
                  same volume, whole, in the configured precision: the baseline a user would pick
  default         a subject of the default internal site (176 x 208 x 72 at 1 x 1 x 2 mm)
  training        patches per second of the default training settings on default subjects
  training_bf16   the same with detector.training.cpu_bfloat16 on
  retinanet_training  the same for the baseline (a variant {architecture: retinanet})

``--json OUT`` also writes one object: ``<case>_s`` (inference seconds), ``<case>_patches_per_s``
(training), ``<case>_peak_gb`` for each case run on the CPU, ``cuda_<...>`` for the CUDA runs,
``cases``: every record (``retinanet_full_size_s``: the baseline; ``precision``: what the network
ran in), and ``machine``: the CPU, whether it computes bfloat16 natively (else the bfloat16 cases
run in float32), torch, the GPU.

Inference is timed as the DAG runs it (``detect_subject``: read the model-ready files, sliding
window over the searched box, decoding + NMS, positions on the original image, and the probability
map on the original grid only where ``detector.inference.probability_maps`` asks for it, as in the DAG),
with the weights of ``--model`` when that folder exists (else an untrained network of the
configured size); the network runs on the subject's own grid whatever spacing it was trained at.
The subjects are simulated once, in the parent process, before the cases start: neither their
time nor their memory is in a case's numbers (``peak_rss_gb``: the case's own process). On a
machine with CUDA every case also runs there.
``--side-by-side N`` runs N copies of each case at once (as N jobs of the DAG share a machine)
and also prints their summed training throughput: on 2 cores, ``--threads 1 --side-by-side 2``
against ``--threads 2`` is the choice of the default ``threads: 1``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
FULL_SIZE = {"voxel_mm": [0.5, 0.5, 2.0], "fov_mm": [256, 224, 144]}


def _subject_files(site_values: dict, folder: Path, seed: int = 7) -> tuple[dict, str, tuple]:
    """Simulate a subject and write it as model-ready files (on its own grid, scaled the way
    preprocessing scales): returns the files, the original image and the spacing."""
    from cmbflow.io.nifti import save_volume
    from cmbflow.synth.cohort import make_simulator, subject_rng
    from cmbflow.sites import SiteParams

    site = SiteParams.from_config("bench", site_values)
    subject = make_simulator().simulate(site, subject_rng(seed, "bench", "001"))
    brain = subject.brain_mask > 0
    low, high = np.percentile(subject.swi[brain], [1, 99])
    files = {"swi": str(folder / "swi.nii.gz"), "phase": str(folder / "phase.nii.gz"),
             "brainmask": str(folder / "brainmask.nii.gz"), "cmb_mask": str(folder / "cmb_mask.nii.gz"),
             "markers": str(folder / "markers.tsv")}
    save_volume(files["swi"], np.clip((subject.swi - low) / (high - low), -1, 2).astype(np.float32), subject.affine)
    save_volume(files["phase"], (subject.phase / np.pi).astype(np.float32), subject.affine)
    save_volume(files["brainmask"], brain.astype(np.uint8), subject.affine)
    save_volume(files["cmb_mask"], subject.cmb_labels.astype(np.int32), subject.affine)
    subject.markers.to_csv(files["markers"], sep="\t", index=False)
    return files, files["swi"], tuple(float(v) for v in site.voxel_mm)


def _peak_gb() -> float:
    """This process's peak resident memory, GB. Linux: ``VmHWM`` of /proc/self/status, which
    starts afresh in a spawned process; ``ru_maxrss`` keeps the parent's peak across the exec,
    so it would report the parent's simulated subjects."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024**2  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def _precision(device_name: str, cpu_bfloat16: bool) -> str:
    """The precision a case's network ran in (:func:`cmbflow.device.autocast`): on a CPU without
    native bfloat16 the configured bfloat16 runs in float32, so the two cases time the same thing."""
    from cmbflow.device import cpu_has_bf16

    if device_name == "cuda":
        return "float16"
    return "bfloat16" if cpu_bfloat16 and cpu_has_bf16() else "float32"


def machine() -> dict:
    """What ran the benchmark: timings of different CPUs are not comparable, and whether the CPU
    computes bfloat16 natively (AVX512-BF16, AMX) decides the precision of the default cases."""
    import torch

    from cmbflow.device import cpu_has_bf16

    cpuinfo = Path("/proc/cpuinfo")
    names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
             if line.startswith("model name")] if cpuinfo.exists() else []
    return {"cpu": names[0] if names else platform.processor(), "logical_cpus": os.cpu_count(),
            "cpu_bfloat16_native": cpu_has_bf16(), "torch": torch.__version__,
            "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None}


def inference_case(name: str, site_values: dict, config: dict, threads: int, device_name: str, model_dir: str,
                   subject: tuple) -> dict:
    import torch

    from cmbflow.device import prepare_cpu
    from cmbflow.inference.detect import InferenceSettings, detect_subject
    from cmbflow.models.card import INPUT_CHANNELS
    from cmbflow.models.weights import load_model
    from cmbflow.models.detector import CMBDetector

    prepare_cpu(threads)  # as the DAG's jobs: threads, freed memory kept
    detector = config["detector"]
    files, original, spacing = subject  # simulated by the parent process: its memory is not this case's
    with tempfile.TemporaryDirectory() as folder:
        network = {"in_channels": len(INPUT_CHANNELS), "channels": tuple(detector["network"]["channels"]),
                   "strides": tuple(map(tuple, detector["network"]["strides"])), "n_anchors": len(detector["anchors_mm"]),
                   "feature_dim": detector["network"]["feature_dim"], "fuse_levels": True}
        model = CMBDetector(**network).eval()
        card = {"name": "benchmark", "variant": "benchmark", "anchors_mm": detector["anchors_mm"],
                "inputs": list(INPUT_CHANNELS), "normalization": dict(detector["input"])}
        weights = Path(model_dir) / "model.pt"
        if weights.exists():
            model, card = load_model(weights, Path(model_dir) / "model_card.json")
        card = {**card, "spacing_mm": list(spacing)}  # the network runs on the subject's own grid
        settings = InferenceSettings.from_config(detector["inference"])
        maps = detector["inference"]["probability_maps"]  # as the DAG: off by default
        device = torch.device(device_name)
        shape = tuple(int(n) for n in nib.load(files["swi"]).shape)
        detect_subject(model, card, "warmup", files, original, settings, device)  # first call: allocator, kernels
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        table = detect_subject(model, card, "bench", files, original, settings, device,
                               probability_map=str(Path(folder) / "probseg.nii.gz") if maps else None)
        seconds = time.perf_counter() - start
    result = {"case": name, "device": device_name, "threads": threads, "weights": str(weights) if weights.exists() else "untrained",
              "grid": shape, "spacing_mm": spacing,
              "precision": _precision(device_name, settings.cpu_bfloat16),
              "probability_map": maps, "seconds": round(seconds, 2), "candidates": len(table),
              "peak_rss_gb": round(_peak_gb(), 2)}
    if device_name == "cuda":
        result["peak_cuda_gb"] = round(torch.cuda.max_memory_allocated() / 1024**3, 2)
    return result


def training_case(name: str, site_values: dict, config: dict, threads: int, device_name: str, model_dir: str,
                  subject: tuple | None = None) -> dict:
    import torch

    from cmbflow.device import prepare_cpu
    from cmbflow.training.loop import train_detector
    from cmbflow.training.patches import load_subject
    from cmbflow.training.variant import input_phase_scaling, variant_settings

    prepare_cpu(threads)  # as the DAG's jobs: threads, freed memory kept
    detector = config["detector"]
    if name.startswith("retinanet"):  # the baseline, trained as the variant {architecture: retinanet} would be
        detector = {**detector, "variants": {"retinanet": {"architecture": "retinanet"}}}
    settings = variant_settings(detector, list(detector["variants"])[-1])
    with tempfile.TemporaryDirectory() as folder:
        subjects = []
        for seed in (7, 8):
            sub = Path(folder) / str(seed)
            sub.mkdir()
            files, _, _ = _subject_files(site_values, sub, seed)
            subjects.append(load_subject(str(seed), files, input_phase_scaling(config["detector"])))
        times = {}
        for iterations in (3, 23):
            run = type(settings)(**{**settings.__dict__, "iterations": iterations, "validation_every": 10**6,
                                    "checkpoint_every": 10**6})
            start = time.perf_counter()
            train_detector(subjects, [], run, Path(folder) / f"ckpt{iterations}.pt", device=torch.device(device_name))
            times[iterations] = time.perf_counter() - start
    patches = 20 * settings.batch_size
    return {"case": name, "device": device_name, "threads": threads, "precision": _precision(device_name, settings.cpu_bfloat16),
            "patch_size": settings.patch_size,
            "batch_size": settings.batch_size, "patches_per_s": round(patches / (times[23] - times[3]), 2),
            "seconds_per_iteration": round((times[23] - times[3]) / 20, 3), "peak_rss_gb": round(_peak_gb(), 2)}


def retinanet_case(name: str, site_values: dict, config: dict, threads: int, device_name: str, model_dir: str,
                   subject: tuple) -> dict:
    """MONAI's RetinaNet (:func:`cmbflow.models.retinanet.build_retinanet`, the LUNA16 bundle's
    network; untrained: the weights do not change the time) over the whole volume with its own
    sliding-window inferer (the bundle's 512 x 512 x 192 window, cut to the volume; overlap 0.25)
    and box selector, in the precision our inference uses. Not warmed up: one call is minutes."""
    import torch

    from cmbflow.device import autocast, prepare_cpu
    from cmbflow.models.retinanet import SIZE_DIVISIBLE, build_retinanet

    prepare_cpu(threads)  # as the DAG's jobs: threads, freed memory kept
    detector_config = config["detector"]
    files, _, spacing = subject  # simulated by the parent process
    image = np.stack([np.asarray(nib.load(files[kind]).dataobj, np.float32) for kind in ("swi", "phase")])
    shape = image.shape[1:]
    roi = [min(512 if axis < 2 else 192, -(-n // step) * step) for axis, (n, step) in enumerate(zip(shape, SIZE_DIVISIBLE))]
    device = torch.device(device_name)
    detector = build_retinanet(2, detector_config["anchors_mm"], spacing, roi_size=roi)
    detector.network.to(device).eval()
    detector.eval()
    images = torch.from_numpy(image)[None].to(device)
    start = time.perf_counter()
    with torch.no_grad(), autocast(device, detector_config["inference"]["cpu_bfloat16"]):
        found = detector(images, use_inferer=True)[0]
    seconds = time.perf_counter() - start
    return {"case": name, "device": device_name, "threads": threads, "weights": "untrained (MONAI RetinaNet, ResNet-50 FPN)",
            "grid": tuple(int(n) for n in shape), "spacing_mm": spacing, "roi_size": roi,
            "precision": _precision(device_name, detector_config["inference"]["cpu_bfloat16"]), "seconds": round(seconds, 2),
            "candidates": len(found["box"]), "peak_rss_gb": round(_peak_gb(), 2)}


# case -> (function, site of the generated subjects, overrides of detector.inference / detector.training)
CASES = {"full_size": (inference_case, FULL_SIZE, {}),
         "full_size_fp32": (inference_case, FULL_SIZE, {"cpu_bfloat16": False}),
         "retinanet_full_size": (retinanet_case, FULL_SIZE, {}),
         "default": (inference_case, {}, {}),
         "training": (training_case, {}, {}),
         "training_bf16": (training_case, {}, {"cpu_bfloat16": True}),
         "retinanet_training": (training_case, {}, {})}


def with_overrides(config: dict, section: str, overrides: dict) -> dict:
    """``config`` with ``detector.<section>`` updated by ``overrides``."""
    detector = {**config["detector"], section: {**config["detector"][section], **overrides}}
    return {**config, "detector": detector}


def summary(records: list[dict]) -> dict:
    """The ``--json`` object (module docstring)."""
    out = {"machine": machine()}
    for record in records:
        if "side_by_side" in record:
            continue
        prefix = ("" if record["device"] == "cpu" else f"{record['device']}_") + record["case"]
        if "seconds" in record:
            out[f"{prefix}_s"] = record["seconds"]
        if "patches_per_s" in record:
            out[f"{prefix}_patches_per_s"] = record["patches_per_s"]
        out[f"{prefix}_peak_gb"] = record.get("peak_cuda_gb", record["peak_rss_gb"])
    return {**out, "cases": records}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--side-by-side", type=int, default=1, help="copies of each case run at once")
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--model", default="results/models/rpn_ffm_hspl", help="model folder whose weights to time")
    parser.add_argument("--json", type=Path, help="also write the summary object here")
    args = parser.parse_args()
    import torch

    from cmbflow.config import validate_config

    config = yaml.safe_load(open(args.config))
    validate_config(config, REPO / "schemas/config.schema.yaml", [args.config])  # the schema's defaults, as the workflow fills them
    devices = ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    context = multiprocessing.get_context("spawn")
    records = []
    scratch = tempfile.TemporaryDirectory()
    subjects = {}  # site -> simulated subject files, made here so that no case's peak memory holds the simulation
    for name in args.cases:
        function, site_values, overrides = CASES[name]
        section = "training" if function is training_case else "inference"
        case_config = with_overrides(config, section, overrides)
        subject = None
        if function is not training_case:
            key = json.dumps(site_values, sort_keys=True)
            if key not in subjects:
                folder = Path(scratch.name) / str(len(subjects))
                folder.mkdir()
                subjects[key] = _subject_files(site_values, folder)
            subject = subjects[key]
        for device in devices:
            with context.Pool(args.side_by_side) as pool:
                pending = [pool.apply_async(function, (name, site_values, case_config, args.threads, device, args.model, subject))
                           for _ in range(args.side_by_side)]
                results = [job.get() for job in pending]
            if args.side_by_side > 1 and "patches_per_s" in results[0]:
                total = sum(result["patches_per_s"] for result in results)
                results.append({"case": name, "device": device, "threads": args.threads, "side_by_side": args.side_by_side,
                                "summed_patches_per_s": round(total, 2)})
            for result in results:
                print(json.dumps(result), flush=True)
            records += results
    scratch.cleanup()
    if args.json:
        args.json.write_text(json.dumps(summary(records), indent=2) + "\n")


if __name__ == "__main__":
    main()
