"""Blend preview panel: parents A and B, a mask, pyramid levels and a modality; the engine's
``laplacian_blend`` computed in a worker thread (the page stays live), shown beside the naive blend
and the two parents, with a seam view (|Laplacian - naive|, or the gradient magnitude of the blend), in
linked axial views. The preview can be saved as a volume."""

from __future__ import annotations

from typing import Any, Dict

import SimpleITK as sitk
from trame.widgets import html
from trame.widgets import vuetify3 as v3

from RobustDeepLib.stages import blend_images, make_mask, mask_choices
from RobustDeepLogic.core.files import safe_name
from RobustDeepLogic.io.volumes import write_volume
from RobustDeepLogic.masks.presets import mask_tag
from RobustDeepStudio.panels.base import Panel
from RobustDeepStudio.commands import mask_argument
from RobustDeepStudio.views import BLEND, DATA_WINDOW, default_window, ordered_modalities

SEAMS = ["difference", "gradient"]
#: View of each image of the preview.
VIEWS = {"a": "BlendA", "b": "BlendB", "laplacian": "BlendLaplacian", "naive": "BlendNaive",
         "seam": "BlendSeam"}


def seam_image(laplacian: sitk.Image, naive: sitk.Image, kind: str) -> sitk.Image:
    """The seam view: ``|laplacian - naive|`` (``difference``) or the gradient magnitude of the
    Laplacian blend (``gradient``), on the blend's grid.

    Parameters
    ----------
    laplacian, naive : SimpleITK.Image
        The two blends.
    kind : {'difference', 'gradient'}
        Which view.

    Returns
    -------
    SimpleITK.Image
        float32.
    """
    if kind == "difference":
        return sitk.Abs(sitk.Cast(laplacian, sitk.sitkFloat32) - sitk.Cast(naive, sitk.sitkFloat32))
    if kind == "gradient":
        return sitk.GradientMagnitude(sitk.Cast(laplacian, sitk.sitkFloat32))
    raise ValueError(f"seam view {kind!r}: choose one of {', '.join(SEAMS)}")


def _node_name(key: str, a_id: str, b_id: str, modality: str, seam: str) -> str:
    if key == "a":
        return f"{a_id} {modality}"
    if key == "b":
        return f"{b_id} {modality}"
    if key == "seam":
        return f"{seam} (Laplacian vs naive)" if seam == "difference" else "gradient of the Laplacian blend"
    return f"{a_id} x {b_id} {modality}"


class BlendPanel(Panel):
    """Preview one Laplacian-pyramid blend of two registered patients.

    Parameters
    ----------
    studio : RobustDeepStudio.app.Studio
        The studio it belongs to.
    """

    name = "blend"
    title = "Blend preview"
    icon = "mdi-vector-combine"
    layout = BLEND

    def __init__(self, studio: Any) -> None:
        super().__init__(studio)
        self.last: Dict[str, Any] = {}
        self.state.update({
            "blend_a": None, "blend_b": None, "blend_patients": [], "blend_mask": "simple",
            "blend_masks": [], "blend_levels": 4, "blend_modality": "FD", "blend_modalities": [],
            "blend_seam": "difference", "blend_seams": SEAMS, "blend_info": "", "blend_saved": "",
        })

    def build(self) -> None:
        """Build the Blend preview panel's controls in the drawer."""
        with v3.VRow(dense=True):
            with v3.VCol():
                v3.VSelect(v_model=("blend_a",), items=("blend_patients",), label="Parent A (mask 1)",
                           density="compact", hide_details=True, id="rd-blend-a")
            with v3.VCol():
                v3.VSelect(v_model=("blend_b",), items=("blend_patients",), label="Parent B",
                           density="compact", hide_details=True, id="rd-blend-b")
        v3.VCombobox(v_model=("blend_mask",), items=("blend_masks",), label="Mask (preset, spec or file)",
                     density="compact", hide_details=True, classes="mt-2", id="rd-blend-mask")
        v3.VSlider(v_model=("blend_levels",), min=1, max=6, step=1, label="Levels", density="compact",
                   hide_details=True, thumb_label="always", classes="mt-4", id="rd-blend-levels")
        with v3.VBtnToggle(v_model=("blend_modality",), mandatory=True, density="compact", color="primary",
                           divided=True, id="rd-blend-modality"):
            v3.VBtn("{{ m }}", v_for="m in blend_modalities", key="m", value=("m",), size="small")
        with v3.VBtnToggle(v_model=("blend_seam",), mandatory=True, density="compact", divided=True,
                           classes="mt-2 ml-2", id="rd-blend-seam"):
            v3.VBtn("{{ s }}", v_for="s in blend_seams", key="s", value=("s",), size="small")
        with html.Div(classes="d-flex ga-2 my-2"):
            v3.VBtn("Blend", click=self.preview, color="primary", prepend_icon="mdi-play",
                    id="rd-blend-run", disabled=("!blend_a || !blend_b",))
            v3.VBtn("Save preview", click=self.save, variant="tonal", id="rd-blend-save",
                    disabled=("!blend_info",))
        html.Div("{{ blend_info }}", classes="text-caption", id="rd-blend-info")
        html.Div("{{ blend_saved }}", classes="text-caption text-success", id="rd-blend-saved")
        html.Div("Views: A | B | seam, then Laplacian | naive (axial, scrolled together).",
                 classes="text-caption text-grey mt-2")

    # -- behaviour --------------------------------------------------------------------------------
    def on_project(self, project: Any) -> None:
        """Offer ``project``'s registered patients, their modalities and masks; forget the last preview.

        Parameters
        ----------
        project : RobustDeepStudio.workspace.Project or None
            The open project.
        """
        self.last = {}
        reg = project.registered_dir if project is not None else None
        ids, mods = [], []
        if reg is not None:
            cohort = project.cohort(registered=True)
            ids = [p.id for p in cohort if not p.is_synthetic]
            mods = ordered_modalities(m for p in cohort for m in p.modalities)
        saved = project.saved_masks() if project is not None else []
        self.state.update({
            "blend_patients": ids, "blend_modalities": mods, "blend_masks": mask_choices() + saved,
            "blend_a": ids[0] if ids else None, "blend_b": ids[1] if len(ids) > 1 else None,
            "blend_modality": "FD" if "FD" in mods else (mods[0] if mods else None),
            "blend_info": "", "blend_saved": "",
        })

    def on_show(self) -> None:
        """Show the blend views; offer the choices again when there were no patients to blend."""
        super().on_show()
        if not self.state.blend_patients:
            self.on_project(self.project)

    async def preview(self) -> None:
        """Blend A and B under the mask (engine), show the blends, the parents and the seam."""
        s = self.state
        a_id, b_id, modality, levels, seam = s.blend_a, s.blend_b, s.blend_modality, int(s.blend_levels), s.blend_seam
        mask_value = s.blend_mask
        cohort = self.project.cohort(registered=True)

        def work() -> Dict[str, Any]:
            a = self.read(cohort.path(a_id, modality), a_id)
            b = self.read(cohort.path(b_id, modality), b_id)
            mask = make_mask(mask_argument(self.studio.workspace, mask_value), a)
            out = blend_images(a, b, mask, levels=levels, naive=True)
            return {"a": a, "b": b, "mask": mask, **out,
                    "seam": seam_image(out["laplacian"], out["naive"], seam)}

        images = await self.background(f"blending {a_id} and {b_id} ({modality}, {levels} levels)", work)
        if images is None:
            return
        # Only what Save needs is kept: the volumes themselves now live in the scene's nodes.
        self.last = dict(laplacian=images["laplacian"], a_id=a_id, b_id=b_id, modality=modality, levels=levels,
                         mask_value=mask_value)
        self.viewer.show_layout(BLEND)
        for key, tag in VIEWS.items():
            node = self.viewer.volume(f"blend_{key}", images[key], _node_name(key, a_id, b_id, modality, seam),
                                      window=DATA_WINDOW if key == "seam" else default_window(modality))
            self.viewer.show([tag], node, None, fit=True)
        fraction = float(sitk.GetArrayViewFromImage(images["mask"]).mean())
        with self.state:
            s.blend_info = (f"{a_id} x {b_id}, {modality}, mask {mask_value} ({100 * fraction:.1f} % of the "
                            f"grid takes A), {levels} levels; seam: {seam}")
            s.blend_saved = ""

    async def save(self) -> None:
        """Write the Laplacian blend shown to ``blends/<A>-<B>-<mask>-<modality>-L<levels>.nii.gz``."""
        if not self.last:
            return
        last = self.last
        name = safe_name(f"{last['a_id']}-{last['b_id']}-{mask_tag(str(last['mask_value']))}-"
                         f"{last['modality']}-L{last['levels']}")
        path = self.project.root / "blends" / f"{name}.nii.gz"
        done = await self.background(f"saving {path.name}", lambda: write_volume(last["laplacian"], path))
        if done is not None:
            self.state.blend_saved = f"saved {self.studio.workspace.relative(path)}"


__all__ = ["BlendPanel", "SEAMS", "VIEWS", "seam_image"]
