"""MONAI's 3-D RetinaNet, the detector a user of the field would pick instead of ours (the baseline).

Built from MONAI's detection app as its LUNA16 lung-nodule bundle builds it: a 3-D ResNet-50
(``monai.networks.nets.resnet``) with a feature pyramid (``FeaturePyramidNetwork``) over its
layers 1 and 2, the RetinaNet classification and box heads (``RetinaNet``), anchors of given
shapes at the pyramid's scales (``AnchorGeneratorWithAnchorShape``), and ``RetinaNetDetector``
with its ATSS matcher, hard-negative sampler, box selector and sliding-window inferer. All of
that is used as MONAI ships it. In this workflow it is the detector variant of architecture
``retinanet`` (config ``detector.variants``), trained by the one training loop and run by the
same inference step as ours.

Written here, the two places where MONAI's detection app reaches for torchvision, which has no
build for the CPU torch these machines install (docs/development.md):

* :class:`ResNetLayers` runs the ResNet up to its deepest returned layer and returns those
  layers' outputs; MONAI's ``resnet_fpn_feature_extractor`` / ``BackboneWithFPN`` do this with
  torchvision's ``IntermediateLayerGetter`` (and ``_validate_trainable_layers``).
* :class:`ATSSRetinaNetDetector` matches anchors with the ATSS matcher alone;
  ``RetinaNetDetector.compute_anchor_matched_idxs`` first asks whether its matcher is
  torchvision's ``Matcher``, which fails without torchvision. MONAI's docstring names overriding
  that method as the way to plug in a matcher.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from monai.apps.detection.networks.retinanet_detector import RetinaNetDetector
from monai.apps.detection.networks.retinanet_network import RetinaNet
from monai.apps.detection.utils.anchor_utils import AnchorGeneratorWithAnchorShape
from monai.apps.detection.utils.ATSS_matcher import ATSSMatcher
from monai.networks.blocks.feature_pyramid_network import FeaturePyramidNetwork, LastLevelMaxPool
from monai.networks.nets import resnet
from torch import nn

from cmbflow.models.anchors import anchor_extents

# The LUNA16 bundle's settings (model-zoo lung_nodule_ct_detection, configs/inference.json)
RETURNED_LAYERS = (1, 2)
FPN_CHANNELS = 256
SIZE_DIVISIBLE = (16, 16, 8)
BOX_SELECTOR = {"score_thresh": 0.02, "topk_candidates_per_level": 1000, "nms_thresh": 0.22, "detections_per_img": 300}


class ResNetLayers(nn.Module):
    """A MONAI ResNet's stem and layers up to the deepest of ``returned`` (1-4); ``forward``
    returns ``{"0": layer output, "1": ...}`` in the order of ``returned``: what torchvision's
    ``IntermediateLayerGetter`` returns inside MONAI's ``BackboneWithFPN``. Layers after the
    deepest returned one, the pooling and the classifier are dropped."""

    def __init__(self, backbone: resnet.ResNet, returned=RETURNED_LAYERS):
        super().__init__()
        if not returned or min(returned) < 1 or max(returned) > 4:
            raise ValueError(f"returned layers must lie in 1..4, not {returned}")
        self.returned = {f"layer{k}": str(n) for n, k in enumerate(returned)}
        self.stem = nn.Sequential(backbone.conv1, backbone.bn1, backbone.act, backbone.maxpool)
        self.layers = nn.ModuleDict({f"layer{k}": getattr(backbone, f"layer{k}") for k in range(1, max(returned) + 1)})

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        x = self.stem(x)
        out: OrderedDict[str, torch.Tensor] = OrderedDict()
        for name, layer in self.layers.items():
            x = layer(x)
            if name in self.returned:
                out[self.returned[name]] = x
        return out


class ResNetFPN(nn.Module):
    """:class:`ResNetLayers` followed by MONAI's ``FeaturePyramidNetwork`` (max-pooled extra
    level), as MONAI's ``BackboneWithFPN``; ``out_channels`` is what ``RetinaNet`` reads."""

    def __init__(self, backbone: resnet.ResNet, returned=RETURNED_LAYERS, out_channels: int = FPN_CHANNELS):
        super().__init__()
        stage2 = backbone.in_planes // 8  # MONAI's _resnet_fpn_extractor: channels of layer 1's output / 2
        self.body = ResNetLayers(backbone, returned)
        self.fpn = FeaturePyramidNetwork(spatial_dims=3, in_channels_list=[stage2 * 2 ** (k - 1) for k in returned],
                                         out_channels=out_channels, extra_blocks=LastLevelMaxPool(3))
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.fpn(self.body(x))


class ATSSRetinaNetDetector(RetinaNetDetector):
    """MONAI's ``RetinaNetDetector`` whose anchor matching goes straight to its ATSS matcher
    (module docstring); everything else is MONAI's."""

    def compute_anchor_matched_idxs(self, anchors, targets, num_anchor_locs_per_level):
        """Per image, the ground-truth index each anchor is matched with (negative: none), from
        ``self.proposal_matcher`` (an ``ATSSMatcher``, :func:`build_retinanet`)."""
        if not isinstance(self.proposal_matcher, ATSSMatcher):
            raise TypeError(f"{type(self).__name__} matches with monai's ATSSMatcher, not {type(self.proposal_matcher).__name__}")
        matched = []
        for anchors_per_image, targets_per_image in zip(anchors, targets):
            boxes = targets_per_image[self.target_box_key]
            if boxes.numel() == 0:
                matched.append(torch.full((anchors_per_image.size(0),), -1, dtype=torch.int64, device=anchors_per_image.device))
                continue
            _, index = self.proposal_matcher(boxes.to(anchors_per_image.device), anchors_per_image, num_anchor_locs_per_level,
                                             self.num_anchors_per_loc)
            matched.append(index)
        return matched


class Float32RetinaNet(RetinaNet):
    """MONAI's ``RetinaNet`` whose head outputs are float32 whatever the forward pass ran in:
    under bfloat16 autocast (:func:`cmbflow.device.autocast`) the box decoding, the matching
    and the losses downstream then run in float32 (bfloat16 keeps 8 bits, 2 voxels at index 500)."""

    def forward(self, images: torch.Tensor):
        outputs = super().forward(images)
        return {key: [t.float() for t in maps] for key, maps in outputs.items()}


def is_retinanet(model: nn.Module) -> bool:
    """Whether ``model`` is the baseline (else our :class:`cmbflow.models.detector.CMBDetector`)."""
    return isinstance(model, RetinaNetDetector)


def level0_outputs(detector: RetinaNetDetector, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Classification logits ``(B, A, d, h, w)`` and pyramid features ``(B, F, d, h, w)`` of the
    finest pyramid level (stride 4 x 4 x 2 of the input): what the saliency and t-SNE figures
    read of our detector's fused map. ``images`` must be divisible by :data:`SIZE_DIVISIBLE`."""
    features = list(detector.network.feature_extractor(images).values())[0]
    return detector.network.classification_head([features])[0], features


def anchor_shapes(anchors_mm, spacing) -> list[list[int]]:
    """Anchor box shapes (voxels, whole, at least 1) of cubes ``anchors_mm`` wide on a grid of
    ``spacing`` mm: our detector's extents (:func:`cmbflow.models.anchors.anchor_extents`) rounded,
    as MONAI's anchor generator takes them."""
    return anchor_extents(anchors_mm, spacing).round().clamp(min=1).int().tolist()


def build_retinanet(in_channels: int, anchors_mm, spacing, roi_size=None, overlap: float = 0.25,
                    depth: int = 50, hard_negative_pool: float = 20) -> ATSSRetinaNetDetector:
    """The baseline detector: ``in_channels`` inputs (SWI[, phase]), one class (CMB), one anchor
    per entry of ``anchors_mm`` (cubes, mm) at every pyramid level, on a grid of ``spacing`` mm.
    ATSS matching and hard-negative sampling as in MONAI's detection tutorial; ``roi_size``
    (voxels) sets the sliding-window inferer when given (the bundle's overlap 0.25). ``depth``:
    the ResNet's (10, 18, 34, 50; the bundle's is 50). ``hard_negative_pool``: the hard-negative
    sampler's ``pool_size`` (training only): each patch's negatives are drawn at random from its
    ``pool x n`` highest-scoring unmatched anchors (MONAI's tutorial: 20; the workflow passes config
    ``detector.retinanet.hard_negative_pool``)."""
    if depth not in (10, 18, 34, 50):
        raise ValueError(f"ResNet depth must be 10, 18, 34 or 50, not {depth}")
    backbone = getattr(resnet, f"resnet{depth}")(spatial_dims=3, n_input_channels=in_channels, conv1_t_stride=[2, 2, 1],
                                                 conv1_t_size=[7, 7, 7])
    network = Float32RetinaNet(spatial_dims=3, num_classes=1, num_anchors=len(anchors_mm),
                               feature_extractor=ResNetFPN(backbone), size_divisible=list(SIZE_DIVISIBLE))
    anchors = AnchorGeneratorWithAnchorShape(feature_map_scales=[2 ** n for n in range(len(RETURNED_LAYERS) + 1)],
                                             base_anchor_shapes=anchor_shapes(anchors_mm, spacing))
    detector = ATSSRetinaNetDetector(network, anchors, spatial_dims=3, num_classes=1)
    detector.set_atss_matcher(num_candidates=4, center_in_gt=False)
    detector.set_hard_negative_sampler(batch_size_per_image=64, positive_fraction=0.3, pool_size=hard_negative_pool, min_neg=16)
    detector.set_target_keys(box_key="box", label_key="label")
    detector.set_box_selector_parameters(**BOX_SELECTOR)
    if roi_size is not None:
        detector.set_sliding_window_inferer(roi_size=list(roi_size), overlap=overlap, sw_batch_size=1, mode="constant",
                                            device="cpu")
    return detector
