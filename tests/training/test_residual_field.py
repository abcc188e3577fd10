"""The residual background field of training patches: the phase wraps, the SWI darkens where
the field is negative and nowhere else, and draws stay within their ranges."""

from __future__ import annotations

import numpy as np
import torch

from cmbflow.training.residual_field import RandResidualFieldd


def _patch(seed=0):
    rng = np.random.default_rng(seed)
    return {"swi": torch.as_tensor(rng.uniform(0.2, 1.0, (1, 16, 12, 8)), dtype=torch.float32),
            "phase": torch.as_tensor(rng.uniform(-0.3, 0.3, (1, 16, 12, 8)), dtype=torch.float32)}


def test_the_field_wraps_the_phase_and_darkens_the_swi_where_it_is_negative():
    transform = RandResidualFieldd("swi", "phase", (1.0, 1.0, 2.0), prob=1.0, gradient_rad_per_mm=(0.4, 0.6))
    for seed in range(5):
        transform.set_random_state(seed)
        patch = _patch(seed)
        out = transform(patch)
        field = transform.field((16, 12, 8)).numpy()
        offset, gradient, curvature = transform._draw
        assert 0.4 <= np.linalg.norm(gradient) <= 0.6 and abs(curvature) <= 0.01 and -np.pi <= offset <= np.pi
        phase = out["phase"].numpy()[0]
        assert phase.min() >= -1 and phase.max() <= 1
        difference = np.angle(np.exp(1j * np.pi * (phase - patch["phase"].numpy()[0])))  # radians, wrapped
        np.testing.assert_allclose(difference, np.angle(np.exp(1j * field)), atol=1e-4)
        assert np.ptp(field) > 2 * np.pi  # steep enough to wrap across the patch
        ratio = (out["swi"] / patch["swi"]).numpy()[0]
        negative = np.angle(np.exp(1j * field)) < 0
        assert negative.mean() > 0.2 and np.all(ratio <= 1 + 1e-6)
        np.testing.assert_allclose(ratio[~negative], 1.0, rtol=1e-5)
        np.testing.assert_allclose(ratio[negative], (1 + np.angle(np.exp(1j * field[negative])) / np.pi) ** 4, rtol=1e-4, atol=1e-6)


def test_no_field_at_probability_zero_and_the_same_draw_for_the_same_seed():
    patch = _patch()
    untouched = RandResidualFieldd("swi", "phase", (1.0, 1.0, 2.0), prob=0.0)(patch)
    assert torch.equal(untouched["phase"], patch["phase"]) and torch.equal(untouched["swi"], patch["swi"])
    first, second = (RandResidualFieldd("swi", "phase", (1.0, 1.0, 2.0), prob=1.0) for _ in range(2))
    first.set_random_state(7)
    second.set_random_state(7)
    assert torch.equal(first(patch)["phase"], second(patch)["phase"])
