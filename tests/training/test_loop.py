import contextlib
import re

import pytest
import torch

import cmbflow.training.loop as loop

from cmbflow.device import cpu_has_bf16

from cmbflow.training.loop import TrainSettings, train_detector
from tests.training.test_patches import _subject

# float32 unless a test says otherwise: bfloat16 on maps this small is neither reproducible nor always finite
TINY = dict(channels=(4, 8, 8, 16), feature_dim=8, patch_size=(16, 16, 8), batch_size=2, iterations=4, validation_every=2,
            checkpoint_every=2, validation_patches=2, anchors_mm=(3.0, 6.0), cpu_bfloat16=False)


def test_training_is_deterministic_and_logs_curves(tmp_path):
    settings = TrainSettings.defaults(**TINY)
    subjects, validation = [_subject("a"), _subject("b", lesion=None)], [_subject("c")]
    first, curves = train_detector(subjects, validation, settings, tmp_path / "one.ckpt")
    second, _ = train_detector(subjects, validation, settings, tmp_path / "two.ckpt")
    assert set(first) == {"detector", "prototypes"}
    for name, tensor in first["detector"].items():
        torch.testing.assert_close(tensor, second["detector"][name], msg=name)
    assert list(curves["iteration"]) == [2, 4]
    assert curves[["train_loss", "validation_loss"]].notna().all().all()
    assert (curves["train_con"] > 0).all()


@pytest.mark.skipif(not cpu_has_bf16(), reason="this CPU has no native bfloat16 (autocast stays off there)")
def test_cpu_bfloat16_trains_the_forward_pass_in_bfloat16(tmp_path, monkeypatch):
    """The switch really switches: the outputs the loss reads are bfloat16 with it, float32
    without. Neither reproducibility nor finite losses are asserted: at these tiny maps oneDNN's
    bfloat16 weight gradients vary from process to process, and 2 of 12 test processes gave NaN
    losses (2026-12-03): such a run stops with FloatingPointError, after its first forward pass."""
    seen, real = [], loop.detection_loss

    def spy(logits, *args, **kwargs):
        seen.append(logits.dtype)
        return real(logits, *args, **kwargs)

    monkeypatch.setattr(loop, "detection_loss", spy)
    subjects = [_subject("a"), _subject("b", lesion=None)]
    with contextlib.suppress(FloatingPointError):
        train_detector(subjects, [_subject("c")], TrainSettings.defaults(**{**TINY, "cpu_bfloat16": True}), tmp_path / "b.ckpt")
    assert seen and set(seen) == {torch.bfloat16}
    seen.clear()
    _, curves = train_detector(subjects, [], TrainSettings.defaults(**TINY), tmp_path / "f.ckpt")
    assert seen and set(seen) == {torch.float32} and list(curves["iteration"]) == [2, 4]


class Killed(Exception):
    pass


def _kill_after(monkeypatch, n_steps):
    """Fault injection: the job dies in training step ``n_steps + 1`` (as if killed)."""
    real, calls = loop.detection_loss, []

    def dying(*args, **kwargs):
        if len(calls) == n_steps:
            raise Killed
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "detection_loss", dying)


def test_a_killed_run_resumes_from_its_checkpoint(tmp_path, caplog, monkeypatch):
    settings = TrainSettings.defaults(**{**TINY, "iterations": 8, "hspl": False, "fuse_levels": False, "validation_every": 2})
    checkpoint = tmp_path / "run.ckpt"
    subjects = [_subject("a")]
    _kill_after(monkeypatch, 5)
    with pytest.raises(Killed):
        train_detector(subjects, [], settings, checkpoint)
    assert checkpoint.exists()  # written at iterations 2 and 4; the job died in iteration 6
    monkeypatch.undo()
    with caplog.at_level("INFO", logger="cmbflow.training"):
        state, curves = train_detector(subjects, [], settings, checkpoint)
    assert "resumed" in caplog.text and "at iteration 4" in caplog.text
    assert list(curves["iteration"]) == [2, 4, 6, 8]
    assert "prototypes" not in state and (curves["train_con"] == 0).all()
    assert not checkpoint.exists()  # finished: nothing left to resume


def test_a_checkpoint_of_other_settings_is_not_resumed(tmp_path, caplog, monkeypatch):
    checkpoint = tmp_path / "run.ckpt"
    _kill_after(monkeypatch, 3)
    with pytest.raises(Killed):
        train_detector([_subject("a")], [], TrainSettings.defaults(**TINY), checkpoint)
    monkeypatch.undo()
    with caplog.at_level("INFO", logger="cmbflow.training"):
        _, curves = train_detector([_subject("a")], [], TrainSettings.defaults(**{**TINY, "learning_rate": 0.01}), checkpoint)
    assert "ignoring" in caplog.text and "resumed" not in caplog.text
    assert list(curves["iteration"]) == [2, 4]


def test_a_one_channel_detector_trains_on_the_swi_alone(tmp_path):
    """inputs (swi,): a network of one input channel, patches of one channel; subjects with
    another number of channels are refused, not broadcast."""
    settings = TrainSettings.defaults(**TINY, inputs=("swi",))
    one_channel = [_subject("a", channels=1), _subject("b", lesion=None, channels=1)]
    state, curves = train_detector(one_channel, [], settings, tmp_path / "one.ckpt")
    first = next(tensor for name, tensor in state["detector"].items() if name.endswith("weight") and tensor.ndim == 5)
    assert first.shape[1] == 1 and len(curves) == 2
    with pytest.raises(ValueError, match=r"\['a'\].*1 input channel"):
        train_detector([_subject("a")], [], settings, tmp_path / "two.ckpt")


def test_the_progress_bar_of_training_switches_on(tmp_path, capsys):
    settings = TrainSettings.defaults(**{**TINY, "iterations": 1, "validation_every": 1, "checkpoint_every": 1})
    train_detector([_subject("a")], [], settings, tmp_path / "quiet.ckpt", show_progress=False)
    assert not re.search(r"training: +\d+%\|", capsys.readouterr().err)  # tqdm's "training:   0%|...|"
    train_detector([_subject("a")], [], settings, tmp_path / "shown.ckpt", show_progress=True)
    assert re.search(r"training: +\d+%\|", capsys.readouterr().err)


def test_a_non_finite_loss_stops_training_with_the_fix():
    from cmbflow.training.engine import Schedule, train

    weight = torch.nn.Linear(2, 1)
    losses = iter([1.0, float("nan")])

    def make_step(start):
        return lambda: {"loss": weight(torch.ones(1, 2)).sum() * 0 + next(losses)}

    with pytest.raises(FloatingPointError, match="iteration 2.*cpu_bfloat16"):
        train({"net": weight}, make_step, lambda: float("nan"), Schedule(4, 0.01, 0.0, validation_every=10),
              torch.device("cpu"), amp=False, label="detector")


def test_the_retinanet_baseline_trains_in_the_one_loop_and_validates_without_touching_its_batch_norms(tmp_path):
    """architecture retinanet: MONAI's RetinaNet under the same loop, patches and schedule
    (deterministic, curves with its two losses). Its validation loss comes from MONAI's
    training-mode loss with the network in eval mode: the batch norms' running statistics
    stay as they are, while a training batch moves them."""
    settings = TrainSettings.defaults(**TINY, architecture="retinanet", retinanet_depth=10, hspl=False, fuse_levels=False)
    subjects, validation = [_subject("a"), _subject("b", lesion=None)], [_subject("c")]
    first, curves = train_detector(subjects, validation, settings, tmp_path / "one.ckpt")
    second, _ = train_detector(subjects, validation, settings, tmp_path / "two.ckpt")
    assert set(first) == {"detector"} and any(name.startswith("network.feature_extractor.fpn") for name in first["detector"])
    for name, tensor in first["detector"].items():
        torch.testing.assert_close(tensor, second["detector"][name], msg=name)
    assert curves[["train_loss", "train_cls", "validation_loss"]].notna().all().all() and (curves["train_con"] == 0).all()

    modules = {"detector": loop.build_model(settings, subjects[0].spacing)}
    loss = loop._retinanet_loss(modules, settings, subjects[0], torch.device("cpu"))
    samples = [loop.patch_sampler(subjects, settings, seed=0).sample() for _ in range(2)]
    detector = modules["detector"]
    norm = detector.network.feature_extractor.body.stem[1]
    before = norm.running_mean.clone()
    detector.eval()
    with torch.no_grad():
        assert torch.isfinite(loss(samples, True)["loss"])
    assert not detector.training and not norm.training
    torch.testing.assert_close(norm.running_mean, before, rtol=0, atol=0)
    detector.train()
    loss(samples, False)["loss"].backward()
    assert detector.training and not torch.equal(norm.running_mean, before)


def test_the_baseline_draws_its_negatives_from_the_configured_pool():
    """detector.retinanet.hard_negative_pool reaches MONAI's sampler: with a pool of 1 a patch's
    negatives are its highest-scoring unmatched anchors, with a pool as large as the patch's
    anchors they are drawn from all of them."""
    scores = torch.arange(1000, dtype=torch.float32)  # anchor n scores n
    matched = torch.zeros(1000, dtype=torch.long)  # all unmatched (MONAI's sampler: 0 = negative)
    matched[500] = 1  # one positive: min_neg (16) negatives drawn
    for pool, lowest_allowed in ((1, 1000 - 17), (1000, 0)):
        settings = TrainSettings.defaults(**TINY, architecture="retinanet", retinanet_depth=10, hspl=False, fuse_levels=False,
                                          retinanet_hard_negative_pool=pool)
        sampler = loop.build_model(settings, (1.0, 1.0, 2.0)).fg_bg_sampler
        assert sampler.pool_size == pool
        torch.manual_seed(0)
        _, negatives = sampler([matched], scores)
        chosen = torch.nonzero(negatives[0]).flatten()
        assert len(chosen) == 16 and chosen.min() >= lowest_allowed
        if pool == 1000:
            assert chosen.min() < 500  # not only the top of the ranking


def test_retinanet_refuses_the_switches_of_our_network():
    settings = TrainSettings.defaults(**TINY, architecture="retinanet", retinanet_depth=10, hspl=True, fuse_levels=False)
    with pytest.raises(ValueError, match="retinanet architecture has no Feature Fusion Module or prototypes"):
        train_detector([_subject("a")], [], settings, "unused.ckpt")
