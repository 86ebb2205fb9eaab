"""Where clinview keeps generated and user data.

Environment variables win so that tests, CI and kiosks can redirect every write
to a temporary folder (``CLINVIEW_CACHE_DIR``, ``CLINVIEW_DATA_DIR``); otherwise
the XDG locations under the user's home are used, never the install folder
(which may be read-only on a hospital workstation).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir", "data_dir", "resources_dir"]


def cache_dir() -> Path:
    """Regenerable data (the demo patient, analysis outputs)."""
    env = os.environ.get("CLINVIEW_CACHE_DIR")
    base = Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "clinview"
    base.mkdir(parents=True, exist_ok=True)
    return base


def data_dir() -> Path:
    """User work that must survive: review states, measurements, settings."""
    env = os.environ.get("CLINVIEW_DATA_DIR")
    base = Path(env) if env else Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "clinview"
    base.mkdir(parents=True, exist_ok=True)
    return base


def resources_dir() -> Path:
    """Bundled, read-only resources (weights, knowledge base, styles)."""
    return Path(__file__).resolve().parents[1] / "resources"
