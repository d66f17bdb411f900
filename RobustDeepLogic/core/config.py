"""Configuration: defaults declared by each command, YAML files, command-line overrides.

Precedence, lowest first: the command's declared defaults; each ``--config FILE.yaml`` in order; the
options given on the command line; each ``--set key=value`` in order. A YAML file holds config keys at
its top level (``levels: 4``) and may hold per-command sections (``blend: {levels: 5}``) that apply only
to that command; unknown keys are an error that names the file, so a typo never passes silently.
The resolved configuration is written beside every output (:func:`save_resolved`).
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import sys
from pathlib import Path
from typing import Any, Dict, Iterable, Mapping, Optional

import yaml

from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.core.files import atomic_write_text
from RobustDeepLogic.core.version import __version__


def load_yaml(path: os.PathLike | str) -> Dict[str, Any]:
    """Read a YAML mapping; an unreadable or non-mapping file is an :class:`InputError`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read the config file ({exc.strerror})", file=path) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"not valid YAML: {exc}", file=path) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError("a config file must hold a mapping of keys to values", file=path)
    return data


def parse_override(text: str) -> tuple[str, Any]:
    """``key=value`` with the value parsed as YAML (``levels=5`` gives the integer 5)."""
    if "=" not in text:
        raise InputError(f"--set expects key=value, got {text!r}")
    key, _, raw = text.partition("=")
    key = key.strip().replace("-", "_")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key, value


def resolve(
    command: str,
    defaults: Mapping[str, Any],
    config_files: Iterable[os.PathLike | str] = (),
    cli_values: Optional[Mapping[str, Any]] = None,
    overrides: Iterable[str] = (),
    all_commands: Iterable[str] = (),
    positionals: Iterable[str] = (),
) -> Dict[str, Any]:
    """Merge defaults, YAML files, command-line values and ``--set`` overrides (see module doc).

    Keys of positional arguments are accepted in files (so a saved config can be read back) but the
    command line's positional values always win.
    """
    known = set(defaults) | set(positionals)
    sections = set(all_commands) | {command}
    resolved = dict(defaults)
    for file in config_files:
        data = load_yaml(file)
        section = data.get(command, {})
        top = {k: v for k, v in data.items() if k not in sections}
        if not isinstance(section, dict):
            raise InputError(f"the section {command!r} must be a mapping", file=file)
        for origin in (top, section):
            for key, value in origin.items():
                norm = str(key).replace("-", "_")
                if norm not in known:
                    raise InputError(
                        f"unknown key {key!r} for 'robustdeep {command}'",
                        file=file,
                        hint=f"known keys: {', '.join(sorted(known))}",
                    )
                resolved[norm] = value
    for key, value in (cli_values or {}).items():
        resolved[key] = value
    for text in overrides:
        key, value = parse_override(text)
        if key not in known:
            raise InputError(
                f"--set: unknown key {key!r} for 'robustdeep {command}'",
                hint=f"known keys: {', '.join(sorted(known))}",
            )
        resolved[key] = value
    return resolved


def plain_value(value: Any) -> Any:
    """``value`` with paths as strings, tuples as lists and numpy scalars as Python numbers (for YAML/JSON)."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): plain_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_value(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return value.item()
    return value


def save_resolved(path: os.PathLike | str, command: str, config: Mapping[str, Any]) -> Path:
    """Write the resolved config with the version, time and command line, atomically.

    The file is itself a valid ``--config`` for the same command: provenance lives in comments.
    """
    header = (
        f"# robustdeep {command}: resolved configuration\n"
        f"# robustdeep {__version__}, Python {platform.python_version()}, {platform.platform()}\n"
        f"# written {_dt.datetime.now().astimezone().isoformat(timespec='seconds')}\n"
        f"# command line: {' '.join(sys.argv)}\n"
    )
    body = yaml.safe_dump(plain_value(dict(config)), sort_keys=True, default_flow_style=False)
    path = Path(path)
    atomic_write_text(path, header + body)
    return path
