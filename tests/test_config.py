import pytest

from cmbflow.config import check_config, datasets_from_cli, split_subjects


def test_split_is_seeded_sized_and_order_independent():
    keys = [f"{i:03d}" for i in range(1, 21)]
    split = split_subjects(keys, 0.25, seed=5)
    assert list(split.values()).count("test") == 5
    assert split == split_subjects(list(reversed(keys)), 0.25, seed=5)
    assert split != split_subjects(keys, 0.25, seed=6)


def test_split_keeps_one_of_each_for_tiny_datasets():
    assert sorted(split_subjects(["a", "b"], 0.05, seed=0).values()) == ["test", "train"]


def test_user_configfile_datasets_replace_defaults(tmp_path):
    first = tmp_path / "a.yaml"
    first.write_text("split: {seed: 3}\n")
    second = tmp_path / "b.yaml"
    second.write_text("datasets:\n  mine: {bids_dir: /data, role: external}\n")
    assert datasets_from_cli([first]) is None
    assert datasets_from_cli([first, second]) == {"mine": {"bids_dir": "/data", "role": "external"}}


def test_unknown_synthetic_site_is_reported():
    config = {"datasets": {"d": {"synthetic_site": "nope", "role": "internal"}}, "synth": {"sites": {"internal": {}}}}
    with pytest.raises(ValueError, match="synthetic_site is 'nope'"):
        check_config(config)
