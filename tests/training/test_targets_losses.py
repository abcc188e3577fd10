import pytest
import torch

from cmbflow.models.anchors import anchor_extents, box_centres, boxes_from_centres, make_anchors
from cmbflow.models.detector import CMBDetector
from cmbflow.models.postprocess import box_coder
from cmbflow.models.prototypes import CLASSES, Prototypes
from cmbflow.training.losses import detection_loss, sample_locations
from cmbflow.training.targets import IGNORED, NEGATIVE, POSITIVE, assign_targets
from tests.config_defaults import default_strides

STRIDES = default_strides()


SPACING = (1.0, 1.0, 2.0)
SHAPE = (16, 16, 8)
EXTENTS = anchor_extents([2.5, 5.0, 9.0], SPACING)


def _anchors():
    return make_anchors(SHAPE, EXTENTS)


def test_a_lesion_gets_its_matching_anchor_and_far_anchors_are_negative():
    anchors = _anchors()
    lesion = boxes_from_centres(torch.tensor([[5.0, 6.0, 3.0]]), torch.tensor([5.0]), SPACING)
    targets = assign_targets(SHAPE, EXTENTS, lesion)
    positive = torch.nonzero(targets.labels == POSITIVE).flatten()
    assert positive.numel() >= 1
    assert [5.0, 6.0, 3.0] in box_centres(anchors[positive]).tolist()
    decoded = box_coder().decode_single(targets.codes[positive], anchors[positive])
    torch.testing.assert_close(decoded, lesion.expand(positive.numel(), 6), atol=1e-4, rtol=0)
    far = box_centres(anchors)[:, 0] > 12
    assert (targets.labels[far] == NEGATIVE).all()
    assert (targets.labels == IGNORED).any()
    assert set(targets.matched[positive].tolist()) == {0}


def test_a_tiny_off_grid_lesion_still_gets_one_positive_anchor():
    lesion = boxes_from_centres(torch.tensor([[7.4, 7.6, 2.5]]), torch.tensor([1.2]), SPACING)
    targets = assign_targets(SHAPE, EXTENTS, lesion)
    assert int((targets.labels == POSITIVE).sum()) >= 1


def _targets_from_the_whole_iou_matrix(anchors, lesions, positive_iou=0.35, negative_iou=0.15):
    """The definition, over every anchor-lesion pair (what assign_targets computes sparsely)."""
    from monai.data.box_utils import box_iou
    iou = box_iou(anchors, lesions)
    best_iou, matched = iou.max(dim=1)
    labels = torch.full((anchors.shape[0],), IGNORED)
    labels[best_iou < negative_iou] = NEGATIVE
    labels[best_iou >= positive_iou] = POSITIVE
    best_anchor = iou.argmax(dim=0)
    labels[best_anchor] = POSITIVE
    matched[best_anchor] = torch.arange(lesions.shape[0])
    return labels, torch.where(labels == POSITIVE, matched, -1), box_coder().encode_single(lesions[matched], anchors)


@pytest.mark.parametrize("seed", range(5))
def test_sparse_targets_equal_those_of_the_whole_iou_matrix(seed):
    generator = torch.Generator().manual_seed(seed)
    n = int(torch.randint(1, 5, (1,), generator=generator))
    centres = torch.rand(n, 3, generator=generator) * (torch.tensor(SHAPE) - 1)  # off-grid, some at the border
    lesions = boxes_from_centres(centres, 1.5 + 8.5 * torch.rand(n, generator=generator), SPACING)
    anchors = _anchors()
    targets = assign_targets(SHAPE, EXTENTS, lesions)
    labels, matched, codes = _targets_from_the_whole_iou_matrix(anchors, lesions)
    assert torch.equal(targets.labels, labels) and torch.equal(targets.matched, matched)
    positive = labels == POSITIVE
    torch.testing.assert_close(targets.codes[positive], codes[positive])
    assert (targets.codes[~positive] == 0).all()


def test_without_lesions_every_anchor_is_negative():
    targets = assign_targets(SHAPE, EXTENTS, torch.zeros(0, 6))
    assert (targets.labels == NEGATIVE).all() and (targets.matched == -1).all()


def test_hard_samples_are_the_highest_scoring_negatives():
    labels = torch.tensor([0, 0, 1, 0, 0, 0, 0, 0])  # 4 locations x 2 anchors; location 1 holds a CMB
    scores = torch.tensor([0.1, 0.2, 0.9, 0.1, 0.8, 0.3, 0.05, 0.0])
    locations, classes = sample_locations(labels, scores, n_anchors=2, n_hard=1, n_background=5)
    assert dict(zip(locations.tolist(), classes.tolist())) == {1: CLASSES["cmb"], 2: CLASSES["mimic"], 0: CLASSES["background"],
                                                               3: CLASSES["background"]}


@pytest.mark.parametrize("weight_con", [0.0, 0.1])
def test_a_few_steps_on_one_patch_lower_the_loss(weight_con):
    torch.manual_seed(0)
    model = CMBDetector(strides=STRIDES, channels=(4, 8, 8, 16), feature_dim=8, fuse_levels=True)
    prototypes = Prototypes(8)
    image = torch.randn(1, 2, *SHAPE) * 0.1
    image[0, 0, 4:7, 5:8, 2:4] = -2.0  # a dark blob
    lesion = boxes_from_centres(torch.tensor([[5.0, 6.0, 2.5]]), torch.tensor([4.0]), SPACING)
    targets = [assign_targets(SHAPE, EXTENTS, lesion)]
    optimizer = torch.optim.Adam([*model.parameters(), *prototypes.parameters()], lr=3e-3)
    losses = []
    for _ in range(30):
        out = model(image)
        parts = detection_loss(out.logits, out.deltas, out.features, targets, prototypes, weight_con)
        optimizer.zero_grad()
        parts.total.backward()
        optimizer.step()
        losses.append(float(parts.total))
    assert losses[-1] < 0.5 * losses[0]
    assert (parts.con > 0) == (weight_con > 0)


def test_classification_loss_is_the_focal_sum_over_anchors_per_positive():
    """Not MONAI's "sum" reduction, which averages over the last axis (here: the anchors)."""
    lesion = boxes_from_centres(torch.tensor([[5.0, 6.0, 3.0]]), torch.tensor([5.0]), SPACING)
    targets = assign_targets(SHAPE, EXTENTS, lesion)
    logits = torch.randn(3, *SHAPE, generator=torch.Generator().manual_seed(0))
    parts = detection_loss(logits[None], torch.zeros(1, 3, 6, *SHAPE), torch.zeros(1, 4, *SHAPE), [targets])
    flat = logits.permute(1, 2, 3, 0).reshape(-1)
    used = targets.labels >= 0
    p, y = torch.sigmoid(flat[used]), targets.labels[used].float()
    p_true = torch.where(y == 1, p, 1 - p)
    expected = (-(1 - p_true) ** 2 * torch.log(p_true)).sum() / (targets.labels == POSITIVE).sum()
    assert parts.cls == pytest.approx(float(expected), rel=1e-4)
