"""The real Lung-PET-CT-Dx A0001 study: one study, two 64-slice series split
by SeriesInstanceUID; geometry and HU identical to SimpleITK's
ImageSeriesReader with its own GDCM sort."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from inference import api
from inference.io.dicom_series import load_series

pytestmark = pytest.mark.shared


def test_scan_finds_one_study_two_series(real_ct_dir: Path) -> None:
    r = api.scan(real_ct_dir)
    cts = [s for s in r.series if s.modality == "CT"]
    assert len(cts) == 2
    assert len({s.study.study_instance_uid for s in cts}) == 1
    assert len({s.series_instance_uid for s in cts}) == 2
    assert all(len(s.files) == 64 and (s.rows, s.columns) == (512, 512) for s in cts)
    assert {s.kernel for s in cts} == {"L", "B"}
    assert all(Path(s.files[0]).parent.name.startswith("ct-") for s in cts)
    # the annotation XML files are listed, not silently dropped
    assert r.skipped and all("not a DICOM file" in s.reason for s in r.skipped)


@pytest.mark.parametrize("sub", ["ct-lung-kernel", "ct-soft-kernel"])
def test_geometry_and_hu_equal_simpleitk(real_ct_dir: Path, sub: str) -> None:
    folder = real_ct_dir / sub
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    ref = reader.Execute()
    v = load_series(folder)
    assert v.shape == (64, 512, 512)
    assert v.array.dtype == np.int16
    assert np.allclose(v.spacing[::-1], ref.GetSpacing(), atol=1e-3)
    assert np.allclose(v.origin, ref.GetOrigin(), atol=1e-3)
    assert np.allclose(v.direction.ravel(), ref.GetDirection(), atol=1e-3)
    assert np.array_equal(v.array, sitk.GetArrayFromImage(ref))
    assert v.warnings == ()
    # a voxel-to-LPS mapping check against SimpleITK at a far corner
    assert np.allclose(v.voxel_to_lps((63, 511, 511)), ref.TransformIndexToPhysicalPoint((511, 511, 63)), atol=1e-3)


def test_whole_study_loads_one_series_with_a_warning(real_ct_dir: Path) -> None:
    v = api.load_series(real_ct_dir)
    assert v.shape == (64, 512, 512)
    assert [w.code for w in v.warnings] == ["several-series"]
    other = [s for s in api.scan(real_ct_dir).series if s.series_instance_uid != v.series.series_instance_uid]
    v2 = api.load_series(real_ct_dir, series_uid=other[0].series_instance_uid)
    assert v2.series.kernel != v.series.kernel
    assert v2.origin == v.origin and v2.spacing == v.spacing


def test_fast_path_equals_pydicom_path_on_real_files(real_ct_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from inference.io import dicom_series

    folder = real_ct_dir / "ct-lung-kernel"
    fast = load_series(folder)
    monkeypatch.setattr(dicom_series, "read_native_at", lambda *a, **k: None)  # every slice through pydicom
    slow = load_series(folder)
    assert np.array_equal(fast.array, slow.array) and fast.array.dtype == slow.array.dtype
    assert fast.origin == slow.origin and fast.spacing == slow.spacing
