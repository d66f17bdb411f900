"""The studio's panels, in the order of their tabs: Cohort, Registration, Masks, Blend preview, Jobs,
Review (one module each; :class:`~RobustDeepStudio.panels.base.Panel` is what they share)."""

from __future__ import annotations

from RobustDeepStudio.panels.blend import BlendPanel
from RobustDeepStudio.panels.cohort import CohortPanel
from RobustDeepStudio.panels.jobs import JobsPanel
from RobustDeepStudio.panels.masks import MasksPanel
from RobustDeepStudio.panels.registration import RegistrationPanel
from RobustDeepStudio.panels.review import ReviewPanel

#: The panel classes, in tab order (the Jobs panel first among equals: others start jobs through it).
PANELS = [CohortPanel, RegistrationPanel, MasksPanel, BlendPanel, JobsPanel, ReviewPanel]

__all__ = ["PANELS"]
