import numpy as np
import pytest

from cmbflow.io.model_input import PhaseScaling, load_model_input, model_inputs
from cmbflow.io.nifti import save_volume


def _phase(contrast: float, seed: int = 0):
    """A brain of tissue phase (spread ~ contrast) with one strong dipole-like source, in
    radians / pi as preprocessing writes it; outside the brain larger values that must not count."""
    rng = np.random.default_rng(seed)
    phase = rng.normal(0.0, contrast, (24, 24, 12))
    brain = np.zeros(phase.shape, bool)
    brain[4:20, 4:20, 2:10] = True
    phase[~brain] = rng.normal(0.0, 5 * contrast, int((~brain).sum()))
    phase[12, 12, 6] = 8 * contrast
    return np.clip(phase, -1, 1).astype(np.float32), brain


def test_brain_mad_makes_phase_of_another_field_and_echo_time_read_alike():
    low, brain = _phase(0.01)  # 1.5 T, short TE
    high, _ = _phase(0.13)  # 7 T or long TE: 13x the phase contrast, same anatomy
    scaling = PhaseScaling("brain_mad", mads=6.0)
    a, b = scaling.apply(low, brain), scaling.apply(high, brain)
    np.testing.assert_allclose(a[brain], b[brain], atol=1e-5)
    inside = a[brain]
    spread = 1.4826 * np.median(np.abs(inside - np.median(inside)))
    assert spread == pytest.approx(1 / 6.0, rel=1e-3)  # the brain's spread lands at 1 / mads
    assert a.min() >= -1.0 and a.max() <= 1.0 and a[12, 12, 6] == 1.0  # the source saturates
    # the plain scaling keeps the 13x difference
    plain = PhaseScaling("pi", 6.0)
    assert np.std(plain.apply(high, brain)[brain]) / np.std(plain.apply(low, brain)[brain]) == pytest.approx(13, rel=0.05)


def test_a_card_without_a_phase_scaling_is_refused_naming_it_and_bad_values_are_refused():
    with pytest.raises(ValueError, match="model card of old: normalization has no phase_scaling or phase_mads"):
        PhaseScaling.from_record({"swi": "percentiles"}, "model card of old")
    assert PhaseScaling.from_record(PhaseScaling("brain_mad", 4.0).record()) == PhaseScaling("brain_mad", 4.0)
    with pytest.raises(ValueError, match="brain_mad"):
        PhaseScaling("zscore", 6.0)
    with pytest.raises(ValueError, match="mads"):
        PhaseScaling("brain_mad", 0.0)
    phase, brain = _phase(0.05)
    with pytest.raises(ValueError, match="constant"):
        PhaseScaling("brain_mad", 6.0).apply(np.zeros_like(phase), brain)


def test_load_model_input_scales_the_phase_channel_only(tmp_path):
    phase, brain = _phase(0.05)
    swi = np.random.default_rng(1).random(phase.shape).astype(np.float32)
    files = {name: str(tmp_path / f"{name}.nii.gz") for name in ("swi", "phase", "brainmask")}
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    save_volume(files["swi"], swi, affine)
    save_volume(files["phase"], phase, affine)
    save_volume(files["brainmask"], brain.astype(np.uint8), affine)
    plain = load_model_input(files, PhaseScaling("pi", 6.0))
    scaled = load_model_input(files, PhaseScaling("brain_mad", 6.0))
    np.testing.assert_array_equal(plain.image[0], scaled.image[0])
    np.testing.assert_array_equal(plain.image[1], phase)
    np.testing.assert_allclose(scaled.image[1], PhaseScaling("brain_mad", 6.0).apply(phase, brain))
    assert not np.allclose(scaled.image[1], phase)


def test_a_one_channel_model_reads_the_swi_alone_and_a_two_channel_one_needs_the_phase(tmp_path):
    phase, brain = _phase(0.05)
    swi = np.random.default_rng(1).random(phase.shape).astype(np.float32)
    files = {name: str(tmp_path / f"{name}.nii.gz") for name in ("swi", "brainmask")}  # a dataset without phase
    save_volume(files["swi"], swi, np.eye(4))
    save_volume(files["brainmask"], brain.astype(np.uint8), np.eye(4))
    one = load_model_input(files, PhaseScaling("pi", 6.0), model_inputs({"inputs": ["swi"]}))
    assert one.image.shape == (1, *swi.shape)
    np.testing.assert_array_equal(one.image[0], swi)
    with pytest.raises(ValueError, match=rf"{files['swi']}: the model reads swi, phase, but the subject has no phase"):
        load_model_input(files, PhaseScaling("pi", 6.0), model_inputs({"network": {"in_channels": 2}}))  # a card of before
    with pytest.raises(ValueError, match=r"\[swi\] or \[swi, phase\]"):
        load_model_input(files, PhaseScaling("pi", 6.0), ["phase"])


def test_files_read_side_by_side_give_the_same_input_and_errors_name_the_file(tmp_path):
    phase, brain = _phase(0.05)
    swi = np.random.default_rng(2).random(phase.shape).astype(np.float32)
    files = {name: str(tmp_path / f"{name}.nii.gz") for name in ("swi", "phase", "brainmask")}
    save_volume(files["swi"], swi, np.eye(4))
    save_volume(files["phase"], phase, np.eye(4))
    save_volume(files["brainmask"], brain.astype(np.uint8), np.eye(4))
    for scaling in (PhaseScaling("pi", 6.0), PhaseScaling("brain_mad", 6.0)):
        serial, threaded = (load_model_input(files, scaling, threads=n) for n in (1, 3))
        np.testing.assert_array_equal(threaded.image, serial.image)
        np.testing.assert_array_equal(threaded.brain, brain)
        assert threaded.image.shape == (2, *swi.shape) and threaded.image.dtype == np.float32
    save_volume(files["phase"], np.zeros_like(phase), np.eye(4))  # an empty phase image
    with pytest.raises(ValueError, match=rf"{files['phase']}: phase is constant"):
        load_model_input(files, PhaseScaling("brain_mad", 6.0), threads=2)
