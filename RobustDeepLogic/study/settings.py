"""A profile's settings changed from the command line: ``robustdeep reproduce --set NAME=VALUE``.

:data:`SETTINGS` names every setting of a :class:`~RobustDeepLogic.study.profiles.StudyProfile` that may
be changed (all but its name and notes); :func:`with_settings` checks each value (type, range, and
that the settings fit together) and returns the changed profile; :func:`changed_settings` says what a
profile changes against the profile of its name (recorded in ``study.json``; a study folder refuses
other settings as it refuses another profile).
"""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any, Dict, List, Mapping, Optional, Tuple

from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.simulate.profiles import get_profile as sim_profile
from RobustDeepLogic.study.profiles import ALL_TASKS, PROFILES, StudyProfile

#: The settings of a profile that ``--set NAME=VALUE`` may change: every field but the name and notes.
SETTINGS: Tuple[str, ...] = tuple(f.name for f in fields(StudyProfile) if f.name not in ("name", "notes"))

_INTS = {"subjects": 2, "test": 1, "folds": 2, "synthetic": 1, "levels": 1, "epochs": 1, "batch_size": 1}
_OPTIONAL_INTS = ("slices_per_subject", "val_slices")
_SIZES = {"window": (2, 8), "widths": (3, 1)}
_TASK_LISTS = ("ablation_tasks", "compute_tasks")


def _bad(name: str, value: Any, expected: str) -> InputError:
    return InputError(f"--set {name}={value!r}: {name} must be {expected}",
                      hint=f"profile settings: {', '.join(SETTINGS)}")


def _integer(name: str, value: Any, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise _bad(name, value, f"an integer >= {least}")
    try:
        number = float(value)
    except ValueError:
        raise _bad(name, value, f"an integer >= {least}") from None
    if not number.is_integer() or number < least:
        raise _bad(name, value, f"an integer >= {least}")
    return int(number)


def _items(value: Any, size: bool = False) -> List[Any]:
    if isinstance(value, str):
        text = value.replace("x", ",") if size else value
        return [v for v in text.replace(" ", ",").split(",") if v]
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _setting(name: str, value: Any) -> Any:
    """One setting's value checked and converted to the profile's type."""
    if name in _INTS:
        return _integer(name, value, _INTS[name])
    if name in _OPTIONAL_INTS:
        return None if value in (None, "all") else _integer(name, value, 1)
    if name in _SIZES:
        count, least = _SIZES[name]
        items = _items(value, size=True)
        if len(items) != count:
            raise _bad(name, value, f"{count} integers >= {least} (e.g. {'64x64' if count == 2 else '8,16,32'})")
        return tuple(_integer(name, v, least) for v in items)
    if name in _TASK_LISTS:
        tasks = ALL_TASKS if value == "all" else () if value in (None, "none") else tuple(_items(value))
        if any(t not in ALL_TASKS for t in tasks):
            raise _bad(name, value, f"'all', 'none' or tasks of {', '.join(ALL_TASKS)}")
        return tasks
    if name in ("spacing", "lr", "weight_decay"):
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = float("nan")
        if isinstance(value, bool) or not (number > 0 or (name == "weight_decay" and number == 0)):
            raise _bad(name, value, "a number >= 0" if name == "weight_decay" else "a number > 0")
        return number
    if name == "eval_pngs":
        if not isinstance(value, bool):
            raise _bad(name, value, "true or false")
        return value
    if name == "simulate":
        sim_profile(str(value))  # an unknown simulation profile is an InputError naming the profiles
        return str(value)
    if name == "train_folds":
        if value in (None, "all"):
            return None
        return tuple(sorted({_integer(name, v, 0) for v in _items(value)}))
    raise InputError(f"--set {name}: not a setting of a study profile", hint=f"settings: {', '.join(SETTINGS)}")


def with_settings(profile: StudyProfile, settings: Optional[Mapping[str, Any]] = None) -> StudyProfile:
    """``profile`` with some settings changed, each checked (``robustdeep reproduce --set NAME=VALUE``).

    Parameters
    ----------
    profile : StudyProfile
        The profile to start from.
    settings : mapping of str to object, optional
        ``{setting: value}`` for settings of :data:`SETTINGS`; values as YAML gives them (``10``,
        ``[0, 2]``) or as text (``"64x64"``, ``"0,2"``); ``all`` for ``train_folds``,
        ``slices_per_subject`` and ``val_slices`` means None (all), for the task lists all four tasks.

    Returns
    -------
    StudyProfile
        A new profile (the same name); ``profile`` itself when nothing is changed.

    Raises
    ------
    InputError
        For a name that is not a setting, a value of the wrong type or range (the message names the
        setting, the value and what it must be), or settings that do not fit together (fewer
        development patients than folds, a trained fold that does not exist).
    """
    if not settings:
        return profile
    changed = {name: _setting(name, value) for name, value in settings.items()}
    new = replace(profile, **changed)
    if new.subjects - new.test < new.folds:
        raise InputError(f"--set: {new.subjects} patients with {new.test} held out leave fewer development "
                         f"patients than the {new.folds} folds", hint="raise subjects or lower test / folds")
    if new.train_folds is not None and any(f >= new.folds for f in new.train_folds):
        raise InputError(f"--set train_folds: folds are numbered 0 to {new.folds - 1}, got "
                         f"{list(new.train_folds)}", hint="or train_folds=all")
    return new


def changed_settings(profile: StudyProfile) -> Dict[str, Any]:
    """The settings of ``profile`` that differ from the profile of its name (what ``--set`` changed).

    Parameters
    ----------
    profile : StudyProfile
        A profile, e.g. from :func:`with_settings`.

    Returns
    -------
    dict
        ``{setting: value}`` (JSON-ready, as :meth:`StudyProfile.as_dict`); empty when none differs or
        the name is not a profile of :data:`PROFILES`.
    """
    base = PROFILES.get(profile.name)
    if base is None:
        return {}
    mine, theirs = profile.as_dict(), base.as_dict()
    return {k: mine[k] for k in SETTINGS if mine[k] != theirs[k]}
