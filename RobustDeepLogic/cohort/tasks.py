"""The image-to-image tasks, as data (docs/method.md §7).

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
    """One translation task: input modalities -> target modality.

    Attributes
    ----------
    name : str
        The task's key (``"ld2fd"`` ...).
    inputs : tuple of str
        Input modalities, in the order of the network's input channels.
    target : str
        The modality the network predicts.
    description : str, optional
        A line for people (``"low-dose PET -> full-dose PET"``).

    References
    ----------
    .. [1] docs/method.md §7, the table of tasks.
    """

    name: str
    inputs: Tuple[str, ...]
    target: str
    description: str = ""

    @property
    def modalities(self) -> Tuple[str, ...]:
        """Every modality the task uses: the inputs, then the target, each once."""
        return tuple(dict.fromkeys(self.inputs + (self.target,)))


#: The paper's four tasks by name: ``ld2fd``, ``ldmr2fd``, ``nac2mac``, ``mr2ct``.
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
    """The built-in tasks plus those declared in ``extra``.

    Parameters
    ----------
    extra : mapping, optional
        Task name -> ``{"inputs": [...], "target": ..., "description": ...}`` (description optional;
        modality names in any case). A name of a built-in task replaces it.
    source : str, optional
        Where ``extra`` comes from (a file name), named in error messages.

    Returns
    -------
    dict of str to Task
        Every known task by name.

    Raises
    ------
    InputError
        A task lacks ``inputs`` or ``target``, or names an unknown modality.
    """
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
    """Look a task up by name.

    Parameters
    ----------
    name : str
        The task's name (case-sensitive).
    tasks : mapping of str to Task, optional
        The known tasks (see :func:`load_tasks`); the built-in ones by default.

    Returns
    -------
    Task

    Raises
    ------
    InputError
        ``name`` is not a known task (the message lists them).
    """
    tasks = tasks if tasks is not None else BUILTIN_TASKS
    if name not in tasks:
        raise InputError(f"unknown task {name!r}", hint=f"known tasks: {', '.join(tasks)}")
    return tasks[name]
