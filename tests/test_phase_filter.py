import numpy as np
import pytest

from cmbflow.phase_filter import hann_lowpass, homodyne_phase


@pytest.mark.parametrize("shape", [(12, 14), (176, 208), (173, 204)])
@pytest.mark.parametrize("fraction", [0.05, 0.1, 0.2])
def test_the_lowpass_is_centred_on_k0_so_a_zero_phase_image_stays_zero_phase(shape, fraction):
    # An off-centre window (one k-sample off for even matrices) put up to 0.26 rad of
    # spurious phase into every synthetic subject's filtered phase.
    x, y = np.meshgrid(*[np.arange(n) - n / 2 for n in shape], indexing="ij")
    magnitude = np.exp(-(x**2 + y**2) / (2 * (0.3 * shape[0]) ** 2))
    phase = homodyne_phase(magnitude[..., None].astype(np.complex64), fraction)
    assert np.abs(phase[magnitude > 0.3]).max() < 1e-4
    window = hann_lowpass(*shape, fraction)
    assert window[0, 0] == 1 and np.allclose(window, np.roll(window[::-1, ::-1], 1, axis=(0, 1)))  # W(k) = W(-k)
