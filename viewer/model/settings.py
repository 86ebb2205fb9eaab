"""User settings remembered between runs, as a plain dataclass.

The Qt side (:mod:`viewer.services.settings_store`) reads and writes it with
QSettings (organisation "clinview"); keeping the values here lets tests and the
model use them without Qt.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Settings", "MAX_RECENT"]

MAX_RECENT = 10


@dataclass
class Settings:
    layout: str = "mpr"
    preset: str = "lung"
    last_folder: str = ""
    recent: list[str] = field(default_factory=list)
    sync_zoom: bool = True
    slab_mm: float = 0.0
    show_annotations: bool = True
    overlay_opacity: float = 0.45
    window_geometry: str = ""  # QMainWindow.saveGeometry(), base64
    window_state: str = ""  # QMainWindow.saveState() (docks), base64

    def add_recent(self, path: str) -> None:
        """Most recent first, no duplicates, at most :data:`MAX_RECENT`."""
        self.recent = [path] + [p for p in self.recent if p != path]
        del self.recent[MAX_RECENT:]
