import pytest
import torch

from cmbflow.models.anchors import (anchor_extents, anchors_at, anchors_overlapping, box_centres, box_diameters_mm, boxes_from_centres,
                                    make_anchors)
from cmbflow.models.postprocess import box_coder, flatten_outputs, select_candidates

SPACING = (1.0, 1.0, 2.0)


def test_anchor_extents_follow_the_voxel_spacing():
    extents = anchor_extents([2.0, 6.0], SPACING)
    assert extents.tolist() == [[2.0, 2.0, 1.0], [6.0, 6.0, 3.0]]
    with pytest.raises(ValueError, match="spacing"):
        anchor_extents([2.0], (1.0, 1.0))


def test_anchor_order_matches_the_flattened_network_outputs():
    shape, extents = (4, 5, 3), anchor_extents([3.0, 5.0], SPACING)
    anchors = make_anchors(shape, extents)
    assert anchors.shape == (4 * 5 * 3 * 2, 6)
    logits = torch.zeros(2, *shape)
    logits[1, 2, 3, 1] = 5.0
    flat_logits, flat_deltas = flatten_outputs(logits, torch.zeros(2, 6, *shape))
    best = int(flat_logits.argmax())
    assert box_centres(anchors[best : best + 1]).tolist() == [[2.0, 3.0, 1.0]]
    assert (anchors[best, 3:] - anchors[best, :3]).tolist() == extents[1].tolist()
    assert flat_deltas.shape == (anchors.shape[0], 6)


def test_box_coding_round_trip():
    anchors = make_anchors((3, 3, 2), anchor_extents([3.0, 6.0], SPACING))
    gt = boxes_from_centres(torch.tensor([[1.3, 0.8, 1.2]]), torch.tensor([4.5]), SPACING).expand(anchors.shape[0], 6)
    codes = box_coder().encode_single(gt, anchors)
    np_gt = box_coder().decode_single(codes, anchors)
    torch.testing.assert_close(np_gt, gt, atol=1e-4, rtol=0)
    assert box_diameters_mm(np_gt[:1], SPACING).item() == pytest.approx(4.5, abs=1e-4)


def test_nms_keeps_one_box_per_lesion_best_first():
    shape = (6, 6, 4)
    extents = anchor_extents([4.0], SPACING)
    logits = torch.full((1, *shape), -9.0)
    logits[0, 2, 2, 1], logits[0, 2, 3, 1] = 3.0, 2.0  # two neighbours on one lesion
    logits[0, 5, 5, 3] = 1.0  # another lesion far away
    boxes, scores, index = select_candidates(logits, torch.zeros(1, 6, *shape), extents, score_threshold=0.5,
                                             nms_iou=0.1, max_candidates=10)
    assert box_centres(boxes).tolist() == [[2.0, 2.0, 1.0], [5.0, 5.0, 3.0]]
    assert scores.tolist() == pytest.approx([torch.sigmoid(torch.tensor(3.0)).item(), torch.sigmoid(torch.tensor(1.0)).item()])
    assert index.shape == (2,)


def test_anchors_at_builds_the_same_boxes_as_the_full_set():
    shape, extents = (5, 4, 3), anchor_extents([3.0, 6.0], SPACING)
    every = make_anchors(shape, extents)
    picked = torch.tensor([0, 1, 17, 59, every.shape[0] - 1])
    torch.testing.assert_close(anchors_at(picked, shape, extents), every[picked])


@pytest.mark.parametrize("seed", range(8))
def test_anchors_overlapping_finds_the_anchors_a_test_of_every_anchor_finds(seed):
    """Boxes of 0.5-12 voxels, some reaching over the border or lying wholly outside the grid,
    a few on exact half-voxel edges (where a rounding slip would add or drop an anchor)."""
    generator = torch.Generator().manual_seed(seed)
    shape, extents = (12, 10, 6), anchor_extents([2.0, 4.5, 8.0], SPACING)
    n = int(torch.randint(1, 6, (1,), generator=generator))
    centres = torch.rand(n, 3, generator=generator) * 16 - 2
    if seed % 2:
        centres = torch.round(centres * 2) / 2
    boxes = boxes_from_centres(centres, 0.5 + 11.5 * torch.rand(n, generator=generator), SPACING)
    every = make_anchors(shape, extents)
    expected = torch.nonzero(((every[:, None, :3] < boxes[None, :, 3:]) & (every[:, None, 3:] > boxes[None, :, :3]))
                             .all(dim=2).any(dim=1)).flatten()
    assert torch.equal(anchors_overlapping(boxes, shape, extents), expected)
    assert anchors_overlapping(torch.zeros(0, 6), shape, extents).numel() == 0
