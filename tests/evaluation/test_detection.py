import numpy as np
import pandas as pd
import pytest

from cmbflow.evaluation.detection import froc, match_candidates, sensitivity_at


def _labels():
    labels = np.zeros((20, 20, 10), np.int32)
    labels[5, 5, 5] = 1  # a one-voxel CMB
    labels[14:16, 14:16, 4:6] = 2
    return labels


def test_a_hit_is_a_centre_inside_the_mask_dilated_by_one_voxel():
    candidates = pd.DataFrame({"i": [6.4, 15.0, 7.0, 15.2, 10.0], "j": [5.6, 14.0, 5.0, 15.0, 10.0], "k": [4.0, 5.0, 5.0, 4.0, 5.0],
                               "score": [0.9, 0.8, 0.7, 0.6, 0.5]})
    matched = match_candidates(candidates, _labels())
    assert matched["lesion"].tolist() == [1, 2, 0, 2, 0]  # (7, 5, 5) is two voxels from CMB 1: a miss
    assert matched["outcome"].tolist() == ["tp", "tp", "fp", "duplicate", "fp"]
    assert match_candidates(candidates, _labels(), dilation_voxels=0)["lesion"].tolist() == [0, 2, 0, 2, 0]


def test_froc_counts_false_positives_per_subject_and_skips_duplicates():
    matched = pd.DataFrame({"score": [0.9, 0.8, 0.7, 0.6, 0.5, 0.4], "outcome": ["tp", "fp", "duplicate", "fp", "tp", "fp"]})
    points = froc(matched, n_lesions=4, n_subjects=2)
    assert points["sensitivity"].tolist() == [0.0, 0.25, 0.25, 0.25, 0.5, 0.5]
    assert points["fp_per_subject"].tolist() == [0.0, 0.0, 0.5, 1.0, 1.0, 1.5]
    assert sensitivity_at(points, 0.0) == 0.25
    assert sensitivity_at(points, 1.0) == 0.5
    with pytest.raises(ValueError):
        froc(matched, n_lesions=0, n_subjects=2)
