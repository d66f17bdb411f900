"""Configuration: defaults declared by each command, YAML files, command-line overrides.

Precedence, lowest first: the command's declared defaults; each ``--config FILE.yaml`` in order; the
options given on the command line; each ``--set key=value`` in order. A YAML file holds config keys at
its top level (``levels: 4``) and may hold per-command sections (``blend: {levels: 5}``) that apply only
to that command; unknown keys are an error that names the file, so a typo never passes silently.
Values from files and ``--set`` are converted to each setting's declared type (:class:`Setting`,
:func:`convert_value`); one that does not convert is an error that names the key, the value and the
type expected. The resolved configuration is written beside every output (:func:`save_resolved`).
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Sequence

import yaml

from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.core.files import atomic_write_text
from RobustDeepLogic.core.version import __version__


def load_yaml(path: os.PathLike | str) -> Dict[str, Any]:
    """Read a YAML file that holds a mapping.

    Parameters
    ----------
    path : str or os.PathLike
        The YAML file (UTF-8).

    Returns
    -------
    dict
        The file's top-level mapping; an empty dict for an empty file.

    Raises
    ------
    InputError
        The file cannot be read, is not valid YAML, or holds something other than a mapping.
    """
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
    """Parse one ``--set key=value`` override, the value as YAML (``levels=5`` gives the integer 5).

    Parameters
    ----------
    text : str
        ``key=value``; the text is split at the first ``=``.

    Returns
    -------
    key : str
        The key, stripped, with ``-`` replaced by ``_`` (``train-steps`` gives ``train_steps``).
    value : object
        The value parsed by ``yaml.safe_load``; None for an empty value; the raw text when it is not
        valid YAML. (:func:`resolve` takes the text as typed for a setting of one text value.)

    Raises
    ------
    InputError
        ``text`` has no ``=``.
    """
    if "=" not in text:
        raise InputError(f"--set expects key=value, got {text!r}")
    key, _, raw = text.partition("=")
    key = key.strip().replace("-", "_")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key, value


@dataclass(frozen=True)
class Setting:
    """What a configuration key accepts, as its command declares it (``Options.option``).

    Attributes
    ----------
    type : callable, optional
        Converts one value (``int``, ``float``, or a function of a text); None: taken as given.
    nargs : int or str, optional
        ``"+"`` / ``"*"`` for a list of values (a single value is taken as a list of one), an int for
        a list of exactly that many; None for one value.
    choices : sequence, optional
        The values allowed.
    flag : bool, optional
        A boolean switch: ``true`` or ``false``.
    optional : bool, optional
        None (an empty ``--set key=``) is accepted (the declared default is None).
    """

    type: Optional[Callable[[Any], Any]] = None
    nargs: Any = None
    choices: Optional[Sequence[Any]] = None
    flag: bool = False
    optional: bool = True


def _is_text(setting: Setting) -> bool:
    """A setting of one text value, which ``--set`` takes as typed (YAML would read ``off`` as False)."""
    return setting.type in (None, str) and setting.nargs is None and not setting.flag


def _expected(setting: Setting) -> str:
    if setting.flag:
        return "true or false"
    names = {int: "an integer", float: "a number"}
    one = names.get(setting.type, f"a valid {getattr(setting.type, '__name__', 'value').lstrip('_')}")
    if setting.nargs is None:
        return one
    count = f"{setting.nargs} " if isinstance(setting.nargs, int) else ""
    return f"a list of {count}values, each {one}"


def _convert_one(value: Any, kind: Optional[Callable[[Any], Any]]) -> Any:
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError
        number = int(value) if isinstance(value, str) else value
        if number != int(number):
            raise ValueError
        return int(number)
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError
        return float(value)
    if kind is not None and isinstance(value, str):
        return kind(value)
    return value


def convert_value(key: str, value: Any, setting: Setting, *, source: str = "--set",
                  file: Optional[os.PathLike | str] = None) -> Any:
    """``value`` converted to what ``setting`` declares, or an :class:`InputError` naming the key.

    Parameters
    ----------
    key : str
        The configuration key, for the message.
    value : object
        The value as YAML gave it (``--set epochs=abc`` gives the text ``'abc'``).
    setting : Setting
        What the key accepts.
    source : str, optional
        Where the value came from, for the message (``"--set"`` or ``"config file"``).
    file : str or os.PathLike, optional
        The config file the value came from, named in the error.

    Returns
    -------
    object
        The converted value: an int, float or the type's result; a list for ``nargs``; None when
        allowed.

    Raises
    ------
    InputError
        The value does not convert, has the wrong number of items, or is not one of the choices.
    """
    def fail(what: str) -> InputError:
        yaml_bool = isinstance(value, bool) and not setting.flag
        return InputError(f"{source}: {key}={value!r} is not {what}", file=file,
                          hint="YAML reads off, no, on and yes as false / true: quote the value ('off')"
                          if yaml_bool else None)

    if value is None:
        if setting.optional:
            return None
        raise fail(_expected(setting))
    if setting.flag:
        if not isinstance(value, bool):
            raise fail("true or false")
        return value
    try:
        if setting.nargs is None:
            converted = _convert_one(value, setting.type)
            items = [converted]
        else:
            values = list(value) if isinstance(value, (list, tuple)) else [value]
            items = [_convert_one(v, setting.type) for v in values]
            converted = items
    except (ValueError, TypeError, OverflowError):
        raise fail(_expected(setting)) from None
    if isinstance(setting.nargs, int) and len(items) != setting.nargs:
        raise fail(_expected(setting))
    if setting.nargs == "+" and not items:
        raise fail(_expected(setting))
    if setting.choices is not None:
        bad = [v for v in items if v not in setting.choices]
        if bad:
            raise fail(f"one of {', '.join(str(c) for c in setting.choices)}")
    return converted


def resolve(
    command: str,
    defaults: Mapping[str, Any],
    config_files: Iterable[os.PathLike | str] = (),
    cli_values: Optional[Mapping[str, Any]] = None,
    overrides: Iterable[str] = (),
    all_commands: Iterable[str] = (),
    positionals: Iterable[str] = (),
    settings: Optional[Mapping[str, Setting]] = None,
) -> Dict[str, Any]:
    """Merge defaults, YAML files, command-line values and ``--set`` overrides (see the module doc).

    Keys of positional arguments are accepted in files, so that a saved configuration can be read
    back; the command line (:func:`RobustDeepLogic.cli.main.run_command`) applies the positional
    values after this function, so they win over the files.

    Parameters
    ----------
    command : str
        The command's name: the per-command section of a file that applies, and the name in messages.
    defaults : mapping of str to object
        The command's declared defaults; their keys are the known keys.
    config_files : iterable of str or os.PathLike, optional
        YAML files (``--config``), applied in order. Top-level keys apply to every command; a key
        named after a command is that command's section; other commands' sections are ignored.
    cli_values : mapping of str to object, optional
        Options given on the command line; applied after the files, keys not checked.
    overrides : iterable of str, optional
        ``key=value`` texts (``--set``), applied last, in order (see :func:`parse_override`).
    all_commands : iterable of str, optional
        Names of every command, so that their sections in a shared file are recognised as sections.
    positionals : iterable of str, optional
        Keys of the command's positional arguments, accepted in files and overrides.
    settings : mapping of str to Setting, optional
        What each key accepts; values from files and overrides of these keys are converted by
        :func:`convert_value`. Keys without a setting are taken as given.

    Returns
    -------
    dict
        The resolved configuration: ``defaults`` updated by the files, ``cli_values`` and
        ``overrides``, keys with ``-`` replaced by ``_``.

    Raises
    ------
    InputError
        A file cannot be read or is not a mapping, this command's section is not a mapping, a file
        or an override names an unknown key (the message lists the known keys), or a value does not
        convert to its setting's type (the message names the key, the value and the type).
    """
    known = set(defaults) | set(positionals)
    settings = dict(settings or {})
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
                if norm in settings:
                    value = convert_value(norm, value, settings[norm], source="config file", file=file)
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
        setting = settings.get(key)
        if setting is not None:
            if value is not None and _is_text(setting):  # as on the command line: 'off' stays 'off'
                value = text.partition("=")[2].strip()
            value = convert_value(key, value, setting)
        resolved[key] = value
    return resolved


def plain_value(value: Any, *, nonfinite: bool = False) -> Any:
    """Convert a value to plain Python types that YAML and JSON can write.

    Parameters
    ----------
    value : object
        Any value; dicts, lists and tuples are converted recursively.
    nonfinite : bool
        Also write non-finite floats as strict JSON can: NaN as ``None``, infinities as ``"inf"`` /
        ``"-inf"`` (default: left as floats).

    Returns
    -------
    object
        ``value`` with paths as strings, dict keys as strings, tuples as lists and numpy scalars
        (0-dimensional values with ``.item()``) as Python numbers; anything else unchanged.
    """
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): plain_value(v, nonfinite=nonfinite) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_value(v, nonfinite=nonfinite) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if nonfinite and isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def save_resolved(path: os.PathLike | str, command: str, config: Mapping[str, Any]) -> Path:
    """Write a resolved configuration as YAML, atomically, with its provenance in comments.

    The header comments give the command, the RobustDeep and Python versions, the platform, the time
    and the command line; the body is the configuration with sorted keys. The file is itself a valid
    ``--config`` for the same command.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write (replaced if it exists).
    command : str
        The command's name, for the header.
    config : mapping of str to object
        The resolved configuration (see :func:`resolve`); values are converted by :func:`plain_value`.

    Returns
    -------
    pathlib.Path
        ``path``.
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
