"""Label-map overlays (lungs, nodules) and point markers, Qt-free.

A label map is drawn as coloured fill and/or contour through a small RGBA
lookup table indexed by label id, so changing opacity or hiding one label is a
256-entry table update, not a re-render of the whole volume.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

__all__ = ["OverlayMode", "LabelOverlay", "Marker", "rgba_slice", "contour_mask"]

OverlayMode = Literal["fill", "contour", "both"]


@dataclass
class LabelOverlay:
    """One label map aligned with the open volume, ``(z, y, x)`` integers."""

    name: str
    labels: np.ndarray
    colors: dict[int, tuple[int, int, int]]
    visible_ids: set[int] | None = None  # None: every label with a colour
    opacity: float = 0.45
    mode: OverlayMode = "both"
    visible: bool = True

    def ids(self) -> list[int]:
        """Label ids that have a colour (0, the background, never does)."""
        return sorted(i for i in self.colors if i != 0)

    def is_shown(self, label_id: int) -> bool:
        return self.visible and label_id in self.colors and (self.visible_ids is None or label_id in self.visible_ids)

    def lut(self, alpha: float) -> np.ndarray:
        """``(n, 4)`` uint8 RGBA table; hidden labels and 0 are transparent."""
        n = max(256, int(max(self.colors, default=0)) + 1)
        table = np.zeros((n, 4), np.uint8)
        a = int(round(255 * min(max(alpha, 0.0), 1.0)))
        for i, rgb in self.colors.items():
            if i != 0 and self.is_shown(i):
                table[i, :3] = rgb
                table[i, 3] = a
        return table


def contour_mask(lab: np.ndarray) -> np.ndarray:
    """True on pixels whose 4-neighbourhood contains a different label."""
    m = np.zeros(lab.shape, bool)
    m[:-1, :] |= lab[:-1, :] != lab[1:, :]
    m[1:, :] |= lab[1:, :] != lab[:-1, :]
    m[:, :-1] |= lab[:, :-1] != lab[:, 1:]
    m[:, 1:] |= lab[:, 1:] != lab[:, :-1]
    return m & (lab != 0)


def rgba_slice(overlay: LabelOverlay, lab2d: np.ndarray) -> np.ndarray:
    """The RGBA image of one 2D label slice in the overlay's mode."""
    lab = np.asarray(lab2d)
    if lab.dtype.kind not in "iu":
        lab = lab.astype(np.int32)
    fill_alpha = overlay.opacity if overlay.mode in ("fill", "both") else 0.0
    table = overlay.lut(fill_alpha)
    idx = np.clip(lab, 0, len(table) - 1)
    rgba = table[idx]
    if overlay.mode in ("contour", "both"):
        edge = contour_mask(lab)
        if edge.any():
            solid = overlay.lut(min(1.0, 0.35 + overlay.opacity))
            rgba[edge] = solid[idx[edge]]
    return rgba


@dataclass(frozen=True)
class Marker:
    """A finding's point marker in LPS mm with a short label."""

    lps: tuple[float, float, float]
    label: str = ""
    extra: dict = field(default_factory=dict, compare=False)
