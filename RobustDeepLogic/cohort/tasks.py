"""The image-to-image tasks, as data.

A task names its input modalities (network input channels, in order) and its target modality.
The four tasks of the paper are built in; a user adds one without code through a YAML file
(``tasks: {pet2ct: {inputs: [FD], target: CT}}``) read by :func:`load_tasks`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Tuple

from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.core.modalities import MODALITIES


@dataclass(frozen=True)
class Task:
    name: str
    inputs: Tuple[str, ...]
    target: str
    description: str = ""

    @property
    def modalities(self) -> Tuple[str, ...]:
        return tuple(dict.fromkeys(self.inputs + (self.target,)))


BUILTIN_TASKS: Dict[str, Task] = {
    t.name: t
    for t in (
        Task("ld2fd", ("LD",), "FD", "low-dose PET -> full-dose PET"),
        Task("ldmr2fd", ("LD", "T1", "T2"), "FD", "low-dose PET + T1 + T2 MR -> full-dose PET"),
        Task("nac2mac", ("NAC",), "MAC", "non-attenuation-corrected PET -> CT-attenuation-corrected PET"),
        Task("mr2ct", ("T1", "T2"), "CT", "T1 + T2 MR -> CT"),
    )
}


def load_tasks(extra: Optional[Mapping[str, Mapping]] = None, source: str = "config") -> Dict[str, Task]:
    """The built-in tasks plus those declared in ``extra`` (name -> {inputs, target, description})."""
    tasks = dict(BUILTIN_TASKS)
    for name, spec in (extra or {}).items():
        if not isinstance(spec, Mapping) or "inputs" not in spec or "target" not in spec:
            raise InputError(f"task {name!r} needs 'inputs' (a list) and 'target'", file=source)
        inputs = tuple(str(m).upper() for m in spec["inputs"])
        target = str(spec["target"]).upper()
        for modality in inputs + (target,):
            if modality not in MODALITIES:
                raise InputError(
                    f"task {name!r} names unknown modality {modality!r}",
                    file=source,
                    hint=f"modalities are {', '.join(MODALITIES)}",
                )
        tasks[name] = Task(str(name), inputs, target, str(spec.get("description", "")))
    return tasks


def get_task(name: str, tasks: Optional[Mapping[str, Task]] = None) -> Task:
    tasks = tasks if tasks is not None else BUILTIN_TASKS
    if name not in tasks:
        raise InputError(f"unknown task {name!r}", hint=f"known tasks: {', '.join(tasks)}")
    return tasks[name]
