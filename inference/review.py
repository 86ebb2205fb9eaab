"""The scores of reviewed findings: what the viewer's Qt-free model re-computes after a review.

Why a module of its own beside :mod:`inference.api`: the viewer's model
(``viewer.model``) must stay importable without torch, and ``inference.api``
reaches the analysis (and so torch) from its functions. The guideline scores
are plain arithmetic over the findings; this is their public surface for the
viewer.
"""

from __future__ import annotations

from inference.clinical.scoring import rescore_reviewed

__all__ = ["rescore_reviewed"]
