import pytest
import torch

from cmbflow.models.detector import CMBDetector, folded_for_inference
from cmbflow.models.prototypes import Prototypes, concentration_loss
from tests.config_defaults import default_strides

STRIDES = default_strides()
SMALL = dict(channels=(4, 8, 8, 16), strides=STRIDES, n_anchors=2, feature_dim=6)


@pytest.mark.parametrize("fuse", [False, True])
def test_detector_output_shapes(fuse):
    torch.manual_seed(0)
    model = CMBDetector(fuse_levels=fuse, **SMALL)
    out = model(torch.randn(2, 2, 16, 16, 8))
    assert model.divisor == (8, 8, 4)
    assert out.logits.shape == (2, 2, 16, 16, 8)
    assert out.deltas.shape == (2, 2, 6, 16, 16, 8)
    assert out.features.shape == (2, 6, 16, 16, 8)
    assert [tuple(level.shape[2:]) for level in out.levels] == [(4, 4, 4), (8, 8, 8), (16, 16, 8)]
    assert len(model.projections) == (3 if fuse else 1)


def test_ffm_feature_map_draws_on_all_three_decoder_levels():
    """Every level's projection reaches the fused map (its weights get a gradient)."""
    torch.manual_seed(0)
    model = CMBDetector(fuse_levels=True, **SMALL)
    out = model(torch.randn(1, 2, 16, 16, 8))
    out.features.sum().backward()
    assert all(p.weight.grad is not None and p.weight.grad.abs().sum() > 0 for p in model.projections)


def test_folded_batch_norms_give_the_same_outputs_and_leave_the_model_as_it_was():
    """Inference folds every batch norm into its convolution: no norm is left in the copy, the
    outputs equal the model's (norms with statistics of their own, box head not at zero), and
    the model still holds its norms."""
    torch.manual_seed(0)
    model = CMBDetector(fuse_levels=True, **SMALL)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm3d)]
    for norm in norms:
        norm.running_mean.uniform_(-1, 1)
        norm.running_var.uniform_(0.5, 2)
        norm.weight.data.uniform_(0.5, 1.5)
        norm.bias.data.uniform_(-0.5, 0.5)
    torch.nn.init.normal_(model.regression.weight)
    model.eval()
    folded = folded_for_inference(model)
    assert not any(isinstance(m, torch.nn.BatchNorm3d) for m in folded.modules())
    assert sum(isinstance(m, torch.nn.BatchNorm3d) for m in model.modules()) == len(norms) > 10
    x = torch.randn(1, 2, 16, 16, 8)
    with torch.no_grad():
        expected, got = model(x), folded(x)
    assert torch.allclose(got.logits, expected.logits, atol=1e-4)
    assert torch.allclose(got.deltas, expected.deltas, atol=1e-4)
    assert expected.deltas.abs().max() > 0.1


def test_detector_refuses_a_shape_that_does_not_divide():
    with pytest.raises(ValueError, match="multiple of"):
        CMBDetector(**SMALL)(torch.zeros(1, 2, 12, 16, 8))


def test_concentration_loss_pulls_features_to_their_class_prototype():
    torch.manual_seed(0)
    features = torch.randn(30, 6, requires_grad=True)
    labels = torch.arange(30) % 3
    prototypes = Prototypes(6)
    optimizer = torch.optim.Adam([features, *prototypes.parameters()], lr=0.1)
    before = prototypes(features, labels).item()
    for _ in range(50):
        optimizer.zero_grad()
        loss = prototypes(features, labels)
        loss.backward()
        optimizer.step()
    after = concentration_loss(features, labels, prototypes.prototypes).item()
    assert after < 0.1 * before
    assert concentration_loss(torch.zeros(0, 6), torch.zeros(0, dtype=torch.long), prototypes.prototypes).item() == 0.0
    with pytest.raises(ValueError, match="features"):
        concentration_loss(torch.zeros(4, 5), torch.zeros(4, dtype=torch.long), prototypes.prototypes)
