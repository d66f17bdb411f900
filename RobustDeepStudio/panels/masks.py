"""Masks panel: a blending mask from the engine (preset, generator with its parameters, brain regions)
or painted and erased with Slicer's segment editor on the template, shown over the template in three
planes, and saved as a mask file that ``robustdeep synthesize --mask FILE`` accepts (the engine's
mask validation applies before anything is written, and the file is written atomically)."""

from __future__ import annotations

from typing import Any

import numpy as np
import SimpleITK as sitk
from trame.widgets import html
from trame.widgets import vuetify3 as v3
from trame_slicer.segmentation import BrushDiameterMode, SegmentationEffectErase, SegmentationEffectPaint

from RobustDeepLib.mrml_segmentations import mask_to_segmentation, segmentation_to_mask
from RobustDeepLib.stages import make_mask, mask_choices, mask_help, mask_spec
from RobustDeepLogic.core.files import safe_name
from RobustDeepLogic.io.volumes import Grid, write_volume
from RobustDeepLogic.masks.files import validate_mask
from RobustDeepLogic.masks.presets import mask_from_spec
from RobustDeepStudio.panels.base import Panel
from RobustDeepStudio.views import DATA_WINDOW, GROUPS, PLANES

TOOLS = {"paint": SegmentationEffectPaint, "erase": SegmentationEffectErase}


class MasksPanel(Panel):
    """Make, paint, erase and save a blending mask on the template grid.

    Parameters
    ----------
    studio : RobustDeepStudio.app.Studio
        The studio it belongs to.
    """

    name = "masks"
    title = "Masks"
    icon = "mdi-brush"
    layout = PLANES

    def __init__(self, studio: Any) -> None:
        super().__init__(studio)
        self.segmentation = None
        self.template_node = None
        self.state.update({
            "mask_choice": "simple", "mask_choices": [], "mask_params": "", "mask_help": "",
            "mask_tool": "none", "mask_brush": 12.0, "mask_name": "painted", "mask_saved": "",
            "mask_command": "", "mask_info": "",
        })
        self.state.change("mask_choice")(self._on_choice)
        self.state.change("mask_tool")(self._on_tool)
        self.state.change("mask_brush")(self._on_brush)

    def build(self) -> None:
        """Build the Masks panel's controls in the drawer."""
        html.Div("From the engine", classes="text-subtitle-2")
        v3.VSelect(v_model=("mask_choice",), items=("mask_choices",), label="Preset or generator",
                   density="compact", hide_details=True, id="rd-mask-choice")
        v3.VTextField(v_model=("mask_params",), label="Parameters (key=value; ...)", density="compact",
                      hide_details=True, classes="mt-1", id="rd-mask-params")
        html.Div("{{ mask_help }}", classes="text-caption text-grey")
        with html.Div(classes="d-flex ga-2 my-2"):
            v3.VBtn("Make mask", click=self.make, color="primary", size="small", id="rd-mask-make",
                    disabled=("!project",))
            v3.VBtn("Empty mask", click=self.empty, size="small", variant="tonal", id="rd-mask-empty",
                    disabled=("!project",))
        html.Div("Paint on the template (mouse drag in a view)", classes="text-subtitle-2 mt-2")
        with v3.VBtnToggle(v_model=("mask_tool",), mandatory=True, density="compact", color="primary",
                           id="rd-mask-tool", divided=True):
            v3.VBtn("None", value="none", size="small", id="rd-mask-tool-none")
            v3.VBtn("Paint", value="paint", size="small", prepend_icon="mdi-brush", id="rd-mask-tool-paint")
            v3.VBtn("Erase", value="erase", size="small", prepend_icon="mdi-eraser", id="rd-mask-tool-erase")
        v3.VSlider(v_model=("mask_brush",), min=2, max=60, step=1, label="Brush (mm)", density="compact",
                   hide_details=True, thumb_label=True, classes="mt-2", id="rd-mask-brush")
        html.Div("{{ mask_info }}", classes="text-caption", id="rd-mask-info")
        html.Div("Save", classes="text-subtitle-2 mt-2")
        with html.Div(classes="d-flex ga-2 align-center"):
            v3.VTextField(v_model=("mask_name",), label="File name (in masks/)", density="compact",
                          hide_details=True, id="rd-mask-name")
            v3.VBtn("Save mask", click=self.save, color="primary", size="small", id="rd-mask-save",
                    disabled=("!project",))
        html.Div("{{ mask_saved }}", classes="text-caption text-success", id="rd-mask-saved")
        html.Code("{{ mask_command }}", v_if="mask_command", classes="text-caption")

    # -- behaviour --------------------------------------------------------------------------------
    def on_project(self, project: Any) -> None:
        """Offer the engine's masks; the template is read again when the panel is next shown.

        Parameters
        ----------
        project : RobustDeepStudio.workspace.Project or None
            The open project.
        """
        self.state.mask_choices = mask_choices()
        self._on_choice(self.state.mask_choice)
        self.template_node = None

    def on_show(self) -> None:
        """Show the three planes with the template and the mask, and the chosen tool again."""
        super().on_show()
        self._visible(True)
        if self.project is not None:
            self.studio.schedule(self._show_template)
            self._on_tool(self.state.mask_tool)

    def on_hide(self) -> None:
        """Leave no brush active and no mask drawn over the other panels' views."""
        self.studio.slicer.segmentation_editor.deactivate_effect()
        self._visible(False)

    def _visible(self, visible: bool) -> None:
        if self.segmentation is not None:
            self.segmentation.GetDisplayNode().SetVisibility(bool(visible))

    def _on_choice(self, mask_choice: str, **_: Any) -> None:
        self.state.mask_help = mask_help(mask_choice) if mask_choice else ""

    async def _show_template(self) -> Any:
        if self.template_node is None:
            path = self.project.template_path()
            image = await self.background("reading the template", lambda: self.read(path))
            if image is None:
                return None
            self.template_node = self.viewer.volume("mask_template", image, "template", window=DATA_WINDOW)
            self.template = image
        self.viewer.show(self.viewer.tags(PLANES), self.template_node, None, fit=False)
        return self.template_node

    async def make(self) -> None:
        """Make the chosen engine mask on the template and load it for editing."""
        if await self._show_template() is None:
            return
        try:
            spec = mask_spec(self.state.mask_choice, self.state.mask_params)
        except ValueError as exc:
            self.show_error(str(exc))
            return
        mask = await self.background(f"making mask {spec}", lambda: make_mask(spec, self.template))
        if mask is not None:
            self._edit(mask, spec)

    async def empty(self) -> None:
        """Start from an empty mask (paint it)."""
        if await self._show_template() is None:
            return
        self._edit(None, "painted")

    def _edit(self, mask: Any, name: str) -> None:
        editor = self.studio.slicer.segmentation_editor
        if self.segmentation is not None:
            self.viewer.scene.RemoveNode(self.segmentation)
        self.segmentation = editor.create_empty_segmentation_node()
        self.segmentation.SetName("blending mask")
        self.segmentation.SetReferenceImageGeometryParameterFromVolumeNode(self.template_node)
        if mask is not None:
            mask_to_segmentation(mask, self.segmentation, segment_name=name)
        # Drawn in the three planes only (not in the blend and review views).
        self.studio.slicer.display_manager.set_node_visible_in_group(self.segmentation, GROUPS[PLANES])
        editor.set_active_segmentation(self.segmentation, self.template_node)
        if not editor.get_segment_ids():
            editor.add_empty_segment(segment_name=name, segment_color=[1.0, 0.6, 0.1])
        editor.set_surface_representation_enabled(False)
        with self.state:
            self.state.mask_name = safe_name(name.split(":")[0]) or "mask"
            self.state.mask_saved = ""
            self.state.mask_command = ""
            self._on_tool(self.state.mask_tool)
            self._count()

    def _count(self, array: Any = None) -> None:
        """Say how many voxels the mask holds (``array``: the mask, when the caller has it)."""
        if self.segmentation is None:
            return
        if array is None:
            array = sitk.GetArrayViewFromImage(segmentation_to_mask(self.segmentation, self.template_node))
        self.state.mask_info = f"{int(array.sum())} voxels inside ({100.0 * array.mean():.1f} % of the grid)"

    def _on_tool(self, mask_tool: str, **_: Any) -> None:
        editor = self.studio.slicer.segmentation_editor
        if self.segmentation is None or mask_tool not in TOOLS:
            editor.deactivate_effect()
            return
        effect = editor.set_active_effect_type(TOOLS[mask_tool])
        self._on_brush(self.state.mask_brush, effect=effect)

    def _on_brush(self, mask_brush: float, effect: Any = None, **_: Any) -> None:
        effect = effect or self.studio.slicer.segmentation_editor.active_effect
        if effect is not None and hasattr(effect, "set_brush_diameter"):
            effect.set_brush_diameter(float(mask_brush), BrushDiameterMode.Absolute)

    async def save(self) -> None:
        """Validate the mask with the engine and write ``masks/<name>.nii.gz`` atomically."""
        if self.segmentation is None:
            self.show_error("make or paint a mask first")
            return
        image = segmentation_to_mask(self.segmentation, self.template_node)
        name = safe_name(self.state.mask_name or "mask")
        path = self.project.masks_dir / f"{name}.nii.gz"
        grid = Grid.of(self.template)

        def work() -> Any:
            array = validate_mask(sitk.GetArrayFromImage(image).astype(np.float32), grid, source=name)
            out = sitk.GetImageFromArray(array.astype(np.uint8))
            out.CopyInformation(self.template)
            write_volume(out, path)
            mask_from_spec(str(path), grid)  # what synthesize --mask FILE will read
            return array

        array = await self.background(f"saving {path.name}", work)
        if array is None:
            return
        rel = self.studio.workspace.relative(path)
        with self.state:
            self.state.mask_saved = f"saved {rel} ({int(array.sum())} voxels)"
            reg = self.project.registered_dir
            self.state.mask_command = (f"robustdeep synthesize {self.studio.workspace.relative(reg)} OUT "
                                       f"--mask {rel} --count 10" if reg else "")
            self._count(array)
        self.studio.panel("jobs").on_project(self.project)


__all__ = ["MasksPanel", "TOOLS"]
