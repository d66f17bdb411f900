"""A study profile's settings changed with ``--set NAME=VALUE`` (RobustDeepLogic.study.settings)."""

from __future__ import annotations

import dataclasses

import pytest

from RobustDeepLogic.cli.commands.reproduce import PROFILE_SETTINGS
from RobustDeepLogic.cli.main import main
from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.study.profiles import ALL_TASKS, PROFILES, StudyProfile
from RobustDeepLogic.study.settings import SETTINGS, changed_settings, with_settings

QUICK = PROFILES["quick"]


def test_every_field_of_a_profile_but_its_name_is_a_setting_and_the_cli_offers_each():
    names = {f.name for f in dataclasses.fields(StudyProfile)} - {"name", "notes"}
    assert set(SETTINGS) == names
    assert set(PROFILE_SETTINGS) == names


@pytest.mark.parametrize("given, field, expected", [
    ({"train_folds": "all"}, "train_folds", None),
    ({"train_folds": 2}, "train_folds", (2,)),
    ({"train_folds": [3, 0, 3]}, "train_folds", (0, 3)),
    ({"train_folds": "0,2"}, "train_folds", (0, 2)),
    ({"synthetic": 100}, "synthetic", 100),
    ({"epochs": "10"}, "epochs", 10),
    ({"window": "32x48"}, "window", (32, 48)),
    ({"window": [96, 112]}, "window", (96, 112)),
    ({"widths": "4,8,16"}, "widths", (4, 8, 16)),
    ({"val_slices": "all"}, "val_slices", None),
    ({"slices_per_subject": 5}, "slices_per_subject", 5),
    ({"spacing": 3}, "spacing", 3.0),
    ({"weight_decay": 0}, "weight_decay", 0.0),
    ({"ablation_tasks": "all"}, "ablation_tasks", ALL_TASKS),
    ({"compute_tasks": "none"}, "compute_tasks", ()),
    ({"compute_tasks": ["mr2ct", "ld2fd"]}, "compute_tasks", ("mr2ct", "ld2fd")),
    ({"eval_pngs": True}, "eval_pngs", True),
    ({"simulate": "tiny"}, "simulate", "tiny"),
])
def test_settings_are_converted_to_the_profiles_types(given, field, expected):
    new = with_settings(QUICK, given)
    assert getattr(new, field) == expected
    assert new.name == "quick"
    # only the setting given changed, and changed_settings says so (as JSON: tuples as lists)
    want = list(expected) if isinstance(expected, tuple) else expected
    assert changed_settings(new) == ({} if getattr(QUICK, field) == expected else {field: want})
    for other in SETTINGS:
        if other != field:
            assert getattr(new, other) == getattr(QUICK, other)


@pytest.mark.parametrize("given, words", [
    ({"epochs": "abc"}, ["epochs", "'abc'", "integer"]),
    ({"epochs": 0}, ["epochs", "integer >= 1"]),
    ({"epochs": 2.5}, ["epochs", "integer"]),
    ({"epochs": True}, ["epochs", "integer"]),
    ({"window": "64"}, ["window", "2 integers"]),
    ({"widths": [8, 16]}, ["widths", "3 integers"]),
    ({"spacing": -1}, ["spacing", "> 0"]),
    ({"lr": "fast"}, ["lr", "> 0"]),
    ({"eval_pngs": "maybe"}, ["eval_pngs", "true or false"]),
    ({"ablation_tasks": "ld2fd,ct2mr"}, ["ablation_tasks", "tasks of"]),
    ({"simulate": "huge"}, ["huge"]),
    ({"train_folds": [5]}, ["train_folds", "0 to 4"]),
    ({"train_folds": "first"}, ["train_folds", "integer"]),
    ({"folds": 10}, ["fewer development patients", "10 folds"]),
    ({"colour": "red"}, ["colour", "not a setting"]),
])
def test_bad_settings_are_input_errors_naming_the_setting(given, words):
    with pytest.raises(InputError) as info:
        with_settings(QUICK, given)
    text = str(info.value)
    for word in words:
        assert word in text, (word, text)


def test_the_command_line_refuses_a_bad_setting_with_exit_2_naming_it(tmp_path, capsys):
    code = main(["reproduce", "--profile", "tiny", "--out", str(tmp_path / "s"), "--progress", "none",
                 "--set", "epochs=abc"])
    assert code == 2
    err = capsys.readouterr().err
    assert "epochs" in err and "abc" in err
    assert not (tmp_path / "s" / "study.json").exists()  # nothing started
    code = main(["demo", "--out", str(tmp_path / "d"), "--progress", "none", "--set", "window=12"])
    assert code == 2 and "window" in capsys.readouterr().err
