import numpy as np
import pandas as pd
import pytest
import torch
from scipy import ndimage

from cmbflow.io.model_input import PhaseScaling
from cmbflow.io.nifti import save_volume
from cmbflow.models.anchors import box_centres
from cmbflow.training.patches import PatchSampler, SubjectVolumes, crop_patch, lesion_boxes, load_subject

SHAPE = (40, 40, 20)
SPACING = (1.0, 1.0, 2.0)


def _subject(key="a", lesion=(20, 12, 10), channels=2):
    image = np.ones((channels, *SHAPE), np.float32) * 0.6
    labels = np.zeros(SHAPE, np.int32)
    diameters = {}
    if lesion is not None:
        i, j, k = lesion
        labels[i - 2 : i + 3, j - 2 : j + 3, k - 1 : k + 2] = 7
        image[0][labels == 7] = -1.0  # dark on SWI
        diameters = {7: 5.0}
    brain = np.zeros(SHAPE, bool)
    brain[5:35, 5:35, 3:17] = True
    return SubjectVolumes(key, image, labels, brain, diameters, SPACING)


def test_lesion_patches_carry_their_box_and_augmentation_moves_both_together():
    sampler = PatchSampler([_subject()], (16, 16, 8), cmb_fraction=1.0, seed=3, augment=True)
    with_lesion = 0
    for _ in range(8):
        patch = sampler.sample()
        assert patch["image"].shape == (2, 16, 16, 8) and patch["label"].shape == (16, 16, 8)
        if patch["boxes"].shape[0] == 0:
            continue  # the lesion was shifted or rotated out of the patch
        with_lesion += 1
        centre = np.clip(np.rint(box_centres(patch["boxes"])[0].numpy()).astype(int), 0, np.array((16, 16, 8)) - 1)
        assert patch["label"][tuple(centre)] == 7
        assert patch["image"][0][tuple(centre)] < 0  # the box sits on the dark lesion of the image
        torch.testing.assert_close(patch["boxes"][0, 3:] - patch["boxes"][0, :3], torch.tensor([5.0, 5.0, 2.5]))
    assert with_lesion >= 5


def test_cmb_free_subjects_are_sampled_too():
    sampler = PatchSampler([_subject("free", lesion=None)], (16, 16, 8), cmb_fraction=0.5, seed=0, augment=False)
    patch = sampler.sample()
    assert patch["key"] == "free" and patch["boxes"].shape == (0, 6) and not patch["label"].any()
    with pytest.raises(ValueError, match="no training subjects"):
        PatchSampler([], (16, 16, 8), 0.5, 0)


def test_mimic_patches_centre_near_a_dark_spot_that_is_not_a_cmb():
    subject = _subject()
    subject.image[0][10:13, 24:30, 8:10] = -1.0  # a dark vein segment, away from the CMB at (20, 12, 10)
    sampler = PatchSampler([subject], (16, 16, 8), cmb_fraction=0.0, seed=1, augment=False, mimic_fraction=1.0,
                           mimic_share=0.002)
    spots = np.concatenate(sampler._mimic_voxels[0])
    assert len(spots) == round(0.002 * subject.brain.sum()) and len(sampler._mimic_voxels[0]) == 1  # one structure
    assert np.all((spots >= (10, 24, 8)) & (spots < (13, 30, 10)))  # on the vein, never on the CMB
    for _ in range(10):
        assert sampler.sample()["image"][0].min() == -1.0  # every patch shows the vein
    with pytest.raises(ValueError, match="at most 1"):
        PatchSampler([subject], (16, 16, 8), cmb_fraction=0.9, seed=0, mimic_fraction=0.2)


@pytest.mark.parametrize("margin_mm", [3.0, -2.0])
def test_masked_background_blanks_beyond_the_grown_or_shrunk_brain_as_a_zero_input_arrives(margin_mm):
    subject = _subject(lesion=None)
    subject.image[0] += np.linspace(0, 0.3, SHAPE[0])[:, None, None]
    subject.image[0][0, 0, 0] = -0.2  # the darkest voxel: air, where a raw 0 lands after scaling
    subject.image[1] = 0.4
    sampler = PatchSampler([subject], SHAPE, cmb_fraction=0.0, seed=0, augment=False, masked_background=1.0,
                           masked_margin_mm=(margin_mm, margin_mm))
    image = subject.image.copy()
    sampler._mask_background(image, subject, np.zeros(3, int))
    outside = ndimage.distance_transform_edt(~subject.brain, sampling=SPACING)
    inside = ndimage.distance_transform_edt(subject.brain, sampling=SPACING)
    kept = outside <= margin_mm if margin_mm >= 0 else inside > -margin_mm
    assert 0 < kept.sum() < kept.size and (kept.sum() > subject.brain.sum()) == (margin_mm > 0)
    np.testing.assert_array_equal(image[:, kept], subject.image[:, kept])
    assert np.all(image[0][~kept] == -0.2) and np.all(image[1][~kept] == 0.0)


def test_masked_background_is_drawn_at_its_share_and_within_its_margins():
    subject = _subject(lesion=None)
    subject.brain[:] = False
    subject.brain[15:25, 15:25, 8:12] = True  # a small brain: the patch always reaches beyond 8 mm of it
    subject.image[0][0, 0, 0] = -0.2
    air = [(PatchSampler([subject], (32, 32, 16), cmb_fraction=0.0, seed=seed, augment=False, masked_background=share)
            .sample()["image"][0] == -0.2).float().mean().item() for share in (0.0, 1.0) for seed in range(6)]
    assert all(fraction < 0.001 for fraction in air[:6])  # never blanked at share 0 (the one dark voxel at most)
    assert all(0.2 < fraction < 1 for fraction in air[6:])  # always at share 1, the brain and its rim kept
    with pytest.raises(ValueError, match="masked_margin_mm"):
        PatchSampler([subject], (16, 16, 8), 0.0, 0, masked_margin_mm=(8.0, -2.0))


def test_crop_pads_with_zeros_outside_the_volume():
    volume = np.arange(2 * 4 * 4 * 4, dtype=np.float32).reshape(2, 4, 4, 4) + 1
    patch = crop_patch(volume, np.array([-2, 1, 2]), np.array([4, 4, 4]))
    assert (patch[:, :2] == 0).all() and (patch[:, 2:, :3, :2] == volume[:, :2, 1:, 2:]).all()
    assert (patch[:, 2:, :, 2:] == 0).all() and (patch[:, :, 3:] == 0).all()


def test_lesion_boxes_use_centres_of_mass_and_annotated_diameters():
    label = torch.zeros(10, 10, 6, dtype=torch.long)
    label[2:5, 2:5, 1:4] = 3
    boxes = lesion_boxes(label, {3: 6.0}, SPACING)
    assert box_centres(boxes).tolist() == [[3.0, 3.0, 2.0]]
    assert (boxes[0, 3:] - boxes[0, :3]).tolist() == [6.0, 6.0, 3.0]


def test_load_subject_reads_the_preprocessed_files(tmp_path):
    affine = np.diag([*SPACING, 1.0])
    subject = _subject()
    files = {name: str(tmp_path / f"{name}.nii.gz") for name in ("swi", "phase", "brainmask", "cmb_mask")}
    save_volume(files["swi"], subject.image[0], affine)
    save_volume(files["phase"], subject.image[1], affine)
    save_volume(files["brainmask"], subject.brain.astype(np.uint8), affine)
    save_volume(files["cmb_mask"], subject.labels.astype(np.int16), affine)
    files["markers"] = str(tmp_path / "markers.tsv")
    pd.DataFrame({"id": [1], "label": [7], "radius_mm": [2.5]}).to_csv(files["markers"], sep="\t", index=False)
    loaded = load_subject("a", files, PhaseScaling("pi", 6.0))
    np.testing.assert_array_equal(loaded.image, subject.image)
    assert loaded.diameters == {7: 5.0} and loaded.spacing == SPACING and loaded.brain.sum() == subject.brain.sum()


def test_one_channel_patches_carry_the_swi_and_its_lesion_boxes():
    """A subject without phase (inputs [swi]) gives one-channel patches, augmented, whose
    lesion boxes sit on the dark lesion; subjects of mixed inputs are refused."""
    sampler = PatchSampler([_subject(channels=1)], (16, 16, 8), cmb_fraction=1.0, seed=5, augment=True)
    with_lesion = 0
    for _ in range(8):
        patch = sampler.sample()
        assert patch["image"].shape == (1, 16, 16, 8)
        if patch["boxes"].shape[0]:
            with_lesion += 1
            centre = np.clip(np.rint(box_centres(patch["boxes"])[0].numpy()).astype(int), 0, np.array((16, 16, 8)) - 1)
            assert patch["label"][tuple(centre)] == 7 and patch["image"][0][tuple(centre)] < 0
    assert with_lesion >= 4
    with pytest.raises(ValueError, match="same inputs"):
        PatchSampler([_subject(), _subject("b", channels=1)], (16, 16, 8), cmb_fraction=1.0, seed=5)
