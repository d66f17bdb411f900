"""The set-up panel of the RobustDeep module: the engine, the compute device, the dependencies
(torch and the engine's other packages), the engine's template assets.

``RobustDeepWidget`` and ``RobustDeepLogic`` (``RobustDeep.py``) inherit the two mixins below, so the
slots are connected in ``RobustDeepWidget.setup`` and scripts, the self-test and the tests call the
logic as ``RobustDeepLogic().computeInfo(...)``.

The engine itself (``RobustDeepLogic.engine()``, ``engineInfo()``) stays in ``RobustDeep.py``, which
imports it under the alias ``rdengine``.
"""

from typing import List

import slicer
from slicer.i18n import tr as _


from RobustDeepLib import command_lines as rdcmd


class SetupWidgetMixin:
    """The set-up panel's slots. A mixin of ``RobustDeepWidget``: it uses the widget's ``ui`` and
    ``logic``, and starts jobs with ``_startJob`` (:mod:`RobustDeepLib.jobs_panel`)."""

    def _updateSetupButtons(self, p, busy: bool) -> None:
        """The set-up panel's button (``p``: the parameter node; ``busy``: a job runs)."""
        self.ui.prepareAssetsButton.enabled = not busy

    def _showEngineInfo(self) -> None:
        self.ui.engineInfoLabel.text = self.logic.engineInfo()

    def onDetectDevice(self, importTorch: bool = True) -> None:
        """Show versions and the compute device (imports torch when asked)."""
        with slicer.util.tryWithErrorDisplay(_("Failed to detect the compute device."), waitCursor=True):
            info = self.logic.computeInfo(importTorch=importTorch)
            text = info.summary()
            if not importTorch and info.torch_version is not None:
                text += _(" (press 'Detect device' to check the GPU)")
            self.ui.computeInfoLabel.text = text

    def onInstallDependencies(self) -> None:
        """Install torch (PyTorch extension) and the engine's other packages, after confirmation."""
        with slicer.util.tryWithErrorDisplay(_("Failed to install the dependencies."), waitCursor=True):
            installed = self.logic.installDependencies(ask=True)
            self.onDetectDevice(importTorch=True)
            slicer.util.infoDisplay(_("Ready: {what}").format(what=", ".join(installed) or _("nothing was missing")))

    def onPrepareAssets(self) -> None:
        """``robustdeep assets`` in the background: the template assets the engine needs, once."""
        with slicer.util.tryWithErrorDisplay(_("Failed to start preparing the assets."), waitCursor=True):
            self._startJob(_("Template assets"), rdcmd.assets_command())


class SetupLogicMixin:
    """The set-up panel's computations, callable without the GUI. A mixin of ``RobustDeepLogic``."""

    def computeInfo(self, importTorch: bool = True):
        from RobustDeepLib.dependencies import compute_info

        return compute_info(import_torch=importTorch)

    def installDependencies(self, ask: bool = True) -> List[str]:
        """torch through the PyTorch extension, the rest with pip; only on request.

        ``ask=False`` installs without asking (the self-test)."""
        from RobustDeepLib.dependencies import install_requirements, install_torch

        installed = [f"torch {install_torch(ask=ask)}"]
        installed += install_requirements(requester="RobustDeep", confirm=ask)
        return installed
