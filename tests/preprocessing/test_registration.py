"""Registration on a phantom with a known template <-> subject mapping."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from cmbflow.io.coords import grid_world_coordinates
from cmbflow.preprocessing.antsimage import to_ants
from cmbflow.preprocessing.quality import dice
from cmbflow.preprocessing.registration import RegistrationSettings, map_points, register_template, warp_to_grid

SHAPE = (44, 48, 40)
SPACING = 2.0
# Ellipsoids (centre mm, semi-axes mm, intensity, label): an asymmetric "head".
BLOBS = [((0, 0, 0), (34, 40, 30), 1.0, 1), ((12, 10, 4), (9, 7, 8), 2.0, 2), ((-14, -16, -8), (7, 10, 6), 0.4, 3),
         ((4, -22, 14), (6, 6, 9), 1.6, 2)]
# subject world x -> template world  A x + t
MATRIX = Rotation.from_euler("xyz", (6, -4, 5), degrees=True).as_matrix() @ np.diag([1.05, 0.97, 1.02])
SHIFT = np.array([3.0, -2.0, 4.0])


def _phantom(world):
    image, labels = np.zeros(world.shape[:3], np.float32), np.zeros(world.shape[:3], np.int32)
    for centre, axes, value, label in BLOBS:
        inside = (((world - centre) / axes) ** 2).sum(-1) <= 1
        image[inside], labels[inside] = value, label
    return image, labels


@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    affine = np.diag([SPACING] * 3 + [1.0])
    affine[:3, 3] = -(np.array(SHAPE) - 1) / 2 * SPACING
    template_world = grid_world_coordinates(affine, SHAPE)
    template, template_labels = _phantom(template_world)
    subject_affine = affine.copy()
    subject_affine[:3, :3] = np.diag([-SPACING, SPACING, SPACING])  # stored LAS
    subject_affine[0, 3] = -affine[0, 3]
    subject_world = grid_world_coordinates(subject_affine, SHAPE)
    subject, subject_labels = _phantom(subject_world @ MATRIX.T + SHIFT)
    out = tmp_path_factory.mktemp("reg")
    # The phantom is small (~80k voxels) and its label-3 blob a few voxels wide: the defaults, tuned for
    # heads (~340k voxels at 2.5 mm), leave it at Dice ~0.89 with some thread counts; these settings
    # (the pre-2.5-mm defaults) register it reliably.
    settings = RegistrationSettings.defaults(stages=("rigid", "affine", "syn"), spacing_mm=SPACING, syn_iterations=(20, 10, 0),
                                    linear_iterations=(200, 100, 50), sampling_rate=0.25)
    result = register_template(to_ants(subject, subject_affine), to_ants(template, affine), settings,
                               out / "fwd.h5", out / "inv.h5")
    return result, subject_affine, subject_labels, to_ants(template_labels.astype(np.float32), affine)


def test_warped_template_labels_overlap_the_subject(registered):
    result, subject_affine, subject_labels, template_labels = registered
    reference = to_ants(np.zeros(SHAPE, np.float32), subject_affine)
    warped = warp_to_grid(template_labels, reference, result.forward, "genericLabel")
    for label in (1, 2, 3):
        assert dice(warped == label, subject_labels == label) > 0.9


def test_points_map_subject_to_template_and_back(registered):
    result = registered[0]
    subject_points = np.array([[10.0, 8.0, 2.0], [-12.0, -14.0, -6.0], [0.0, 0.0, 0.0]])
    expected = subject_points @ MATRIX.T + SHIFT
    in_template = map_points(subject_points, result.forward)
    np.testing.assert_allclose(in_template, expected, atol=1.5)  # under one 2 mm voxel
    np.testing.assert_allclose(map_points(in_template, result.inverse), subject_points, atol=0.5)
    assert map_points(np.zeros((0, 3)), result.forward).shape == (0, 3)


def test_stages_must_be_an_ordered_subset():
    assert RegistrationSettings.defaults(stages=("affine", "syn")).stages == ("affine", "syn")
    with pytest.raises(ValueError, match="ordered subset"):
        RegistrationSettings.defaults(stages=("syn", "affine"))
    with pytest.raises(ValueError, match="metric"):
        RegistrationSettings.defaults(metric="GC")
    settings = RegistrationSettings.defaults(stages=["rigid"], syn_iterations=[5])
    assert settings.stages == ("rigid",) and settings.syn_iterations == (5,)


def test_a_slab_that_misses_the_top_of_the_head_registers(tmp_path):
    """Many SWI protocols cover a slab, not the whole head (here the top 30 % is cut off):
    the template must still land on what was scanned, not slide to fill the field of view."""
    affine = np.diag([SPACING] * 3 + [1.0])
    affine[:3, 3] = -(np.array(SHAPE) - 1) / 2 * SPACING
    template, template_labels = _phantom(grid_world_coordinates(affine, SHAPE))
    slab_shape = SHAPE[:2] + (int(SHAPE[2] * 0.7),)
    subject_world = grid_world_coordinates(affine, slab_shape)
    subject, subject_labels = _phantom(subject_world @ MATRIX.T + SHIFT)
    settings = RegistrationSettings.defaults(stages=("rigid", "affine", "syn"), spacing_mm=SPACING, syn_iterations=(20, 10, 0),
                                    linear_iterations=(200, 100, 50), sampling_rate=0.25)
    result = register_template(to_ants(subject, affine), to_ants(template, affine), settings,
                               tmp_path / "fwd.h5", tmp_path / "inv.h5")
    warped = warp_to_grid(to_ants(template_labels.astype(np.float32), affine), to_ants(subject, affine), result.forward,
                          "genericLabel")
    for label in (1, 2, 3):
        assert dice(warped == label, subject_labels == label) > 0.85
    points = np.array([[10.0, 8.0, 2.0], [-12.0, -14.0, -6.0]])
    np.testing.assert_allclose(map_points(points, result.forward), points @ MATRIX.T + SHIFT, atol=2.0)
