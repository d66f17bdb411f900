"""The errors that reach users: :class:`RobustDeepError` and :class:`InputError`.

An :class:`InputError` is a problem with what the user gave us (a file, a patient, a parameter); the
command line turns it into exit status 2 and a JSON ``error`` event that names the file or patient and
gives a hint. Anything else that escapes a command is an internal failure (exit status 1).
"""

from __future__ import annotations

from typing import Optional

from RobustDeepLogic.core.types import PathLike


class RobustDeepError(Exception):
    """Base class of RobustDeep's own errors.

    Parameters
    ----------
    *args : object
        As for :class:`Exception`.
    """


class InputError(RobustDeepError, ValueError):
    """Bad input: a file, a patient, a mask or a parameter that cannot be used as given.

    The text of the exception is ``"patient P: FILE: message (hint: ...)"``, each part present only
    when given. Being a :class:`ValueError` too, it is caught by code that expects one.

    Parameters
    ----------
    message : str
        What is wrong, in the user's words.
    file : str or pathlib.Path, optional
        The file or folder concerned, if any; stored as a string.
    patient : str, optional
        The patient (subject) identifier concerned, if any.
    hint : str, optional
        What to do about it.

    Attributes
    ----------
    message, file, patient, hint
        The arguments, ``file`` as a string or None.
    """

    def __init__(
        self,
        message: str,
        *,
        file: Optional[PathLike] = None,
        patient: Optional[str] = None,
        hint: Optional[str] = None,
    ) -> None:
        self.message = message
        self.file = str(file) if file is not None else None
        self.patient = patient
        self.hint = hint
        super().__init__(self._compose())

    def _compose(self) -> str:
        where = []
        if self.patient is not None:
            where.append(f"patient {self.patient}")
        if self.file is not None:
            where.append(self.file)
        text = f"{': '.join(where)}: {self.message}" if where else self.message
        if self.hint:
            text += f" (hint: {self.hint})"
        return text

    def as_event(self) -> dict:
        """The JSON ``error`` event of the progress protocol (:mod:`RobustDeepLogic.core.progress`).

        Returns
        -------
        dict
            ``{"event": "error", "kind": "input", "message": ..., "file": ..., "patient": ...,
            "hint": ...}``, with None for the parts not given.
        """
        return {
            "event": "error",
            "kind": "input",
            "message": self.message,
            "file": self.file,
            "patient": self.patient,
            "hint": self.hint,
        }
