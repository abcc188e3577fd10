from pathlib import Path

import pytest
import yaml

from cmbflow import paths
from cmbflow.config import (apply_replaced, check_config, check_splittable, dataset_split, expand_user_paths, read_split,
                            registration_template, replaced_from_cli, split_subjects, target_spacing, validate_config,
                            write_split)
from tests.conftest import write_subject

REPO = Path(__file__).resolve().parents[1]
SITES = {"internal": {"voxel_mm": [1.0, 1.0, 2.0]}, "external": {"voxel_mm": [1.0, 1.0, 3.0], "orientation": "LAS"}}
DATASET = {"calibration_subjects": 0}  # what validation fills in where a test leaves it out


def validated(config: dict) -> dict:
    """``config`` as the workflow reads it: validated against the schema, its defaults filled in."""
    validate_config(config, REPO / "schemas" / "config.schema.yaml", ["test"])
    return config


def test_split_is_seeded_sized_and_order_independent():
    keys = [f"{i:03d}" for i in range(1, 21)]
    split = split_subjects(keys, 0.25, seed=5)
    assert list(split.values()).count("test") == 5
    assert split == split_subjects(list(reversed(keys)), 0.25, seed=5)
    assert split != split_subjects(keys, 0.25, seed=6)


def test_split_keeps_one_of_each_for_tiny_datasets():
    assert sorted(split_subjects(["a", "b"], 0.05, seed=0).values()) == ["test", "train"]


def test_user_configfile_datasets_and_variants_replace_defaults(tmp_path):
    first = tmp_path / "a.yaml"
    first.write_text("split: {seed: 3}\ndetector: {anchors_mm: [4.0]}\n")
    second = tmp_path / "b.yaml"
    second.write_text("datasets:\n  mine: {bids_dir: /data, role: external}\ndetector:\n  variants: {rpn: {fuse_levels: false, hspl: false}}\n")
    assert replaced_from_cli([first]) == {}
    replaced = replaced_from_cli([first, second])
    config = {"datasets": {"synth_internal": {}}, "detector": {"variants": {"rpn": {}, "rpn_ffm": {}}, "anchors_mm": [4.0]}}
    apply_replaced(config, replaced)
    assert config["datasets"] == {"mine": {"bids_dir": "/data", "role": "external"}}
    assert config["detector"] == {"variants": {"rpn": {"fuse_levels": False, "hspl": False}}, "anchors_mm": [4.0]}


def test_unknown_synthetic_site_is_reported():
    config = validated({"datasets": {"d": {"synthetic_site": "nope", "role": "internal"}},
                        "synth": {"seed": 0, "sites": {"internal": {}}}})
    with pytest.raises(ValueError, match="synthetic_site is 'nope'"):
        check_config(config)


def test_config_errors_are_one_line_naming_the_key_the_value_and_the_files():
    schema = REPO / "schemas" / "config.schema.yaml"
    typo = yaml.safe_load((REPO / "config.yaml").read_text())
    typo["dataset"] = {"mine": {"bids_dir": "/data", "role": "external"}}  # datasets: misspelt
    with pytest.raises(ValueError, match=r"^config: Additional properties are not allowed \('dataset' was unexpected\)"
                                         r"\. Config files: config.yaml, my.yaml"):
        validate_config(typo, schema, ["config.yaml", "my.yaml"])
    wrong = yaml.safe_load((REPO / "config.yaml").read_text())
    wrong["detector"]["training"]["iterations"] = -3
    with pytest.raises(ValueError, match=r"^config key detector.training.iterations \(value -3\): -3 is less than"):
        validate_config(wrong, schema, ["my.yaml"])
    unknown = yaml.safe_load((REPO / "config.yaml").read_text())
    unknown["detector"]["training"]["iteration"] = 5
    with pytest.raises(ValueError, match=r"^config key detector.training: .*'iteration' was unexpected"):
        validate_config(unknown, schema, ["my.yaml"])


def test_home_folders_in_path_keys_are_expanded():
    config = {"datasets": {"mine": {"bids_dir": "~/bids", "role": "external"}}, "models": {"rpn": "~/models/rpn"},
              "preprocessing": {"template": {"image": "~/t.nii.gz"}}, "fine_tune": {"b": {"parent": "rpn"}}}
    expand_user_paths(config)
    home = str(Path.home())
    assert config["datasets"]["mine"]["bids_dir"] == f"{home}/bids" and config["models"]["rpn"] == f"{home}/models/rpn"
    assert config["preprocessing"]["template"]["image"] == f"{home}/t.nii.gz" and config["fine_tune"]["b"]["parent"] == "rpn"


def test_an_internal_dataset_too_small_to_split_says_the_minimum():
    with pytest.raises(ValueError, match="needs at least 2; this one has 1"):
        dataset_split(["001"], {**DATASET, "role": "internal"}, {"test_fraction": 0.25, "seed": 0})
    assert dataset_split(["001"], {**DATASET, "role": "external"}, {"test_fraction": 0.25, "seed": 0}) is None


def test_a_split_table_reads_back_as_written_and_impossible_splits_are_refused_before_any_job(tmp_path):
    split = dataset_split(["01", "02", "03_ses-a", "03_ses-b", "04"], {"role": "external", "calibration_subjects": 1},
                          {"test_fraction": 0.25, "seed": 3})
    write_split(tmp_path / "split.tsv", split)
    assert read_split(tmp_path / "split.tsv") == split and sorted(set(split.values())) == ["calibration", "test"]
    with pytest.raises(ValueError, match="calibration_subjects: 4 of 4 subjects would leave none to score"):
        check_splittable(["01", "02", "03", "04"], {"role": "external", "calibration_subjects": 4})
    check_splittable(["01"], {**DATASET, "role": "external"})  # scored whole: nothing to split


def test_a_training_dataset_trains_on_every_subject_and_sets_none_aside():
    split = dataset_split(["02", "01_ses-a", "01_ses-b"], {**DATASET, "role": "train"}, {"test_fraction": 0.25, "seed": 3})
    assert split == {"01_ses-a": "train", "01_ses-b": "train", "02": "train"}
    with pytest.raises(ValueError, match="needs at least 1 subject"):
        check_splittable([], {**DATASET, "role": "train"})
    for role in ("train", "internal"):
        with pytest.raises(ValueError, match=f"^calibration_subjects: only an external dataset .* role: {role}"):
            check_splittable(["01", "02", "03"], {"role": role, "calibration_subjects": 1})


def test_patch_shares_over_one_are_refused_naming_the_keys():
    config = validated({"datasets": {"d": {"synthetic_site": "internal", "role": "internal"}}, "synth": {"seed": 0, "sites": SITES},
                        "detector": {"training": {"cmb_fraction": 0.6, "mimic_fraction": 0.2}},
                        "fine_tune": {"site_b": {"parent": "rpn", "dataset": "d", "cmb_fraction": 0.9}}})
    with pytest.raises(ValueError, match=r"fine_tune.site_b.cmb_fraction \(0.9\) plus detector.training.mimic_fraction \(0.2\)"):
        check_config(config)
    config["fine_tune"]["site_b"]["cmb_fraction"] = 0.8
    check_config(config)


def test_masked_margins_out_of_order_are_refused_naming_the_key():
    config = validated({"datasets": {"d": {"synthetic_site": "internal", "role": "internal"}}, "synth": {"seed": 0, "sites": SITES},
                        "detector": {"training": {"masked_margin_mm": [8, -2]}}})
    with pytest.raises(ValueError, match=r"detector.training.masked_margin_mm \[8, -2\]: .*\[smallest, largest\]"):
        check_config(config)
    config["detector"]["training"]["masked_margin_mm"] = [-2, 8]
    check_config(config)


def test_background_ranks_beyond_the_candidates_a_subject_keeps_are_refused():
    config = validated({"datasets": {"d": {"synthetic_site": "internal", "role": "internal"}}, "synth": {"seed": 0, "sites": SITES},
                        "detector": {"inference": {"max_candidates": 50}}})
    with pytest.raises(ValueError, match=r"background_ranks \[40, 80\].*max_candidates \(50\)"):
        check_config(config)
    config["detector"]["operating_point"]["background_ranks"] = [20, 50]
    check_config(config)
    config["detector"]["operating_point"]["background_ranks"] = [60, 50]
    with pytest.raises(ValueError, match="the first not above the second"):
        check_config(config)
    config["detector"]["operating_point"].update(site_adaptation="none", background_ranks=[40, 80])
    check_config(config)  # not adapted: the ranks are never read


def test_target_spacing_defaults_to_the_first_internal_dataset(tmp_path):
    synth = {"seed": 0, "sites": SITES}
    config = validated({"datasets": {"ext": {"synthetic_site": "external", "role": "external"},
                                     "int": {"synthetic_site": "internal", "role": "internal"}}, "synth": synth})
    assert target_spacing(config) == [1.0, 1.0, 2.0]
    config["preprocessing"]["target_spacing_mm"] = [0.8, 0.8, 1.5]
    assert target_spacing(config) == [0.8, 0.8, 1.5]
    write_subject(tmp_path / "bids", "01")  # LAS, 1 x 1 x 2 mm
    real = validated({"datasets": {"mine": {"bids_dir": str(tmp_path / "bids"), "role": "internal"}}, "synth": synth})
    assert target_spacing(real) == [1.0, 1.0, 2.0]


def test_registration_template_choices(tmp_path):
    assert registration_template({"preprocessing": {"template": "synthetic"}})["image"] == paths.synth_template("swi")
    icbm = registration_template({"preprocessing": {"template": "icbm_t1"}})
    assert icbm == {"image": paths.icbm_template("t1w"), "regions": paths.region_atlas(),
                    "brainmask": paths.icbm_template("brainmask")}
    own = {"image": "t.nii.gz", "regions": "r.nii.gz", "brain_mask": "m.nii.gz"}
    assert registration_template({"preprocessing": {"template": own}})["brainmask"] == "m.nii.gz"


def test_missing_user_template_is_reported_with_its_key(tmp_path):
    (tmp_path / "t.nii.gz").write_bytes(b"x")
    own = {"image": str(tmp_path / "t.nii.gz"), "regions": str(tmp_path / "none.nii.gz"), "brain_mask": str(tmp_path / "t.nii.gz")}
    config = validated({"datasets": {"d": {"synthetic_site": "internal", "role": "internal"}}, "synth": {"seed": 0, "sites": SITES},
                        "preprocessing": {"template": own}})
    with pytest.raises(ValueError, match=r"preprocessing.template.regions: file .*none.nii.gz not found"):
        check_config(config)


def test_sessions_of_one_subject_never_land_on_both_sides_of_a_split():
    keys = [f"{s:02d}_ses-{t}" for s in range(1, 9) for t in ("a", "b")] + ["09"]
    for seed in range(5):
        for split in (split_subjects(keys, 0.25, seed), dataset_split(keys, {"role": "external", "calibration_subjects": 3},
                                                                      {"test_fraction": 0.25, "seed": seed})):
            assert set(split) == set(keys)
            sides = {}
            for key, side in split.items():
                sides.setdefault(key.split("_ses-")[0], set()).add(side)
            assert all(len(s) == 1 for s in sides.values()), split
    with pytest.raises(ValueError, match="needs at least 2; this one has 1"):
        dataset_split(["01_ses-a", "01_ses-b"], {**DATASET, "role": "internal"}, {"test_fraction": 0.25, "seed": 0})


def test_a_dataset_without_phase_takes_only_models_that_do_not_read_it(tmp_path):
    """Every detector runs on every dataset: a phase-reading variant, trained model or
    localizer beside a dataset with phase: false is refused at once, naming both."""
    schema = REPO / "schemas" / "config.schema.yaml"
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["datasets"]["swi_only"] = {"bids_dir": str(tmp_path), "role": "external", "phase": False}
    validate_config(config, schema, ["my.yaml"])
    with pytest.raises(ValueError, match=r"datasets.swi_only has no phase \(phase: false\), but detector 'rpn_ffm_hspl' reads swi "
                                         r"and phase \(detector.variants.rpn_ffm_hspl.inputs\)"):
        check_config(config)
    config["detector"]["variants"] = {"swi": {"fuse_levels": True, "hspl": False, "inputs": ["swi"]}}
    check_config(config)  # one-channel variants only: accepted
    config["localizer"]["use_phase"] = True
    with pytest.raises(ValueError, match=r"swi_only has no phase.*localization network reads it \(localizer.use_phase\)"):
        check_config(config)
    config["localizer"]["use_phase"] = False
    folder = tmp_path / "rpn"
    folder.mkdir()
    (folder / "model_card.json").write_text('{"network": {"in_channels": 2}}')  # a card from before one-channel models
    config["fine_tune"] = {"tuned": {"parent": str(folder), "dataset": "swi_only"}}
    with pytest.raises(ValueError, match=rf"detector 'tuned' reads swi and phase \({folder}/model_card.json\)"):
        check_config(config)
    config["detector"]["variants"]["bad"] = {"fuse_levels": True, "hspl": False, "inputs": ["phase"]}
    with pytest.raises(ValueError, match=r"detector.variants.bad.inputs"):
        validate_config(config, schema, ["my.yaml"])


def test_the_retinanet_baseline_is_a_variant_without_our_switches():
    schema = REPO / "schemas" / "config.schema.yaml"
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["detector"]["variants"]["retinanet"] = {"architecture": "retinanet"}
    validate_config(config, schema, ["my.yaml"])
    assert config["detector"]["variants"]["retinanet"] == {"architecture": "retinanet", "fuse_levels": False, "hspl": False,
                                                          "inputs": ["swi", "phase"]}
    assert config["detector"]["variants"]["rpn_ffm_hspl"]["architecture"] == "cmbflow"
    config["detector"]["variants"]["retinanet"]["hspl"] = True
    with pytest.raises(ValueError, match=r"detector.variants.retinanet"):
        validate_config(config, schema, ["my.yaml"])


def _sections(mapping: dict, prefix: tuple = ()):
    for key, value in mapping.items():
        if isinstance(value, dict):
            yield prefix + (key,)
            yield from _sections(value, prefix + (key,))


NAMED = {("datasets",), ("detector", "variants"), ("synth", "sites"), ("models",)}  # their keys are names, not settings
SECTIONS = [s for s in _sections(yaml.safe_load((REPO / "config.yaml").read_text())) if s not in NAMED]


@pytest.mark.parametrize("section", SECTIONS, ids=".".join)
def test_a_misspelt_key_in_any_section_is_refused_naming_it_and_its_section(section):
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    entry = config
    for key in section:
        entry = entry[key]
    entry["misspelt_key"] = 1
    with pytest.raises(ValueError, match=rf"^config key {'.'.join(section)}: .*'misspelt_key' was unexpected"):
        validate_config(config, REPO / "schemas" / "config.schema.yaml", ["my.yaml"])


def test_annotations_dir_is_refused_for_a_synthetic_site():
    config = {"datasets": {"d": {"synthetic_site": "internal", "role": "internal", "annotations_dir": "/labels"}},
              "synth": {"sites": {"internal": {}}}}
    with pytest.raises(ValueError, match="datasets.d.annotations_dir: a synthetic site writes its own annotations"):
        check_config(config)
