import numpy as np
import torch

from cmbflow.evaluation.embedding import embed, features_at, negative_voxels
from cmbflow.io.coords import voxel_to_world
from cmbflow.models.detector import CMBDetector


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
    model = CMBDetector(channels=(4, 8, 8, 16), feature_dim=8).eval()
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
    model = CMBDetector(channels=(4, 8, 8, 16), feature_dim=8)
    assert features_at(model, np.zeros((2, 32, 32, 16), np.float32), np.zeros((0, 3)), (32, 32, 16)).shape == (0, 8)
