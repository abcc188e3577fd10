import torch

from cmbflow.training.loop import TrainSettings, train_detector
from tests.training.test_patches import _subject

TINY = dict(channels=(4, 8, 8, 16), feature_dim=8, patch_size=(16, 16, 8), batch_size=2, iterations=4, validation_every=2,
            checkpoint_every=2, validation_patches=2, anchors_mm=(3.0, 6.0))


def test_training_is_deterministic_and_logs_curves(tmp_path):
    settings = TrainSettings(**TINY)
    subjects, validation = [_subject("a"), _subject("b", lesion=None)], [_subject("c")]
    first, curves = train_detector(subjects, validation, settings, tmp_path / "one.ckpt")
    second, _ = train_detector(subjects, validation, settings, tmp_path / "two.ckpt")
    assert set(first) == {"detector", "prototypes"}
    for name, tensor in first["detector"].items():
        torch.testing.assert_close(tensor, second["detector"][name], msg=name)
    assert list(curves["iteration"]) == [2, 4]
    assert curves[["train_loss", "validation_loss"]].notna().all().all()
    assert (curves["train_con"] > 0).all()


def test_a_killed_run_resumes_from_its_checkpoint(tmp_path, caplog):
    settings = TrainSettings(**{**TINY, "hspl": False, "fuse_levels": False})
    checkpoint = tmp_path / "run.ckpt"
    subjects = [_subject("a")]
    train_detector(subjects, [], TrainSettings(**{**TINY, "iterations": 6, "hspl": False, "fuse_levels": False}), checkpoint)
    assert checkpoint.exists()  # written at 2 and 4 of 6: stands for a job killed after iteration 4
    with caplog.at_level("INFO", logger="cmbflow.training.loop"):
        state, curves = train_detector(subjects, [], TrainSettings(**{**settings.__dict__, "iterations": 8}), checkpoint)
    assert "resumed" in caplog.text and "at iteration 4" in caplog.text
    assert list(curves["iteration"]) == [2, 4, 6, 8]
    assert "prototypes" not in state and (curves["train_con"] == 0).all()
