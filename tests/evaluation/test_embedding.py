import numpy as np
import pandas as pd
import torch

from cmbflow.evaluation.embedding import collect_vectors, embed, features_at, negative_voxels
from cmbflow.io.coords import voxel_to_world, world_to_voxel
from cmbflow.io.model_input import PhaseScaling, load_model_input
from cmbflow.io.nifti import save_volume
from cmbflow.models.detector import CMBDetector
from tests.config_defaults import default_strides

STRIDES = default_strides()


def test_negatives_lie_in_the_brain_and_away_from_what_to_avoid():
    brain = np.zeros((30, 30, 10), bool)
    brain[5:25, 5:25, 2:8] = True
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    avoid = voxel_to_world(affine, np.array([[15.0, 15.0, 5.0]]))
    voxels = negative_voxels(brain, affine, avoid, (1.0, 1.0, 2.0), away_mm=6.0, n=50, rng=np.random.default_rng(0))
    assert len(voxels) == 50 and brain[tuple(voxels.T)].all()
    distance = np.linalg.norm((voxels - [15, 15, 5]) * [1.0, 1.0, 2.0], axis=1)
    assert distance.min() >= 6.0
    assert len(np.unique(voxels, axis=0)) == 50  # drawn without replacement


def test_features_at_read_the_fused_map_at_the_patch_centre():
    torch.manual_seed(0)
    model = CMBDetector(strides=STRIDES, channels=(4, 8, 8, 16), feature_dim=8).eval()
    image = np.random.default_rng(1).normal(size=(2, 32, 32, 16)).astype(np.float32)
    vectors = features_at(model, image, np.array([[16, 16, 8], [10, 20, 6]]), (32, 32, 16))
    assert vectors.shape == (2, 8)
    with torch.no_grad():
        whole = model(torch.from_numpy(image[None])).features[0, :, 16, 16, 8].numpy()
    np.testing.assert_allclose(vectors[0], whole, rtol=1e-5, atol=1e-5)  # the centred patch is the whole image
    assert not np.allclose(vectors[0], vectors[1])


def test_embedding_is_two_dimensional_and_seeded():
    vectors = np.random.default_rng(0).normal(size=(40, 8)).astype(np.float32)
    first, again = embed(vectors, seed=1), embed(vectors, seed=1)
    assert first.shape == (40, 2) and np.allclose(first, again)


def test_no_location_gives_an_empty_matrix_of_the_feature_width():
    model = CMBDetector(strides=STRIDES, channels=(4, 8, 8, 16), feature_dim=8)
    assert features_at(model, np.zeros((2, 32, 32, 16), np.float32), np.zeros((0, 3)), (32, 32, 16)).shape == (0, 8)


def test_every_group_is_read_at_its_own_position_row_by_row(tmp_path):
    """TP, FP (candidates), FN (a missed CMB) and TN (drawn voxels): row n of the vectors is the
    fused map at row n's position, whatever the group."""
    torch.manual_seed(0)
    model = CMBDetector(strides=STRIDES, channels=(4, 8, 8, 16), feature_dim=8).eval()
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    affine[:3, 3] = [-16.0, -16.0, -8.0]
    image = np.random.default_rng(2).normal(size=(2, 32, 32, 16)).astype(np.float32)
    files = {"swi": str(tmp_path / "swi.nii.gz"), "phase": str(tmp_path / "phase.nii.gz"), "brainmask": str(tmp_path / "brain.nii.gz")}
    save_volume(files["swi"], image[0], affine)
    save_volume(files["phase"], image[1], affine)
    save_volume(files["brainmask"], np.ones(image.shape[1:], np.uint8), affine)
    normalization = {"phase_scaling": "pi", "phase_mads": 6.0}
    card = {"name": "test", "inputs": ["swi", "phase"], "training": {"patch_size": [16, 16, 8]}, "normalization": normalization}
    world = voxel_to_world(affine, np.array([[10, 12, 5], [20, 8, 9], [5, 25, 3]]))  # TP, FP, a missed CMB
    candidates = pd.DataFrame({"subject": "001", "candidate": ["001_000", "001_001"], "x": world[:2, 0], "y": world[:2, 1],
                               "z": world[:2, 2], "score": [0.9, 0.6]})
    matched = candidates.assign(outcome=["tp", "fp"], lesion=[1, np.nan], filter="after")
    lesions = pd.DataFrame({"subject": "001", "lesion": [1, 2], "x": world[[0, 2], 0], "y": world[[0, 2], 1], "z": world[[0, 2], 2]})
    table, vectors = collect_vectors(model, card, {"001": files}, candidates, matched, lesions, threshold=0.5, n_tn=3)
    assert table["kind"].tolist() == ["TP", "FP", "FN", "TN", "TN", "TN"] and vectors.shape == (6, 8)
    seen = load_model_input(files, PhaseScaling.from_record(normalization, "card"), ["swi", "phase"]).image  # what the model read
    for row, vector in zip(table.itertuples(), vectors):
        voxel = world_to_voxel(affine, np.array([[row.x, row.y, row.z]]))
        np.testing.assert_allclose(vector, features_at(model, seen, voxel, (16, 16, 8))[0], rtol=1e-5, atol=1e-5)
    assert not np.allclose(vectors[0], vectors[1])
