import numpy as np
import torch

from cmbflow.figures.saliency import CentreScore, saliency_at
from cmbflow.models.detector import CMBDetector


def test_saliency_is_the_gradient_of_the_centre_score_times_the_input():
    torch.manual_seed(0)
    model = CMBDetector(channels=(4, 8, 8, 16), strides=((1, 1, 1), (2, 2, 1), (2, 2, 2), (2, 2, 2)), feature_dim=8).eval()
    image = np.random.default_rng(0).normal(0.5, 0.1, (2, 40, 40, 20)).astype(np.float32)
    size = (16, 16, 8)
    patch = torch.from_numpy(image[None, :, 12:28, 12:28, 6:14].copy()).requires_grad_(True)  # centred on (20, 20, 10)
    CentreScore(model)(patch)[0, 0].backward()
    expected = (patch.grad * patch.detach()).abs().sum(dim=1)[0].numpy()
    saliency = saliency_at(model, image, (20, 20, 10), size)
    assert saliency.shape == size and saliency.max() > 0
    np.testing.assert_allclose(saliency, expected, rtol=1e-4, atol=1e-9)
    # the score at the centre depends on its neighbourhood more than on the patch's corners
    assert saliency[6:10, 6:10, 3:5].mean() > saliency[:2, :2, :2].mean()
