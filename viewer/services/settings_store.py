"""Read and write :class:`viewer.model.Settings` with QSettings.

The file lives in ``inference.paths.data_dir()/settings.ini`` (organisation
"clinview") rather than the platform registry: the data folder is the one
place the project documents for user state, and tests and kiosks redirect it
with ``CLINVIEW_DATA_DIR`` so a test run never touches a reader's settings.
"""

from __future__ import annotations

from PySide6.QtCore import QSettings

from inference.paths import data_dir
from viewer.model.settings import MAX_RECENT, Settings

__all__ = ["load_settings", "save_settings", "qsettings"]


def qsettings() -> QSettings:
    """The clinview QSettings object (INI file in the user data folder)."""
    return QSettings(str(data_dir() / "settings.ini"), QSettings.IniFormat)


def _float(v: object, default: float) -> float:
    try:
        return float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default


def _bool(v: object, default: bool) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str):
        return v.lower() in ("1", "true", "yes")
    return default


def load_settings() -> Settings:
    """Settings of the last run; a damaged or missing value gives its default."""
    q = qsettings()
    d = Settings()
    recent = q.value("recent", [])
    if isinstance(recent, str):
        recent = [recent]
    layout = str(q.value("layout", d.layout))
    return Settings(
        layout=layout if layout in ("single", "mpr", "2x2") else d.layout,
        preset=str(q.value("preset", d.preset)),
        last_folder=str(q.value("last_folder", d.last_folder) or ""),
        recent=[str(r) for r in (recent or [])][:MAX_RECENT],
        sync_zoom=_bool(q.value("sync_zoom", d.sync_zoom), d.sync_zoom),
        slab_mm=_float(q.value("slab_mm", d.slab_mm), d.slab_mm),
        show_annotations=_bool(q.value("show_annotations", d.show_annotations), d.show_annotations),
        overlay_opacity=_float(q.value("overlay_opacity", d.overlay_opacity), d.overlay_opacity),
        window_geometry=str(q.value("window/geometry", "") or ""),
        window_state=str(q.value("window/state", "") or ""),
    )


def save_settings(s: Settings) -> None:
    q = qsettings()
    q.setValue("layout", s.layout)
    q.setValue("preset", s.preset)
    q.setValue("last_folder", s.last_folder)
    q.setValue("recent", list(s.recent))
    q.setValue("sync_zoom", s.sync_zoom)
    q.setValue("slab_mm", s.slab_mm)
    q.setValue("show_annotations", s.show_annotations)
    q.setValue("overlay_opacity", s.overlay_opacity)
    q.setValue("window/geometry", s.window_geometry)
    q.setValue("window/state", s.window_state)
    q.sync()
