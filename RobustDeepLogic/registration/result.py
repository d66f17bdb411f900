"""What a rigid registration returns (:class:`RigidResult`): the transform, the metric, the
iterations, the stop condition and the figures QC reads. Made by
:func:`RobustDeepLogic.registration.pairwise.register_rigid`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Tuple

import SimpleITK as sitk

from RobustDeepLogic.registration.rigid import (
    transform_parameters,
)


@dataclass
class RigidResult:
    """The outcome of :func:`register_rigid`.

    Attributes
    ----------
    transform : SimpleITK.VersorRigid3DTransform
        Maps fixed-space points to moving-space points (LPS mm).
    metric : float
        The final metric value at full resolution (Mattes MI is negative: lower is better); after a
        brain refinement, the metric of the refined transform, sampled as the rigid stage's last
        level.
    iterations : int
        Optimizer iterations, all levels of the rigid stage and of the brain refinement together.
    stop_condition : str
        ITK's description of why the rigid stage's optimizer stopped (at most 200 characters).
    initial_rotation_deg : tuple of float
        The rotation (Euler angles about LPS x, y, z, degrees) that initialisation and the rotation
        search started the gradient descent from.
    seconds : float
        Wall time of the registration.
    overlap : float
        Fraction of the fixed head mask's voxels that ``transform`` maps inside the moving image.
    refinement : str
        The brain refinement: ``'similarity'`` (applied), ``'off'``, or why it was not used
        (``'rejected (...)'``).
    scale : float
        The head size against the fixed image found by the similarity refinement (1: not measured).
    rotation_search : str
        What the coarse rotation search did (:func:`~RobustDeepLogic.registration.search.rotation_search`):
        ``'off'``, ``'done'``, ``'done (k of N candidates could not be evaluated)'``, or
        ``'failed (...): the initial alignment was kept'`` when no candidate could be evaluated
        (QC flags the patient then).
    """

    transform: sitk.VersorRigid3DTransform
    metric: float
    iterations: int
    stop_condition: str
    initial_rotation_deg: Tuple[float, float, float]
    seconds: float
    overlap: float
    #: the brain refinement: ``'similarity'`` (applied), ``'off'``, or why it was not used
    refinement: str = "off"
    #: the head size against the fixed image found by the similarity refinement (1: not measured)
    scale: float = 1.0
    #: what the coarse rotation search did: ``'off'``, ``'done'``, ``'done (...)'`` or ``'failed (...)'``
    rotation_search: str = "off"

    def summary(self) -> Dict[str, Any]:
        """The result as a JSON-able dict, rounded, for a registered patient's meta.

        Returns
        -------
        dict
            Every attribute, the transform as
            :func:`~RobustDeepLogic.registration.rigid.transform_parameters`.
        """
        return {"metric": round(float(self.metric), 6), "iterations": int(self.iterations),
                "stop_condition": self.stop_condition,
                "initial_rotation_deg": [round(float(a), 2) for a in self.initial_rotation_deg],
                "seconds": round(float(self.seconds), 3), "overlap": round(float(self.overlap), 4),
                "refinement": self.refinement, "scale": round(float(self.scale), 4),
                "rotation_search": self.rotation_search,
                "transform": transform_parameters(self.transform)}
