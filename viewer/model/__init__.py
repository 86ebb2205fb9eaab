"""viewer.model: Qt-free view state (volume, cursor, window/level, layout,
overlays, markers, measurements, settings)."""

from viewer.model.evented import Event
from viewer.model.geometry import PLANES, PlaneGeometry, plane_geometries
from viewer.model.measurements import Measurement, MeasurementList, RoiStats, angle_deg, ellipse_stats, line_length_mm
from viewer.model.overlays import LabelOverlay, Marker
from viewer.model.settings import Settings
from viewer.model.viewer_model import LAYOUTS, PRESETS, VIEW_IDS, ViewerModel, WindowLevel

__all__ = [
    "Event", "PLANES", "PlaneGeometry", "plane_geometries", "Measurement", "MeasurementList", "RoiStats",
    "angle_deg", "ellipse_stats", "line_length_mm", "LabelOverlay", "Marker", "Settings", "LAYOUTS",
    "PRESETS", "VIEW_IDS", "ViewerModel", "WindowLevel",
]
