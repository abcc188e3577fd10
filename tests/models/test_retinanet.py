import sys

import torch

from cmbflow.models.retinanet import ResNetLayers, anchor_shapes, build_retinanet


def test_anchor_shapes_are_the_cubes_in_voxels():
    assert anchor_shapes([3.0, 8.0], [0.5, 0.5, 2.0]) == [[6, 6, 2], [16, 16, 4]]
    assert anchor_shapes([1.0], [1.0, 1.0, 3.0]) == [[1, 1, 1]]  # never below one voxel


def test_resnet_layers_return_what_the_resnet_computes_at_those_layers():
    """The outputs MONAI's BackboneWithFPN gets from torchvision's IntermediateLayerGetter: the
    stem, then layer 1 (key "0") and layer 2 (key "1"), nothing deeper run."""
    torch.manual_seed(0)
    detector = build_retinanet(2, [3.0], [1.0, 1.0, 2.0])
    body = detector.network.feature_extractor.body
    assert isinstance(body, ResNetLayers) and list(body.layers) == ["layer1", "layer2"]
    body.eval()
    x = torch.randn(1, 2, 32, 32, 16)
    with torch.no_grad():
        out = body(x)
        stem = body.stem(x)
        layer1 = body.layers["layer1"](stem)
        assert torch.equal(out["0"], layer1) and torch.equal(out["1"], body.layers["layer2"](layer1))
    assert out["0"].shape[1] == 256 and out["1"].shape[1] == 512  # ResNet-50 bottleneck widths


def test_retinanet_trains_and_detects_without_torchvision(monkeypatch):
    """MONAI's detector with the ATSS matcher and hard-negative sampler: finite losses on a
    patch with a CMB box and one without; in eval mode, sliding-window boxes inside the image.
    Any import of torchvision fails here, as on machines without it (the CPU torch's)."""
    monkeypatch.setitem(sys.modules, "torchvision", None)
    torch.manual_seed(0)
    detector = build_retinanet(2, [3.0, 5.0], [1.0, 1.0, 2.0], roi_size=[32, 32, 16], depth=10)  # small: the same code
    detector.train()
    images = torch.rand(2, 2, 32, 32, 16)
    targets = [{"box": torch.tensor([[12.0, 12.0, 6.0, 16.0, 16.0, 8.0]]), "label": torch.tensor([0])},
               {"box": torch.zeros(0, 6), "label": torch.zeros(0, dtype=torch.long)}]
    losses = detector(images, targets)
    total = losses[detector.cls_key] + losses[detector.box_reg_key]
    assert torch.isfinite(total) and float(losses[detector.box_reg_key].detach()) > 0
    total.backward()
    assert detector.network.feature_extractor.body.stem[0].weight.grad is not None
    detector.eval()
    with torch.no_grad():
        found = detector(torch.rand(1, 2, 32, 40, 16), use_inferer=True)[0]
    boxes = found["box"]
    assert boxes.shape[1] == 6 and len(boxes) == len(found["label_scores"]) > 0
    assert (boxes[:, :3] >= -1e-3).all() and (boxes[:, 3:] <= torch.tensor([32, 40, 16]) + 1e-3).all()


def test_a_retinanet_model_folder_loads_as_it_was_saved(tmp_path):
    """The card's network record names the architecture; load_model rebuilds the baseline from it
    and loads its state_dict with weights_only (what inference, the figures and fine-tuning read)."""
    from cmbflow.models.weights import load_model, save_model

    record = {"architecture": "retinanet", "in_channels": 2, "anchors_mm": [3.0], "spacing": [1.0, 1.0, 2.0], "depth": 10}
    torch.manual_seed(0)
    detector = build_retinanet(2, [3.0], [1.0, 1.0, 2.0], depth=10)
    files = {"weights": str(tmp_path / "model.pt"), "card": str(tmp_path / "model_card.json")}
    save_model(files, {"detector": detector.state_dict()}, {"network": record})
    loaded, card = load_model(files["weights"], files["card"])
    assert type(loaded) is type(detector) and not loaded.training and card["network"] == record
    for name, tensor in detector.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], tensor, msg=name)
