"""The Train and infer panel of the RobustDeep module: training and prediction, both run by the engine
in the background (:mod:`RobustDeepLib.jobs_panel`); the first predicted volume is loaded.

``RobustDeepWidget`` (``RobustDeep.py``) inherits the mixin below and connects its slots in ``setup``.
The panel has no logic of its own: the job is the engine's ``train`` / ``predict`` command, its outputs
are loaded with ``RobustDeepLogic().loadOutputs(...)`` (:mod:`RobustDeepLib.cohort_panel`).
"""

from typing import Any, Dict

import slicer
from slicer.i18n import tr as _


from RobustDeepLib import command_lines as rdcmd
from RobustDeepLib.choices import is_set


class TrainWidgetMixin:
    """The Train and infer panel's slots. A mixin of ``RobustDeepWidget``: it uses the widget's ``ui``,
    ``logic`` and ``_parameterNode``."""

    def _updateTrainButtons(self, p, busy: bool) -> None:
        """The Train and infer panel's buttons (``p``: the parameter node; ``busy``: a job runs)."""
        self.ui.trainButton.enabled = not busy and is_set(p.trainData) and is_set(p.runFolder)
        self.ui.predictButton.enabled = not busy and is_set(p.runFolder) and is_set(p.predictInput) and is_set(p.predictOutput)

    def onTrain(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to start training."), waitCursor=True):
            p = self._parameterNode
            synthetic = [p.synthesisFolder] if is_set(p.synthesisFolder) else []
            command = rdcmd.train_command(p.trainData, p.runFolder, task=p.task, scenario=p.scenario,
                                          epochs=p.epochs, steps=p.steps, device=p.device,
                                          synthetic_cohorts=synthetic)
            self._startJob(_("Training"), command)

    def onPredict(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to start the prediction."), waitCursor=True):
            p = self._parameterNode
            inputs = [str(p.predictInput)] + p.predictMoreInputs.split()
            command = rdcmd.predict_command(p.runFolder, inputs, p.predictOutput, device=p.device)

            def done(result: Dict[str, Any]) -> None:
                nodes = self.logic.loadOutputs(result)
                if nodes:
                    p.predictionVolume = nodes[0]
                    slicer.util.setSliceViewerLayers(background=nodes[0], fit=True)

            self._startJob(_("Prediction"), command, done)
