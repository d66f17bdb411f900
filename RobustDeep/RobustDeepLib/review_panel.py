"""The Review panel of the RobustDeep module: a prediction against its reference, the bias map (percent)
over the reference, the joint histogram with its fit, the metrics table.

``RobustDeepWidget`` and ``RobustDeepLogic`` (``RobustDeep.py``) inherit the two mixins below, so the
slots are connected in ``RobustDeepWidget.setup`` and scripts, the self-test and the tests call the
logic as ``RobustDeepLogic().review(...)``.
"""

from typing import Any, Dict

import slicer
from slicer.i18n import tr as _

from RobustDeepLib.choices import is_set


class ReviewWidgetMixin:
    """The Review panel's slots. A mixin of ``RobustDeepWidget``: it uses the widget's ``ui``,
    ``logic`` and ``_parameterNode``."""

    def _updateReviewButtons(self, p, busy: bool) -> None:
        """The Review panel's buttons (``p``: the parameter node; ``busy``: a job runs)."""
        self.ui.reviewButton.enabled = bool(p.predictionVolume and p.referenceVolume)
        self.ui.loadReviewFilesButton.enabled = is_set(p.predictionFile) and is_set(p.referenceFile)

    def onLoadReviewFiles(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to load the volumes."), waitCursor=True):
            p = self._parameterNode
            p.predictionVolume = self.logic.loadVolumeFile(p.predictionFile, "prediction")
            p.referenceVolume = self.logic.loadVolumeFile(p.referenceFile, "reference")

    def onReview(self) -> None:
        """Bias map over the reference, joint histogram with its fit, metrics table."""
        with slicer.util.tryWithErrorDisplay(_("Failed to review the prediction."), waitCursor=True):
            p = self._parameterNode
            review = self.logic.review(p.predictionVolume, p.referenceVolume, p.headMask,
                                       modality=p.reviewModality, windowPercent=p.biasWindowPercent)
            self.ui.metricsTableView.setMRMLTableNode(review["table"])
            self.logic.showReview(review)


class ReviewLogicMixin:
    """The Review panel's computations, callable without the GUI. A mixin of ``RobustDeepLogic``."""

    def review(self, prediction: Any, reference: Any, headMask: Any = None, *, modality: str = "FD",
               windowPercent: float = 10.0) -> Dict[str, Any]:
        """Bias map (percent), joint histogram with its fit, and metrics of a prediction.

        The engine evaluates the pair as ``robustdeep evaluate`` does (``evaluate.evaluate_case``
        through ``RobustDeepLib.stages.review_figures``): metrics in the scaled units of ``modality``
        inside the head (``headMask``, else the engine's head mask), the relative error map.
        Returns ``{"bias", "table", "chart", "figures", "reference", "prediction"}``.
        """
        from RobustDeepLib import mrml_tables, mrml_views, mrml_volumes, stages
        from RobustDeepLib.bias import bias_for_display

        if prediction is None or reference is None:
            raise ValueError(_("Choose the prediction and its reference."))
        predImage = mrml_volumes.volume_node_to_image(prediction, dtype="float32")
        refImage = mrml_volumes.volume_node_to_image(reference, dtype="float32")
        maskImage = mrml_volumes.volume_node_to_image(headMask) if headMask is not None else None
        figures = stages.review_figures(predImage, refImage, maskImage, modality=modality)
        scene = slicer.mrmlScene
        shown = bias_for_display(figures["bias_percent"], figures["head"])
        bias = mrml_volumes.add_volume_node(scene, shown, f"{prediction.GetName()} bias %")
        mrml_views.show_bias_map(bias, mrml_views.diverging_color_node(scene), window=float(windowPercent))
        rows = [[name, float(value)] for name, value in figures["metrics"].items()]
        rows += [[f"fit {name} (physical units)", value] for name, value in figures["fit"].items()]
        table = mrml_tables.table_node(scene, f"{prediction.GetName()} metrics", ["metric", "value"], rows)
        table.SetAttribute("RobustDeep.units", figures["units"])
        x, y = figures["pairs"]
        fit = figures["fit"]
        chart = mrml_tables.scatter_fit_chart(scene, x, y, slope=fit["slope"], intercept=fit["intercept"],
                                              name=f"{prediction.GetName()} joint histogram",
                                              x_title=f"reference ({reference.GetName()})",
                                              y_title=f"prediction ({prediction.GetName()})")
        return {"bias": bias, "table": table, "chart": chart, "figures": figures,
                "reference": reference, "prediction": prediction}

    @staticmethod
    def showReview(review: Dict[str, Any]) -> None:
        """Reference in the background, bias map in the foreground, the plot in the layout."""
        slicer.util.setSliceViewerLayers(background=review["reference"], foreground=review["bias"],
                                         foregroundOpacity=0.6, fit=True)
        slicer.modules.plots.logic().ShowChartInLayout(review["chart"])
