import numpy as np
import pytest
import torch
from scipy import ndimage

from cmbflow.device import cpu_has_bf16
from cmbflow.inference.detect import (CANDIDATE_COLUMNS, InferenceSettings, VolumeOutputs, candidate_table, check_spacing,
                                      detect_candidates, detect_subject, find_candidates, predict_volume, search_box,
                                      to_original_image)
from cmbflow.io.coords import voxel_to_world
from cmbflow.io.model_input import PhaseScaling
from cmbflow.io.nifti import save_volume
from cmbflow.models.anchors import anchor_extents, anchors_at, boxes_from_centres
from cmbflow.models.detector import CMBDetector
from cmbflow.models.postprocess import box_coder
from cmbflow.preprocessing.grid import cropped_grid
from cmbflow.preprocessing.resample import resample_to_grid
from tests.config_defaults import default_strides

STRIDES = default_strides()


LAS_SPACING = (0.9, 0.9, 2.5)
LESION = (30, 17, 9)  # voxel of the LAS-stored original image


def _las_scan():
    """A head-sized block stored LAS (first axis runs right to left), tilted 10 degrees about
    the left-right axis, with a dark 3-voxel lesion at LESION."""
    shape = (48, 40, 20)
    tilt = np.deg2rad(10.0)
    rotation = np.array([[1, 0, 0], [0, np.cos(tilt), -np.sin(tilt)], [0, np.sin(tilt), np.cos(tilt)]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([-LAS_SPACING[0], LAS_SPACING[1], LAS_SPACING[2]])
    affine[:3, 3] = [20.0, -15.0, -20.0]
    world = voxel_to_world(affine, np.indices(shape).reshape(3, -1).T).reshape(*shape, 3)
    distance = np.linalg.norm(world - voxel_to_world(affine, LESION)[0], axis=-1)
    image = 1.0 - 0.8 * np.exp(-0.5 * (distance / 1.5) ** 2)  # a dark 3 mm blob
    return image.astype(np.float32), affine


def test_a_candidate_maps_back_to_its_voxel_of_an_las_input():
    original, original_affine = _las_scan()
    grid = cropped_grid(np.ones(original.shape, bool), original_affine, (1.0, 1.0, 2.0), margin_mm=2.0)
    swi = resample_to_grid(original, original_affine, grid, "linear")  # what preprocessing does
    brain = np.ones(grid.shape, bool)
    darkness = np.clip(0.9 - swi, 0, None) * (swi > 0)  # the blob, on the model-ready grid
    centre = np.array(ndimage.center_of_mass(darkness))  # continuous grid voxel
    nearest = tuple(np.rint(centre).astype(int))
    # The network's vote: anchor 1 (5 mm) at the nearest voxel, regressed onto the exact centre.
    logits = torch.full((2, *grid.shape), -9.0)
    logits[1][nearest] = 4.0
    extents = anchor_extents((3.0, 5.0), (1.0, 1.0, 2.0))
    anchor = boxes_from_centres(torch.tensor([nearest], dtype=torch.float32), torch.tensor([5.0]), (1.0, 1.0, 2.0))
    target = boxes_from_centres(torch.tensor(centre[None], dtype=torch.float32), torch.tensor([5.0]), (1.0, 1.0, 2.0))
    deltas = torch.zeros(2, 6, *grid.shape)
    deltas[(1, slice(None), *nearest)] = box_coder().encode_single(target, anchor)[0]
    assert torch.allclose(anchor, anchors_at(torch.tensor([np.ravel_multi_index(nearest, grid.shape) * 2 + 1]), grid.shape, extents))
    outputs = VolumeOutputs(logits, deltas)
    table = detect_candidates(outputs, brain, (3.0, 5.0), (1.0, 1.0, 2.0), InferenceSettings.defaults(score_threshold=0.5))
    assert len(table) == 1 and table["diameter_mm"].iloc[0] == pytest.approx(5.0)
    table = candidate_table("007", to_original_image(table, grid.affine, original_affine))
    assert list(table.columns) == CANDIDATE_COLUMNS and table["candidate"].iloc[0] == "007_000"
    ijk = table[["i", "j", "k"]].to_numpy()[0]
    assert tuple(np.rint(ijk).astype(int)) == LESION
    np.testing.assert_allclose(table[["x", "y", "z"]].to_numpy()[0], voxel_to_world(original_affine, ijk)[0], atol=1e-6)
    lesion_world = voxel_to_world(original_affine, LESION)[0]
    assert np.linalg.norm(table[["x", "y", "z"]].to_numpy()[0] - lesion_world) < 0.3  # mm


def test_candidates_outside_the_brain_are_dropped():
    shape = (16, 16, 8)
    logits = torch.full((1, *shape), -9.0)
    logits[0, 1, 1, 1], logits[0, 8, 8, 4] = 5.0, 3.0
    brain = np.zeros(shape, bool)
    brain[5:12, 5:12, 2:6] = True
    outputs = VolumeOutputs(logits, torch.zeros(1, 6, *shape))
    table = detect_candidates(outputs, brain, (3.0,), (1.0, 1.0, 2.0), InferenceSettings.defaults(score_threshold=0.5, brain_margin_mm=2.0))
    assert table[["grid_i", "grid_j", "grid_k"]].to_numpy().tolist() == [[8.0, 8.0, 4.0]]
    every = detect_candidates(outputs, brain, (3.0,), (1.0, 1.0, 2.0), InferenceSettings.defaults(score_threshold=0.0, brain_margin_mm=2.0))
    centres = every[["grid_i", "grid_j", "grid_k"]].to_numpy()
    assert len(every) > 1 and (centres.min(axis=0) >= [3, 3, 1]).all() and (centres.max(axis=0) <= [13, 13, 6]).all()


def test_sliding_window_covers_any_volume_shape_and_matches_one_pass():
    torch.manual_seed(0)
    model = CMBDetector(strides=STRIDES, channels=(4, 8, 8, 16), n_anchors=2, feature_dim=4).eval()
    image = np.random.default_rng(0).normal(size=(2, 37, 30, 10)).astype(np.float32)
    windows = predict_volume(model, image, InferenceSettings.defaults(roi_size=(16, 16, -1), overlap=0.5), torch.device("cpu"))
    assert windows.logits.shape == (2, 37, 30, 10) and windows.deltas.shape == (2, 6, 37, 30, 10)
    whole = predict_volume(model, image, InferenceSettings.defaults(roi_size=(-1, -1, -1)), torch.device("cpu"))
    centre = (slice(None), slice(12, 24), slice(10, 20), slice(None))  # far from every window edge effect
    assert torch.corrcoef(torch.stack([windows.logits[centre].flatten(), whole.logits[centre].flatten()]))[0, 1] > 0.9
    with pytest.raises(ValueError, match="multiple of the network's divisor"):
        predict_volume(model, image, InferenceSettings.defaults(roi_size=(20, 16, -1)), torch.device("cpu"))


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_a_flipped_pass_is_averaged_back_in_the_original_orientation(axis):
    """tta_flips: the mean of the pass over the volume and the pass over its mirror image, the
    latter flipped back, with its box centre code along the flipped axis negated (the others kept)."""
    torch.manual_seed(0)
    model = CMBDetector(strides=STRIDES, channels=(4, 8, 8, 16), n_anchors=2, feature_dim=4).eval()
    torch.nn.init.normal_(model.regression.weight)  # non-zero box codes (initialised to zero)
    image = np.random.default_rng(1).normal(size=(2, 24, 20, 8)).astype(np.float32)

    def run(volume, flips):
        settings = InferenceSettings.defaults(roi_size=(-1, -1, -1), cpu_bfloat16=False, tta_flips=flips)
        return predict_volume(model, volume, settings, torch.device("cpu"))

    plain, mirrored = run(image, ()), run(np.ascontiguousarray(np.flip(image, 1 + axis)), ())
    both = run(image, (axis,))
    back_deltas = torch.flip(mirrored.deltas, dims=(2 + axis,))
    back_deltas[:, axis] = -back_deltas[:, axis]
    torch.testing.assert_close(both.logits, (plain.logits + torch.flip(mirrored.logits, dims=(1 + axis,))) / 2)
    torch.testing.assert_close(both.deltas, (plain.deltas + back_deltas) / 2)
    assert not torch.allclose(both.logits, plain.logits)  # the mirror's pass changed something


def test_the_network_runs_on_the_searched_box_only_and_candidates_keep_whole_grid_voxels():
    """The box is the brain's bounding box grown by brain_margin_mm (voxels per axis, clipped
    to the grid); candidates come back in voxels of the whole grid, inside the searched region,
    the same as the network run on that box by hand."""
    brain = np.zeros((40, 36, 12), bool)
    brain[14:22, 10:20, 4:8] = True
    settings = InferenceSettings.defaults(score_threshold=0.0, brain_margin_mm=4.0, max_candidates=30)
    box = search_box(brain, (1.0, 1.0, 2.0), settings.brain_margin_mm)
    assert box == (slice(10, 26), slice(6, 24), slice(2, 10))
    assert search_box(np.zeros((5, 6, 7), bool), (1.0, 1.0, 2.0), 4.0) == (slice(0, 5), slice(0, 6), slice(0, 7))
    assert search_box(np.ones((5, 6, 7), bool), (1.0, 1.0, 2.0), 4.0) == (slice(0, 5), slice(0, 6), slice(0, 7))
    torch.manual_seed(0)
    model = CMBDetector(strides=STRIDES, channels=(4, 8, 8, 16), n_anchors=2, feature_dim=4).eval()
    image = np.random.default_rng(0).normal(size=(2, *brain.shape)).astype(np.float32)
    table, outputs, used = find_candidates(model, image, brain, (3.0, 5.0), (1.0, 1.0, 2.0), settings, torch.device("cpu"))
    assert used == box and outputs.logits.shape == (2, 16, 18, 8)
    by_hand = detect_candidates(predict_volume(model, image[(slice(None), *box)], settings, torch.device("cpu")),
                                brain[box], (3.0, 5.0), (1.0, 1.0, 2.0), settings)
    np.testing.assert_allclose(table[["grid_i", "grid_j", "grid_k"]].to_numpy(),
                               by_hand[["grid_i", "grid_j", "grid_k"]].to_numpy() + [10, 6, 2], atol=1e-5)
    centres = np.rint(table[["grid_i", "grid_j", "grid_k"]].to_numpy()).astype(int)
    assert len(table) > 5 and (centres.min(axis=0) >= [10, 6, 2]).all() and (centres.max(axis=0) < [26, 24, 10]).all()


def test_a_grid_at_another_spacing_than_the_model_is_refused_with_the_fix():
    card = {"spacing_mm": [1.0, 1.0, 2.0], "name": "cmbflow CMB detector (rpn)"}
    check_spacing(card, (1.0, 1.0, 2.0), "swi.nii.gz")
    with pytest.raises(ValueError, match=r"swi.nii.gz.*detector \(rpn\).*target_spacing_mm"):
        check_spacing(card, (0.5, 0.5, 2.0), "swi.nii.gz")


@pytest.mark.skipif(not cpu_has_bf16(), reason="this CPU has no native bfloat16 (AVX512-BF16/AMX): cpu_bfloat16 is a no-op here")
def test_cpu_bfloat16_inference_is_reproducible_and_ranks_like_float32():
    torch.manual_seed(0)
    model = CMBDetector(strides=STRIDES, channels=(8, 16, 32, 64), n_anchors=2, feature_dim=8).eval()
    image = np.random.default_rng(1).normal(size=(2, 48, 40, 16)).astype(np.float32)
    half = [predict_volume(model, image, InferenceSettings.defaults(cpu_bfloat16=True), torch.device("cpu")) for _ in range(2)]
    full = predict_volume(model, image, InferenceSettings.defaults(cpu_bfloat16=False), torch.device("cpu"))
    assert half[0].logits.dtype == torch.float32  # float32 outputs whatever the arithmetic
    torch.testing.assert_close(half[0].logits, half[1].logits, rtol=0, atol=0)
    difference = (half[0].logits - full.logits).abs()
    assert 0 < float(difference.max()) < 0.1  # bfloat16 did run, and only rounds
    ranks = torch.corrcoef(torch.stack([half[0].logits.flatten(), full.logits.flatten()]))[0, 1]
    assert ranks > 0.99  # an untrained network: its logits vary little, so rounding weighs more than in a trained one


def test_inference_reads_the_phase_as_the_model_card_says(tmp_path):
    """A brain_mad model sees the same input whatever the site's phase contrast (B0 x TE); a
    card without the entry (older models) reads the phase as preprocessed."""
    rng = np.random.default_rng(0)
    shape, affine = (32, 32, 16), np.diag([1.0, 1.0, 2.0, 1.0])
    brain = np.zeros(shape, bool)
    brain[4:28, 4:28, 2:14] = True
    swi = rng.random(shape).astype(np.float32)
    phase = rng.normal(0, 0.01, shape).astype(np.float32)
    phase[16, 16, 8] = 0.08
    torch.manual_seed(0)
    model = CMBDetector(strides=STRIDES, channels=(4, 4, 8, 8), n_anchors=1, feature_dim=4).eval()
    with torch.no_grad():  # untrained scores sit at the 1 % prior; spread them so inputs show
        model.objectness.bias.zero_()
        model.objectness.weight.mul_(5.0)
    settings = InferenceSettings.defaults(score_threshold=0.0, max_candidates=20, cpu_bfloat16=False)

    def scores(contrast: float, normalization: dict):
        folder = tmp_path / f"{contrast}_{normalization['phase_scaling']}"
        folder.mkdir()
        files = {name: str(folder / f"{name}.nii.gz") for name in ("swi", "phase", "brainmask")}
        save_volume(files["swi"], swi, affine)
        save_volume(files["phase"], np.clip(phase * contrast, -1, 1), affine)
        save_volume(files["brainmask"], brain.astype(np.uint8), affine)
        card = {"spacing_mm": [1.0, 1.0, 2.0], "anchors_mm": [3.0], "name": "test", "normalization": normalization}
        table = detect_subject(model, card, "001", files, files["swi"], settings)
        return table["score"].to_numpy()

    mad, plain = PhaseScaling("brain_mad", 6.0).record(), PhaseScaling("pi", 6.0).record()
    mad_change = np.abs(scores(1.0, mad) - scores(13.0, mad)).max()
    plain_change = np.abs(scores(1.0, plain) - scores(13.0, plain)).max()
    assert mad_change < 1e-6 and plain_change > 1e-4  # measured: 6e-8 and 5e-4


def test_the_retinanet_baseline_detects_through_the_same_step_with_its_own_inferer():
    """A RetinaNet (build_detector of its card record) goes through find_candidates: MONAI's
    sliding windows over the searched box, its box selector with our threshold and candidate
    cap, our brain-margin rule; the table is ours (best first, voxels of the whole grid), and
    the probability map paints each box with its score."""
    from cmbflow.inference.detect import BoxScores
    from cmbflow.models.weights import build_detector

    brain = np.zeros((40, 36, 12), bool)
    brain[14:22, 10:20, 4:8] = True
    torch.manual_seed(0)
    model = build_detector({"architecture": "retinanet", "in_channels": 2, "anchors_mm": [3.0, 5.0],
                            "spacing": [1.0, 1.0, 2.0], "depth": 10}).eval()
    image = np.random.default_rng(0).normal(size=(2, *brain.shape)).astype(np.float32)
    settings = InferenceSettings.defaults(score_threshold=0.0, brain_margin_mm=4.0, max_candidates=30, roi_size=(16, 16, -1),
                                          cpu_bfloat16=False)
    table, outputs, box = find_candidates(model, image, brain, (3.0, 5.0), (1.0, 1.0, 2.0), settings, torch.device("cpu"))
    assert isinstance(outputs, BoxScores) and box == (slice(10, 26), slice(6, 24), slice(2, 10))
    assert 0 < len(table) <= 30 and list(table.columns) == ["grid_i", "grid_j", "grid_k", "score", "diameter_mm"]
    assert (np.diff(table["score"].to_numpy()) <= 0).all()
    centres = np.rint(table[["grid_i", "grid_j", "grid_k"]].to_numpy()).astype(int)
    assert (centres.min(axis=0) >= [10, 6, 2]).all() and (centres.max(axis=0) < [26, 24, 10]).all()
    painted = BoxScores(torch.tensor([[1.0, 1.0, 1.0, 3.0, 3.0, 2.0], [2.0, 2.0, 1.0, 4.0, 4.0, 2.0]]),
                        torch.tensor([0.9, 0.3]), (6, 6, 4)).probability()
    assert painted[2, 2, 1] == np.float32(0.9) and painted[4, 4, 1] == np.float32(0.3) and painted[0, 0, 0] == 0
