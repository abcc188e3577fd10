import numpy as np

from cmbflow.localization.network import (LocalizerSettings, RegionPatchSampler, RegionVolumes, segment_regions,
                                          train_localizer)
from cmbflow.models.localizer import build_localizer

SHAPE = (32, 32, 16)


def _toy_subject(key, seed):
    """Regions that depend on position only: the coordinate channels must carry the task."""
    rng = np.random.default_rng(seed)
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, n, dtype=np.float32) for n in SHAPE], indexing="ij")
    labels = np.where(x < -0.2, 1, np.where(x < 0.3, 2, 3)).astype(np.int64)
    labels[np.abs(y) > 0.8] = 0
    swi = rng.normal(0.5, 0.2, SHAPE).astype(np.float32)  # no intensity cue
    return RegionVolumes(key, np.stack([swi, x, y, z]), labels)


def test_the_localizer_learns_regions_from_coordinates_alone():
    settings = LocalizerSettings.defaults(channels=(4, 8, 16), strides=(2, 2), pool=(1, 1, 1), patch_size=(16, 16, 8), batch_size=4,
                                 iterations=100, learning_rate=0.01, validation_every=50, roi_size=(-1, -1, -1))
    state, curves = train_localizer([_toy_subject("a", 0), _toy_subject("b", 1)], [_toy_subject("c", 2)], settings)
    assert list(curves["iteration"]) == [50, 100]
    assert curves["validation_loss"].iloc[-1] < curves["validation_loss"].iloc[0]
    model = build_localizer(settings.in_channels, settings.channels, settings.strides, settings.pool)
    model.load_state_dict(state)
    test = _toy_subject("d", 3)
    regions = segment_regions(model, test.image, settings)
    assert regions.shape == SHAPE and regions.dtype == np.uint8
    assert (regions == test.labels).mean() > 0.7  # the largest class alone is 0.3


def test_patches_centre_on_cmbs_and_weight_cmb_voxels():
    subject = _toy_subject("a", 0)
    lesions = np.zeros(SHAPE, bool)
    lesions[10:12, 10:12, 5:7] = True  # a 2 x 2 x 2 voxel CMB inside the brain
    subject = RegionVolumes("a", subject.image, subject.labels, lesions)
    settings = LocalizerSettings.defaults(patch_size=(8, 8, 4), lesion_fraction=1.0, lesion_weight=20.0)
    image, labels, weights = RegionPatchSampler([subject], settings, seed=0).sample()
    assert image.shape == (4, 8, 8, 4) and labels.shape == weights.shape == (1, 8, 8, 4)
    assert int((weights == 20.0).sum()) == 8 and set(np.unique(weights.numpy())) == {1.0, 20.0}  # the whole CMB, centred
