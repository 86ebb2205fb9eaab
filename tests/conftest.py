"""Shared fixtures. Tests that need ``../shared/data`` skip cleanly without it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
REAL_CT = SHARED_DATA / "lung-pet-ct-dx" / "A0001"


@pytest.fixture(scope="session")
def real_ct_dir() -> Path:
    """The real Lung-PET-CT-Dx A0001 study (two series, 64 slices each)."""
    if not (REAL_CT / "ct-lung-kernel").is_dir():
        pytest.skip("../shared/data/lung-pet-ct-dx is absent")
    return REAL_CT


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never write into the tester's real cache or data folders."""
    base = tmp_path_factory.getbasetemp()
    monkeypatch.setenv("CLINVIEW_DATA_DIR", str(base / "userdata"))
    monkeypatch.setenv("CLINVIEW_CACHE_DIR", str(base / "cache"))
