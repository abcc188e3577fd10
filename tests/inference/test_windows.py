import numpy as np
from monai.data.utils import dense_patch_slices
from monai.inferers.utils import _get_scan_interval

from cmbflow.inference.windows import fitted_windows


def test_fitted_windows_tile_the_volume_with_few_wasted_voxels():
    for shape, largest in (((168, 200, 88), (160, 160, -1)), ((512, 448, 72), (160, 160, -1)), ((96, 96, 40), (128, 128, -1))):
        roi, overlap = fitted_windows(shape, largest, (8, 8, 4), 0.1)
        assert all(r % 8 == 0 for r in roi[:2]) and roi[2] == shape[2]  # whole slab along the last axis
        assert all(r <= max(m, s) if m != -1 else r == s for r, m, s in zip(roi, largest, shape))
        windows = dense_patch_slices(shape, roi, _get_scan_interval(shape, roi, 3, overlap))  # what MONAI will run
        covered = np.zeros(shape, bool)
        for window in windows:
            covered[window] = True
        assert covered.all()
        assert len(windows) * np.prod(roi) / np.prod(shape) < 1.4  # a fixed 160 window would cost 3x on the first
