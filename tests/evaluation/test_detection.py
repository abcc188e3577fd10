import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from cmbflow.evaluation.detection import HitRule, load_truth, match_candidates, possible_as_definite


def _labels():
    labels = np.zeros((20, 20, 10), np.int32)
    labels[5, 5, 5] = 1  # a one-voxel CMB
    labels[14:16, 14:16, 4:6] = 2
    return labels


def test_a_hit_is_a_centre_inside_the_mask_dilated_by_one_voxel():
    candidates = pd.DataFrame({"i": [6.4, 15.0, 7.0, 15.2, 10.0], "j": [5.6, 14.0, 5.0, 15.0, 10.0], "k": [4.0, 5.0, 5.0, 4.0, 5.0],
                               "score": [0.9, 0.8, 0.7, 0.6, 0.5]})
    matched = match_candidates(candidates, _labels(), HitRule.defaults())
    assert matched["lesion"].tolist() == [1, 2, 0, 2, 0]  # (7, 5, 5) is two voxels from CMB 1: a miss
    assert matched["outcome"].tolist() == ["tp", "tp", "fp", "duplicate", "fp"]
    assert match_candidates(candidates, _labels(), HitRule.defaults(dilation_voxels=0))["lesion"].tolist() == [0, 2, 0, 2, 0]


def test_distance_rule_hits_within_the_larger_of_radius_and_r_min(tmp_path):
    markers = tmp_path / "markers.tsv"
    pd.DataFrame({"x": [0.0, 20.0], "y": [0.0, 0.0], "z": [0.0, 0.0], "radius_mm": [3.0, 0.5]}).to_csv(markers, sep="\t", index=False)
    truth = load_truth(None, str(markers))
    candidates = pd.DataFrame({"x": [2.9, 21.4, 21.6, 3.1, 1.0], "y": [0.0] * 5, "z": [0.0] * 5, "score": [0.9, 0.8, 0.7, 0.6, 0.5]})
    matched = match_candidates(candidates, truth, HitRule.defaults(kind="distance", r_min_mm=1.5))
    # 2.9 mm from CMB 1 (radius 3): hit; 1.4 mm from CMB 2 (radius 0.5 < r_min 1.5): hit; 1.6 mm: miss; 3.1 mm: miss
    assert matched["lesion"].tolist() == [1, 2, 0, 0, 1]
    assert matched["outcome"].tolist() == ["tp", "tp", "fp", "fp", "duplicate"]
    with pytest.raises(ValueError, match="distance"):
        match_candidates(candidates, truth, HitRule.defaults(kind="mask"))


def test_truth_from_a_mask_has_world_centres_and_ball_radii(tmp_path):
    labels = np.zeros((20, 20, 10), np.int16)
    labels[2:5, 2:5, 2:5] = 1  # 27 voxels of 2 mm^3
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    affine[:3, 3] = (-10, 5, 0)
    path = tmp_path / "mask.nii.gz"
    nib.save(nib.Nifti1Image(labels, affine), path)
    truth = load_truth(str(path))
    lesion = truth.lesions.iloc[0]
    assert (lesion["x"], lesion["y"], lesion["z"]) == pytest.approx((-7.0, 8.0, 6.0))
    assert lesion["radius_mm"] == pytest.approx((3 * 54 / (4 * np.pi)) ** (1 / 3))


def test_a_possible_cmb_mapped_from_its_marker_and_its_hits_are_neither_true_nor_false(tmp_path):
    path, markers = tmp_path / "mask.nii.gz", tmp_path / "markers.tsv"
    nib.save(nib.Nifti1Image(_labels(), np.eye(4)), path)
    # the marker lies one voxel off CMB 2's mask (next to it counts); a definite marker changes nothing
    pd.DataFrame({"x": [5.0, 13.0], "y": [5.0, 14.0], "z": [5.0, 4.0], "rating": ["definite", "uncertain"]}).to_csv(markers, sep="\t", index=False)
    truth = load_truth(str(path), str(markers))
    assert truth.lesions.sort_values("lesion")["rating"].tolist() == ["definite", "possible"]
    candidates = pd.DataFrame({"i": [15.0, 5.0, 14.0, 0.0], "j": [15.0, 5.0, 14.0, 0.0], "k": [5.0, 5.0, 4.0, 0.0],
                               "score": [0.9, 0.8, 0.7, 0.6], "subject": "s"})
    matched = match_candidates(candidates, truth, HitRule.defaults())
    assert matched["outcome"].tolist() == ["possible", "tp", "possible", "fp"]
    assert possible_as_definite(matched)["outcome"].tolist() == ["tp", "tp", "duplicate", "fp"]
