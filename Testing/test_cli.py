"""The command-line frame: help everywhere, YAML config with overrides, the resolved config and log
beside the outputs, JSON progress lines, and exit statuses 0 / 2 / 1."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import write_tiny_cohort
from RobustDeepLogic.cli.main import main
from RobustDeepLogic.cli.frame import Command, Result, build_parser
from RobustDeepLogic.cli.main import run_command
from RobustDeepLogic.cli.commands import all_commands
from RobustDeepLogic.core.errors import InputError


def _leaf_paths(commands, prefix=()):
    for c in commands:
        if c.subcommands:
            yield from _leaf_paths(c.subcommands, prefix + (c.name,))
        else:
            yield prefix + (c.name,)


def test_help_everywhere(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    paths = list(_leaf_paths(all_commands()))
    assert ("cohort", "check") in paths and ("assets",) in paths
    for path in paths:
        with pytest.raises(SystemExit) as exit_:
            main([*path, "--help"])
        assert exit_.value.code == 0, path
        out = capsys.readouterr().out
        assert "--progress" in out and "--config" in out, path


def _probe_command(record):
    """A command that records the configuration it was given."""

    def arguments(o):
        o.positional("out", help="output folder")
        o.option("--levels", type=int, default=4, help="levels")
        o.option("--name", default="alpha", help="a name")
        o.option("--fast", flag=True, default=False, help="go fast")

    def run(config, ctx):
        record.update(config)
        ctx.log.info("probe ran")
        with ctx.progress.stage("work", total=3) as st:
            for _ in range(3):
                st.advance()
        if config["name"] == "bad":
            raise InputError("bad name", patient="P009", file="x.nii.gz", hint="pick another")
        if config["name"] == "boom":
            raise RuntimeError("kaput")
        return Result(outputs={"out": config["out"]}, figures={"levels": config["levels"]})

    return Command("probe", "a probe", arguments, run, output="out")


def test_config_precedence_defaults_yaml_cli_set(tmp_path):
    record = {}
    cfg1 = tmp_path / "a.yaml"
    cfg1.write_text("levels: 5\nname: fromfile\n")
    cfg2 = tmp_path / "b.yaml"
    cfg2.write_text("probe:\n  levels: 6\n")
    out = tmp_path / "out"
    code = run_command(["probe", str(out), "--config", str(cfg1), "--config", str(cfg2),
                        "--name", "fromcli", "--progress", "none"], [_probe_command(record)])
    assert code == 0
    assert record["levels"] == 6 and record["name"] == "fromcli" and record["fast"] is False
    code = run_command(["probe", str(out), "--config", str(cfg1), "--set", "levels=7", "--fast",
                        "--progress", "none"], [_probe_command(record)])
    assert code == 0 and record["levels"] == 7 and record["fast"] is True
    saved = yaml.safe_load((out / "robustdeep-probe.config.yaml").read_text())
    assert saved["levels"] == 7 and saved["name"] == "fromfile" and saved["out"] == str(out)
    # the saved file is itself a valid config for the same command
    record.clear()
    assert run_command(["probe", str(tmp_path / "again"), "--config",
                        str(out / "robustdeep-probe.config.yaml"), "--progress", "none"],
                       [_probe_command(record)]) == 0
    assert record["levels"] == 7
    log = (out / "robustdeep.log").read_text()
    assert "probe ran" in log


def test_unknown_config_key_is_an_input_error(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("levles: 5\n")
    code = run_command(["probe", str(tmp_path / "o"), "--config", str(cfg)], [_probe_command({})])
    assert code == 2
    err = capsys.readouterr().err
    assert "levles" in err and "c.yaml" in err


def test_json_progress_protocol_and_exit_statuses(tmp_path, capsys):
    cmds = [_probe_command({})]
    assert run_command(["probe", str(tmp_path / "o"), "--progress", "json"], cmds) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[-1] == "result"
    progress = [e for e in events if e["event"] == "progress"]
    assert [e["done"] for e in progress] == [0, 1, 2, 3]
    assert all(e["stage"] == "work" and e["total"] == 3 for e in progress)
    assert events[-1]["figures"] == {"levels": 4}

    assert run_command(["probe", str(tmp_path / "o"), "--name", "bad", "--progress", "json"], cmds) == 2
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    error = events[-1]
    assert error == {"event": "error", "kind": "input", "message": "bad name", "file": "x.nii.gz",
                     "patient": "P009", "hint": "pick another"}

    assert run_command(["probe", str(tmp_path / "o"), "--name", "boom", "--progress", "json"], cmds) == 1
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert events[-1]["kind"] == "internal" and "kaput" in events[-1]["message"]
    assert "Traceback" in (tmp_path / "o" / "robustdeep.log").read_text()


def test_cohort_check_through_the_installed_command(tmp_path):
    """The real entry point in a subprocess: exit 0 on a good cohort, 2 with named problems."""
    write_tiny_cohort(tmp_path / "c", n=2)
    cmd = [sys.executable, "-m", "RobustDeepLogic", "cohort", "check", str(tmp_path / "c"),
           "--progress", "json"]
    ok = subprocess.run(cmd, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout.splitlines()[-1])["figures"]["patients"] == 2
    (tmp_path / "c" / "P002" / "LD.nii.gz").unlink()
    bad = subprocess.run(cmd, capture_output=True, text=True)
    assert bad.returncode == 2
    events = [json.loads(line) for line in bad.stdout.splitlines()]
    problems = [e for e in events if e.get("kind") == "check-error"]
    assert problems and problems[0]["patient"] == "P002" and problems[0]["file"].endswith("LD.nii.gz")


def test_parser_lists_commands_in_pipeline_order():
    text = build_parser(all_commands()).format_help()
    assert text.index("assets") < text.index("cohort")


@pytest.mark.parametrize("name", ["paper.yaml", "cpu-quick.yaml", "task-pet2ct.yaml"])
def test_shipped_configs_hold_only_known_keys_and_valid_training_settings(name):
    import argparse

    from RobustDeepLogic.cli.frame import Options
    from RobustDeepLogic.cli.commands import all_commands
    from RobustDeepLogic.core.config import load_yaml, resolve
    from RobustDeepLogic.training.settings import _check_config

    path = Path(__file__).resolve().parents[1] / "Resources" / "Configs" / name
    commands = {c.name: c for c in all_commands()}
    sections = load_yaml(path)
    assert sections and set(sections) <= set(commands)
    for command in sections:
        options = Options(argparse.ArgumentParser())
        commands[command].arguments(options)
        config = resolve(command, options.defaults, [path], all_commands=commands,
                         positionals=options.positionals)
        for key, value in sections[command].items():
            assert config[key] == value
        if command == "train":
            checked = _check_config({k: config[k] for k in config if k not in options.positionals})
            if "tasks" in sections[command]:
                from RobustDeepLogic.cohort.tasks import get_task, load_tasks

                task = get_task(checked["task"], load_tasks(checked["tasks"]))
                assert task.inputs == ("FD",) and task.target == "CT"


@pytest.mark.parametrize("argv, key, value, expected", [
    (["train", "C", "--out", "O", "--set", "epochs=abc"], "epochs", "abc", "an integer"),
    (["train", "C", "--out", "O", "--set", "lr=fast"], "lr", "fast", "a number"),
    (["train", "C", "--out", "O", "--set", "window=[64, 64, 64]"], "window", "[64, 64, 64]", "a list of 2"),
    (["train", "C", "--out", "O", "--set", "batch_size=2.5"], "batch_size", "2.5", "an integer"),
    (["train", "C", "--out", "O", "--set", "amp=fp8"], "amp", "fp8", "one of auto, bf16"),
    (["train", "C", "--out", "O", "--set", "resume=maybe"], "resume", "maybe", "true or false"),
    (["simulate", "O", "--set", "subjects=many"], "subjects", "many", "an integer"),
    (["register", "C", "O", "--set", "shrink_factors=[4, x]"], "shrink_factors", "[4, 'x']",
     "each an integer"),
    (["cohort", "check", "C", "--set", "workers=two"], "workers", "two", "an integer"),
])
def test_set_value_of_the_wrong_type_is_an_input_error_naming_key_value_and_type(
        tmp_path, monkeypatch, capsys, argv, key, value, expected):
    """Issue 15 #14: `train --set epochs=abc` was an internal error (exit 1)."""
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "internal error" not in err
    assert f"{key}=" in err and value in err and expected in err
    assert not (tmp_path / "O").exists()  # refused before anything was made


def test_config_file_value_of_the_wrong_type_names_the_file(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("train:\n  epochs: twenty\n")
    assert main(["train", str(tmp_path / "C"), "--out", str(tmp_path / "O"), "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "c.yaml" in err and "epochs='twenty'" in err and "an integer" in err


def test_set_values_convert_to_the_declared_types(tmp_path):
    """YAML reads 1e-3 as text and 5 as an int: the declared type decides (float, list of int)."""
    record = {}

    def arguments(o):
        o.positional("out", help="output folder")
        o.option("--rate", type=float, default=0.1, help="a rate")
        o.option("--sizes", type=int, nargs=2, default=[1, 1], help="two sizes")
        o.option("--folds", type=int, nargs="+", default=None, help="folds")

    def run(config, ctx):
        record.update(config)
        return Result()

    probe = Command("probe", "a probe", arguments, run, output="out")
    assert run_command(["probe", str(tmp_path / "o"), "--set", "rate=1e-3", "--set", "sizes=[3, 4.0]",
                        "--set", "folds=2", "--progress", "none"], [probe]) == 0
    assert record["rate"] == 0.001 and isinstance(record["rate"], float)
    assert record["sizes"] == [3, 4] and all(type(v) is int for v in record["sizes"])
    assert record["folds"] == [2]


def test_set_of_a_text_choice_takes_the_text_as_typed(tmp_path, capsys):
    """`--set amp=off` is 'off' as `--amp off` is (YAML alone would read False); a file's bare off is
    refused with a hint to quote it."""
    record = {}

    def arguments(o):
        o.positional("out", help="output folder")
        o.option("--amp", default="auto", choices=["auto", "off"], help="mixed precision")
        o.option("--device", default="auto", help="a device")

    def run(config, ctx):
        record.update(config)
        return Result()

    probe = Command("probe", "a probe", arguments, run, output="out")
    assert run_command(["probe", str(tmp_path / "o"), "--set", "amp=off", "--set", "device=0",
                        "--progress", "none"], [probe]) == 0
    assert record["amp"] == "off" and record["device"] == "0"
    cfg = tmp_path / "c.yaml"
    cfg.write_text("amp: off\n")
    assert run_command(["probe", str(tmp_path / "o"), "--config", str(cfg), "--progress", "none"], [probe]) == 2
    err = capsys.readouterr().err
    assert "amp=False" in err and "one of auto, off" in err and "quote" in err
