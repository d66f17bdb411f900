"""What every panel of the studio shares: its place in the page, the studio it belongs to, and work
done off the event loop.

A panel builds its controls in the side drawer (:meth:`Panel.build`), shows one of the view layouts
(:attr:`Panel.layout`) and hears when a project opens (:meth:`Panel.on_project`) or when it is shown
(:meth:`Panel.on_show`). Reading volumes and computing (a blend, a review) runs in a worker thread
through :meth:`Panel.background`, so the page never freezes; MRML is only touched on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from typing import Any, Callable, Optional

import SimpleITK as sitk

from RobustDeepLib.process import describe_error
from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.io.volumes import read_volume

log = logging.getLogger("robustdeep.studio")


class Panel:
    """One panel of the studio.

    Parameters
    ----------
    studio : RobustDeepStudio.app.Studio
        The studio (state, controller, viewer, workspace, jobs).
    """

    #: Short id (used in element ids and the state).
    name = "panel"
    #: The title of its tab.
    title = "Panel"
    #: Its tab's icon (Material Design Icons).
    icon = "mdi-square"
    #: The view layout it shows (:mod:`RobustDeepStudio.views`), or None to keep the current one.
    layout: Optional[str] = None

    def __init__(self, studio: Any) -> None:
        self.studio = studio
        self.state = studio.state
        self.viewer = studio.viewer

    @property
    def project(self) -> Any:
        """The open project (:class:`RobustDeepStudio.workspace.Project`), or None."""
        return self.studio.project

    def build(self) -> None:
        """Build the panel's controls (called inside the drawer)."""

    def on_project(self, project: Any) -> None:
        """A project was opened (or closed: None).

        Parameters
        ----------
        project : RobustDeepStudio.workspace.Project or None
            The open project.
        """

    def on_show(self) -> None:
        """The panel became the active one."""
        if self.layout is not None:
            self.viewer.show_layout(self.layout)

    def on_hide(self) -> None:
        """Another panel became the active one."""

    # -- work off the event loop ------------------------------------------------------------------
    async def background(self, what: str, work: Callable[[], Any]) -> Any:
        """Run ``work()`` in a worker thread; show ``what`` as busy meanwhile, and its error if it fails.

        Parameters
        ----------
        what : str
            What is being done, shown in the status line.
        work : callable
            The work; it must not touch MRML or the state.

        Returns
        -------
        object
            ``work()``'s value, or None when it raised (the error is then shown).
        """
        with self.state:
            self.state.status = what + "..."
            self.state.error = ""
        try:
            value = await asyncio.get_running_loop().run_in_executor(None, work)
        except InputError as exc:
            self.show_error(describe_error(exc.as_event()))
            return None
        except Exception as exc:  # shown on the page; the studio goes on
            log.error("%s failed:\n%s", what, traceback.format_exc())
            self.show_error(f"{what} failed: {exc}")
            return None
        with self.state:
            self.state.status = ""
        return value

    def show_error(self, text: str) -> None:
        """Show ``text`` in the page's error alert, and clear the busy status.

        Parameters
        ----------
        text : str
            The error message.
        """
        with self.state:
            self.state.status = ""
            self.state.error = text

    @staticmethod
    def read(path: Any, patient: Optional[str] = None) -> sitk.Image:
        """A volume read by the engine (its file checks, a clear error naming the file).

        Parameters
        ----------
        path : path-like
            A NIfTI, NRRD or MetaImage file, or a folder holding one DICOM series.
        patient : str, optional
            Named in error messages.

        Returns
        -------
        SimpleITK.Image
            The 3D scalar image with its geometry.

        Raises
        ------
        InputError
            When the file is missing, unreadable or not a 3D scalar volume.
        """
        return read_volume(path, patient=patient)


__all__ = ["Panel", "log"]
