"""Measurements (line, ellipse ROI, angle) kept with the study.

Points are stored in **LPS millimetres**, not pixels, so a measurement
survives a reload, a different layout or a zoom, and its length is a plain
Euclidean distance that is right for anisotropic voxels in any plane.
They are saved as JSON per series under
``inference.paths.data_dir() / "studies" / <SeriesInstanceUID> / "measurements.json"``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from inference.types import Issue, Volume
from viewer.model.evented import Event
from viewer.model.geometry import Plane, PlaneGeometry

__all__ = [
    "MeasurementKind",
    "Measurement",
    "RoiStats",
    "MeasurementList",
    "line_length_mm",
    "angle_deg",
    "ellipse_stats",
    "measurements_path",
    "describe",
]

MeasurementKind = Literal["line", "ellipse", "angle"]


@dataclass(frozen=True)
class Measurement:
    """One measurement: ``points`` in LPS mm (2 for line/ellipse, 3 for angle).

    For an ellipse the two points are opposite corners of its bounding box in
    ``plane`` on the slice where it was drawn.
    """

    kind: MeasurementKind
    points: tuple[tuple[float, float, float], ...]
    plane: Plane
    id: int = 0
    label: str = ""


@dataclass(frozen=True)
class RoiStats:
    """HU statistics inside an ellipse ROI."""

    mean: float
    sd: float
    min: float
    max: float
    area_mm2: float
    n_pixels: int


def line_length_mm(m: Measurement) -> float:
    """Euclidean distance between the two LPS end points (spacing-aware by
    construction, because the points are already in millimetres)."""
    a, b = np.asarray(m.points[0]), np.asarray(m.points[1])
    return float(np.linalg.norm(b - a))


def angle_deg(m: Measurement) -> float:
    """Angle at the middle point (the vertex) in degrees."""
    a, v, b = (np.asarray(p, float) for p in m.points[:3])
    u, w = a - v, b - v
    nu, nw = np.linalg.norm(u), np.linalg.norm(w)
    if nu == 0 or nw == 0:
        return 0.0
    return float(math.degrees(math.acos(float(np.clip(np.dot(u, w) / (nu * nw), -1.0, 1.0)))))


def ellipse_stats(m: Measurement, volume: Volume, geom: PlaneGeometry) -> RoiStats | None:
    """Mean/SD/min/max HU of the pixels whose centres lie inside the ellipse,
    and its area (π·a·b in mm²). ``None`` when no pixel is inside."""
    v0, v1 = (volume.lps_to_voxel(p) for p in m.points[:2])
    x0, y0 = geom.voxel_to_scene(v0)
    x1, y1 = geom.voxel_to_scene(v1)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    ax, ay = abs(x1 - x0) / 2, abs(y1 - y0) / 2
    area = math.pi * ax * ay
    if ax <= 0 or ay <= 0:
        return None
    k = int(round((v0[geom.fixed_axis] + v1[geom.fixed_axis]) / 2))
    img = geom.slice2d(volume.array, k)
    c_lo = max(0, int(math.floor((cx - ax) / geom.col_mm)))
    c_hi = min(geom.n_cols, int(math.ceil((cx + ax) / geom.col_mm)) + 1)
    r_lo = max(0, int(math.floor((cy - ay) / geom.row_mm)))
    r_hi = min(geom.n_rows, int(math.ceil((cy + ay) / geom.row_mm)) + 1)
    if c_hi <= c_lo or r_hi <= r_lo:
        return None
    cols = (np.arange(c_lo, c_hi) + 0.5) * geom.col_mm
    rows = (np.arange(r_lo, r_hi) + 0.5) * geom.row_mm
    inside = ((cols[None, :] - cx) / ax) ** 2 + ((rows[:, None] - cy) / ay) ** 2 <= 1.0
    vals = np.asarray(img[r_lo:r_hi, c_lo:c_hi], float)[inside]
    if vals.size == 0:
        return None
    return RoiStats(float(vals.mean()), float(vals.std()), float(vals.min()), float(vals.max()), float(area), int(vals.size))


def describe(m: Measurement, volume: Volume, geom: PlaneGeometry) -> str:
    """The text a reader sees beside a measurement: mm to 0.1, degrees to
    0.1, or ROI mean ± SD, [min, max] HU and area (one place, so the label on
    the image and the list always agree)."""
    if m.kind == "line":
        return f"{line_length_mm(m):.1f} mm"
    if m.kind == "angle":
        return f"{angle_deg(m):.1f}°"
    st = ellipse_stats(m, volume, geom)
    if st is None:
        return "ROI (empty)"
    return f"{st.mean:.0f} ± {st.sd:.0f} HU\n[{st.min:.0f}, {st.max:.0f}]\n{st.area_mm2:.1f} mm²"


def measurements_path(series_uid: str) -> Path:
    """Where one series' measurements live (a user-data folder, never the
    study folder, which may be read-only or on PACS media)."""
    from inference.paths import data_dir

    safe = "".join(ch for ch in series_uid if ch.isalnum() or ch in ".-_") or "unknown"
    return data_dir() / "studies" / safe / "measurements.json"


@dataclass
class MeasurementList:
    """The ordered list of measurements of the open series, with events."""

    items: list[Measurement] = field(default_factory=list)
    changed: Event = field(default_factory=lambda: Event("measurements"), repr=False)
    _next_id: int = 1

    def add(self, m: Measurement) -> Measurement:
        """Append ``m`` (given a fresh id) and notify; returns the stored one."""
        from dataclasses import replace

        stored = replace(m, id=self._next_id)
        self._next_id += 1
        self.items.append(stored)
        self.changed.emit()
        return stored

    def remove(self, mid: int) -> None:
        """Delete the measurement with id ``mid`` (no-op if absent)."""
        before = len(self.items)
        self.items = [m for m in self.items if m.id != mid]
        if len(self.items) != before:
            self.changed.emit()

    def clear(self) -> None:
        self.items = []
        self._next_id = 1
        self.changed.emit()

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.items)

    # -- persistence -----------------------------------------------------
    def save(self, path: Path) -> None:
        """Write the list as JSON (atomically: a crash never leaves half a file)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {"version": 1, "measurements": [asdict(m) for m in self.items]}
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(path)

    def load(self, path: Path) -> list[Issue]:
        """Replace the list with the file's content; bad entries become
        :class:`Issue` lines and the rest still loads."""
        issues: list[Issue] = []
        self.items = []
        self._next_id = 1
        if not path.exists():
            self.changed.emit()
            return issues
        try:
            data = json.loads(path.read_text())
            entries = data["measurements"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            self.changed.emit()
            return [Issue(f"measurements not readable: {e}", path=str(path))]
        for i, d in enumerate(entries):
            try:
                pts = tuple(tuple(float(c) for c in p) for p in d["points"])
                if d["kind"] not in ("line", "ellipse", "angle") or d["plane"] not in ("axial", "coronal", "sagittal"):
                    raise ValueError(f"unknown kind/plane {d['kind']}/{d['plane']}")
                if any(len(p) != 3 for p in pts) or len(pts) != (3 if d["kind"] == "angle" else 2):
                    raise ValueError("wrong number of points")
                m = Measurement(kind=d["kind"], points=pts, plane=d["plane"], id=self._next_id, label=str(d.get("label", "")))
            except (KeyError, TypeError, ValueError) as e:
                issues.append(Issue(f"measurement #{i + 1} skipped: {e}", path=str(path)))
                continue
            self.items.append(m)
            self._next_id += 1
        self.changed.emit()
        return issues
