"""Every file of pydicom's test corpus (pydicom's own test_files plus the
pydicom-data package) is either loaded or rejected with a typed error --
never an unexpected exception.

The file list is built offline: ``pydicom.data.get_testdata_files('*')`` also
tries to *download* the 79 files of its online list (68 of them are in the
installed pydicom-data package; 11 -- a few HTJ2K/JPEG-LS colour and
parametric-map samples -- are not), which hangs without network. We take the
local test_files folder plus the pydicom-data store: 244 files, ~60 MB, none
skipped for size.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import data_manager

from inference.errors import ClinviewError, NoUsableSeriesError
from inference.io.dicom_index import scan
from inference.io.dicom_series import load_series


def _corpus() -> list[Path]:
    local = sorted(p for p in (Path(data_manager.DATA_ROOT) / "test_files").glob("**/*") if p.is_file())
    sources = data_manager.external_data_sources()
    ext = sorted(Path(p) for p in sources["pydicom-data"].get_paths("**/*", 0)) if "pydicom-data" in sources else []
    return local + ext


def _int(ds: pydicom.Dataset, kw: str) -> int | None:
    """Integer value or None when malformed (one file has NumberOfFrames '1A')."""
    try:
        return int(ds.get(kw, 1) or 1)
    except (TypeError, ValueError):
        return None


@pytest.mark.slow
def test_every_pydicom_test_file_loads_or_is_rejected_cleanly() -> None:
    files = _corpus()
    assert len(files) > 200
    loaded, rejected, crashed = [], [], []
    checked_pixels = 0
    for f in files:
        try:
            result = scan(f)
            assert len(result.series) + len(result.skipped) >= 1, f
            v = load_series(f)
        except ClinviewError as e:
            line = e.one_line()
            assert line and "\n" not in line
            rejected.append((f.name, line))
            continue
        except Exception as e:  # noqa: BLE001 - the point of the test: collect anything unexpected
            crashed.append(f"{f}: {type(e).__name__}: {e}")
            continue
        loaded.append(f.name)
        assert v.array.ndim == 3 and v.array.dtype in (np.int16, np.float32)
        assert np.isfinite(v.array).all() if v.array.dtype == np.float32 else True
        assert np.allclose(np.abs(np.linalg.det(v.direction)), 1.0, atol=1e-3)
        # single-frame greyscale images: voxels equal pydicom's rescaled pixels
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(f, force=True)
        if (
            v.shape[0] == 1
            and _int(ds, "NumberOfFrames") == 1
            and _int(ds, "SamplesPerPixel") == 1
            and str(ds.get("PhotometricInterpretation", "")).startswith("MONO")
            and "TransferSyntaxUID" in getattr(ds, "file_meta", {})
        ):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ref = ds.pixel_array.astype(np.float64) * float(ds.get("RescaleSlope", 1) or 1) + float(
                    ds.get("RescaleIntercept", 0) or 0
                )
            assert np.allclose(v.array[0], ref, atol=1e-3 * max(1.0, float(np.abs(ref).max()))), f
            checked_pixels += 1
    assert crashed == []
    # sanity on the split: real images load, non-images and broken files are rejected
    assert {"CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm", "emri_small.dcm", "SC_rgb.dcm"} <= set(loaded)
    names = dict(rejected)
    assert {"rtplan.dcm", "MR_truncated.dcm", "README.txt"} <= set(names)
    assert "truncated" in names["MR_truncated.dcm"]
    assert checked_pixels > 40
    assert len(loaded) > 150


def test_truncated_test_file_is_a_typed_error() -> None:
    f = Path(data_manager.DATA_ROOT) / "test_files" / "MR_truncated.dcm"
    with pytest.raises(NoUsableSeriesError, match="truncated"):
        load_series(f)
