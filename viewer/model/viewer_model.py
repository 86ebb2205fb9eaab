"""The reading workspace's state: the one place the truth lives.

Widgets display this model and call its methods with the user's intents
("scroll axial by +1", "window 1500/-600", "cursor here"); the model clamps,
derives and fires events, and every view follows. That makes the model
testable without Qt and the GUI tests simple: change the model, check the
pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from inference.types import Volume
from viewer.model.evented import Event
from viewer.model.geometry import PLANES, Plane, PlaneGeometry, plane_geometries
from viewer.model.measurements import MeasurementList
from viewer.model.overlays import LabelOverlay, Marker

__all__ = [
    "WindowLevel",
    "PRESETS",
    "PRESET_KEYS",
    "LAYOUTS",
    "VIEW_IDS",
    "SLAB_CHOICES_MM",
    "Tool",
    "ViewerModel",
    "plane_of",
]


@dataclass(frozen=True)
class WindowLevel:
    """Display window in HU: ``level`` is the centre, ``width`` the span."""

    width: float
    level: float

    @property
    def low(self) -> float:
        return self.level - self.width / 2

    @property
    def high(self) -> float:
        return self.level + self.width / 2


# clinical-facts.md §9.2: OHIF defaults for lung, soft tissue and bone; the
# common 350/50 for mediastinum (no OHIF default exists for it).
PRESETS: dict[str, WindowLevel] = {
    "lung": WindowLevel(1500, -600),
    "mediastinum": WindowLevel(350, 50),
    "bone": WindowLevel(2500, 480),
    "soft tissue": WindowLevel(400, 40),
}
PRESET_KEYS: dict[str, str] = {"1": "lung", "2": "mediastinum", "3": "bone", "4": "soft tissue"}

LAYOUTS = ("single", "mpr", "2x2")
Layout = Literal["single", "mpr", "2x2"]
# "mip" is the 2x2 layout's fourth view: a coronal thick-slab MIP (>= 20 mm).
VIEW_IDS = ("axial", "coronal", "sagittal", "mip")
SLAB_CHOICES_MM = (0.0, 5.0, 10.0, 20.0)
Tool = Literal["wl", "crosshair", "line", "ellipse", "angle"]

MIN_ZOOM, MAX_ZOOM = 0.25, 40.0
OVERLAY_DEFAULTS: dict[str, tuple[str, float]] = {"nodules": ("contour", 0.6), "lungs": ("both", 0.15)}


def plane_of(view_id: str) -> Plane:
    """The anatomical plane a view shows (the MIP view is coronal)."""
    return "coronal" if view_id == "mip" else view_id  # type: ignore[return-value]


class ViewerModel:
    """Open volume, cursor, slices, window/level, layout, zoom/pan, layers,
    markers and measurements.

    Events (all :class:`~viewer.model.evented.Event`):

    ``volume_changed()``, ``cursor_changed(planes: frozenset[str])`` (the
    planes whose slice index changed), ``window_changed()``,
    ``layout_changed()``, ``view_changed(view_id)`` (zoom/pan),
    ``slab_changed()``, ``overlays_changed()``, ``markers_changed()``,
    ``annotations_changed()``, ``hover_changed()``, ``tool_changed()``.
    """

    def __init__(self) -> None:
        self.volume: Volume | None = None
        self.geometry: dict[Plane, PlaneGeometry] = {}
        self.cursor = np.zeros(3)  # continuous (z, y, x) voxel index
        self.hover: np.ndarray | None = None
        self.window = PRESETS["lung"]
        self.layout: str = "mpr"
        self.previous_layout: str = "mpr"
        self.maximized = False
        self.active_view: str = "axial"
        self.slab_mm: float = 0.0
        self.sync_zoom: bool = True
        self.show_annotations: bool = True
        self.tool: str = "wl"
        self.zoom: dict[str, float] = {v: 1.0 for v in VIEW_IDS}
        self.pan: dict[str, tuple[float, float]] = {v: (0.0, 0.0) for v in VIEW_IDS}
        self.overlays: dict[str, LabelOverlay] = {}
        self.markers: list[Marker] = []
        self.measurements = MeasurementList()
        for name in ("volume_changed", "cursor_changed", "window_changed", "layout_changed", "view_changed",
                     "slab_changed", "overlays_changed", "markers_changed", "annotations_changed",
                     "hover_changed", "tool_changed"):
            setattr(self, name, Event(name))

    # -- volume ----------------------------------------------------------
    def set_volume(self, volume: Volume | None) -> None:
        """Show ``volume``: cursor to its centre, views reset, overlays,
        markers and measurements cleared (they belonged to the old series)."""
        self.volume = volume
        self.overlays = {}
        self.markers = []
        self.hover = None
        if volume is None:
            self.geometry = {}
        else:
            self.geometry = plane_geometries(volume.shape, volume.spacing, volume.direction)
            self.cursor = (np.asarray(volume.shape, float) - 1) / 2
            self.cursor = np.round(self.cursor)
        self.zoom = {v: 1.0 for v in VIEW_IDS}
        self.pan = {v: (0.0, 0.0) for v in VIEW_IDS}
        self.measurements.clear()
        self.volume_changed.emit()
        self.overlays_changed.emit()
        self.markers_changed.emit()

    # -- cursor and slices -----------------------------------------------
    def slice_index(self, plane: Plane) -> int:
        g = self.geometry[plane]
        return int(np.clip(np.round(self.cursor[g.fixed_axis]), 0, g.n_slices - 1))

    def _slices(self) -> dict[str, int]:
        return {p: self.slice_index(p) for p in PLANES} if self.geometry else {}

    def set_cursor_voxel(self, zyx: np.ndarray | tuple[float, float, float]) -> None:
        """Move the linked crosshair (clamped into the volume)."""
        if self.volume is None:
            return
        before = self._slices()
        hi = np.asarray(self.volume.shape, float) - 1
        self.cursor = np.clip(np.asarray(zyx, float), 0, hi)
        after = self._slices()
        self.cursor_changed.emit(frozenset(p for p in PLANES if before.get(p) != after[p]))

    def set_cursor_lps(self, xyz: tuple[float, float, float] | np.ndarray) -> None:
        if self.volume is not None:
            self.set_cursor_voxel(self.volume.lps_to_voxel(np.asarray(xyz, float)))

    def cursor_lps(self) -> np.ndarray:
        assert self.volume is not None
        return self.volume.voxel_to_lps(self.cursor)

    def set_slice(self, plane: Plane, index: int) -> None:
        """Show slice ``index`` in ``plane`` (moves the crosshair with it)."""
        if not self.geometry:
            return
        c = self.cursor.copy()
        c[self.geometry[plane].fixed_axis] = index
        self.set_cursor_voxel(c)

    def step_slice(self, plane: Plane, delta: int) -> None:
        if self.geometry:
            self.set_slice(plane, self.slice_index(plane) + int(delta))

    def step_up(self, plane: Plane, n: int) -> None:
        """Wheel-up / Up / PgUp: ``n`` slices towards the head (axial), the
        front (coronal) or the patient's right (sagittal), whatever the
        storage order of the slices."""
        if self.geometry:
            self.step_slice(plane, n * self.geometry[plane].up_sign)

    def set_hover(self, zyx: np.ndarray | None) -> None:
        self.hover = None if zyx is None else np.asarray(zyx, float)
        self.hover_changed.emit()

    def hover_readout(self) -> tuple[float, np.ndarray] | None:
        """(HU, LPS) of the voxel under the mouse, or None outside the image."""
        if self.volume is None or self.hover is None:
            return None
        idx = np.round(self.hover).astype(int)
        if np.any(idx < 0) or np.any(idx >= np.asarray(self.volume.shape)):
            return None
        return float(self.volume.array[tuple(idx)]), self.volume.voxel_to_lps(self.hover)

    # -- window / level ----------------------------------------------------
    def set_window(self, width: float, level: float) -> None:
        self.window = WindowLevel(max(1.0, float(width)), float(level))
        self.window_changed.emit()

    def apply_preset(self, name: str) -> None:
        """One of :data:`PRESETS` (KeyError names the valid ones)."""
        if name not in PRESETS:
            raise KeyError(f"unknown window preset {name!r}; choose from {', '.join(PRESETS)}")
        wl = PRESETS[name]
        self.set_window(wl.width, wl.level)

    def preset_name(self) -> str:
        for k, v in PRESETS.items():
            if v == self.window:
                return k
        return ""

    # -- layout / zoom / pan ------------------------------------------------
    def set_layout(self, layout: str, *, maximized: bool = False) -> None:
        """Switch layout; ``maximized`` marks a temporary one-view layout
        from a double-click (not remembered as the reader's choice)."""
        if layout not in LAYOUTS:
            raise ValueError(f"unknown layout {layout!r}; choose from {', '.join(LAYOUTS)}")
        self.maximized = maximized
        if layout != self.layout:
            self.previous_layout = self.layout
            self.layout = layout
            self.layout_changed.emit()

    def set_active_view(self, view_id: str) -> None:
        if view_id in VIEW_IDS and view_id != self.active_view:
            self.active_view = view_id
            self.layout_changed.emit()

    def toggle_maximize(self, view_id: str) -> None:
        """Double-click: a view fills the grid; again: the previous layout."""
        if self.layout == "single" and self.active_view == view_id and self.previous_layout != "single":
            self.set_layout(self.previous_layout)
        else:
            self.active_view = view_id
            if self.layout == "single":
                self.layout_changed.emit()
            else:
                self.set_layout("single", maximized=True)

    def visible_views(self) -> tuple[str, ...]:
        if self.layout == "single":
            return (self.active_view,)
        if self.layout == "mpr":
            return ("axial", "coronal", "sagittal")
        return VIEW_IDS

    def set_zoom(self, view_id: str, zoom: float) -> None:
        """Zoom factor relative to "fit"; with sync on, every view follows."""
        z = float(np.clip(zoom, MIN_ZOOM, MAX_ZOOM))
        targets = VIEW_IDS if self.sync_zoom else (view_id,)
        for v in targets:
            self.zoom[v] = z
        for v in targets:
            self.view_changed.emit(v)

    def set_pan(self, view_id: str, dx_mm: float, dy_mm: float) -> None:
        self.pan[view_id] = (float(dx_mm), float(dy_mm))
        self.view_changed.emit(view_id)

    def set_sync_zoom(self, on: bool) -> None:
        self.sync_zoom = bool(on)

    def reset_views(self) -> None:
        """R: zoom to fit, no pan, crosshair to the centre is NOT done (the
        reader keeps their place)."""
        for v in VIEW_IDS:
            self.zoom[v] = 1.0
            self.pan[v] = (0.0, 0.0)
            self.view_changed.emit(v)

    def centre_on_cursor(self) -> None:
        """Pan every view so the crosshair is in its centre."""
        if not self.geometry:
            return
        for v in VIEW_IDS:
            g = self.geometry[plane_of(v)]
            x, y = g.voxel_to_scene(self.cursor)
            self.pan[v] = (x - g.width_mm / 2, y - g.height_mm / 2)
            self.view_changed.emit(v)

    # -- slab, annotations, tool ----------------------------------------------
    def set_slab_mm(self, mm: float) -> None:
        self.slab_mm = max(0.0, float(mm))
        self.slab_changed.emit()

    def slab_slices(self, plane: Plane) -> int:
        """Number of slices in the thick slab for ``plane`` (1 = thin)."""
        if self.slab_mm <= 0 or not self.geometry:
            return 1
        return max(1, int(round(self.slab_mm / self.geometry[plane].slice_mm)))

    def set_show_annotations(self, on: bool) -> None:
        self.show_annotations = bool(on)
        self.annotations_changed.emit()

    def set_tool(self, tool: str) -> None:
        if tool not in ("wl", "crosshair", "line", "ellipse", "angle"):
            raise ValueError(f"unknown tool {tool!r}")
        self.tool = tool
        self.tool_changed.emit()

    # -- overlays / markers ---------------------------------------------------
    def set_label_overlay(self, name: str, labels: np.ndarray | None, colors: dict[int, tuple[int, int, int]],
                          visible_ids: set[int] | None = None) -> None:
        """Add, replace or (``labels=None``) remove a label map.

        Raises ``ValueError`` when the array does not match the volume, since
        a shifted overlay would be read as a real finding in the wrong place.
        """
        if labels is None:
            self.overlays.pop(name, None)
        else:
            if self.volume is None or labels.shape != self.volume.shape:
                shape = None if self.volume is None else self.volume.shape
                raise ValueError(f"overlay {name!r} has shape {labels.shape}, the open volume {shape}")
            old = self.overlays.get(name)
            # Defaults a reader can see through: nodules as an outline (their
            # margin and texture are the finding), lungs as a faint tint.
            mode, opacity = OVERLAY_DEFAULTS.get(name, ("both", 0.45))
            self.overlays[name] = LabelOverlay(
                name=name, labels=labels, colors={int(k): tuple(int(c) for c in v) for k, v in colors.items()},
                visible_ids=None if visible_ids is None else set(visible_ids),
                opacity=old.opacity if old else opacity, mode=old.mode if old else mode,  # type: ignore[arg-type]
            )
        self.overlays_changed.emit()

    def update_overlay(self, name: str, **changes: object) -> None:
        """Change opacity / mode / visible / visible_ids of one overlay."""
        ov = self.overlays[name]
        for k, v in changes.items():
            if k not in ("opacity", "mode", "visible", "visible_ids"):
                raise AttributeError(f"overlay has no setting {k!r}")
            setattr(ov, k, v)
        self.overlays_changed.emit()

    def set_markers(self, markers: list[Marker]) -> None:
        self.markers = list(markers)
        self.markers_changed.emit()
