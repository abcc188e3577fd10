import numpy as np

from cmbflow.synth.rating import rate_cmbs


def test_a_cmb_in_a_signal_void_is_possible_and_one_in_tissue_definite():
    """Brain median SWI 1; CMB 1 sits in tissue, CMB 2 in a void at 0.3 (below a third), CMB 3 in a
    dim patch at 0.4 (above it): only CMB 2 is possible. Voxels 1 x 1 x 2 mm."""
    swi = np.ones((40, 40, 20), np.float32)
    labels = np.zeros(swi.shape, np.int16)
    brain = np.ones(swi.shape, bool)
    for label, (i, j, k), around in ((1, (8, 8, 10), 1.0), (2, (20, 20, 10), 0.3), (3, (31, 31, 10), 0.4)):
        swi[i - 6:i + 7, j - 6:j + 7, k - 3:k + 4] = around
        labels[i - 1:i + 2, j - 1:j + 2, k] = label
        swi[labels == label] = 0.05
    assert rate_cmbs(swi, labels, brain, (1.0, 1.0, 2.0)) == {1: "definite", 2: "possible", 3: "definite"}
    # the outside of the brain is no surroundings: a CMB in a corner of the brain, dark air on two sides, stays definite
    swi, labels = np.ones((40, 40, 20), np.float32), np.zeros((40, 40, 20), np.int16)
    labels[8:11, 8:11, 10] = 1
    outside = np.zeros(swi.shape, bool)
    outside[:9], outside[:, :9] = True, True
    swi[outside | (labels > 0)] = 0.0
    assert rate_cmbs(swi, labels, ~outside | (labels > 0), (1.0, 1.0, 2.0)) == {1: "definite"}
    assert rate_cmbs(swi, labels, np.ones(swi.shape, bool), (1.0, 1.0, 2.0)) == {1: "possible"}  # were the air brain
