"""The minimal tag walker must give exactly what pydicom gives, or step aside."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import JPEGLSLossless

from inference.io import dicom_series
from inference.io.dicom_fastread import (
    PixelScratch,
    fast_header,
    fix_stored_bits,
    header_from_dataset,
    read_native_pixels,
)
from inference.io.dicom_series import load_series
from tests.dicomgen import ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless, phantom, write_ct_series


@pytest.mark.parametrize("ts", [ExplicitVRLittleEndian, ImplicitVRLittleEndian], ids=["explicit", "implicit"])
def test_header_values_equal_pydicom(tmp_path: Path, ts: str) -> None:
    f = write_ct_series(tmp_path, phantom((1, 8, 6)), transfer_syntax=ts, patient_name="Müller^Anna")[0]
    fast = fast_header(f)
    assert fast is not None and fast.fast
    slow = header_from_dataset(pydicom.dcmread(f, stop_before_pixels=True), f)
    assert fast.decode_all() == {k: v for k, v in slow.values.items()}
    assert fast.get("PatientName") == "Müller^Anna"


def test_pixels_equal_pydicom_and_sequences_skipped(tmp_path: Path) -> None:
    f = write_ct_series(tmp_path, phantom((1, 16, 12)), transfer_syntax=ImplicitVRLittleEndian)[0]
    ds = pydicom.dcmread(f)
    # an undefined-length sequence with a nested one before the pixel data
    inner = pydicom.Dataset()
    inner.CodeValue = "113100"
    item = pydicom.Dataset()
    item.DeidentificationMethodCodeSequence = pydicom.Sequence([inner])
    ds.ReferencedStudySequence = pydicom.Sequence([item])
    ds.save_as(f)
    got = read_native_pixels(f, PixelScratch())
    assert got is not None
    h, arr = got
    assert np.array_equal(arr, pydicom.dcmread(f).pixel_array)
    assert h.get("Rows") == 16


def test_compressed_file_goes_to_pydicom(tmp_path: Path) -> None:
    f = write_ct_series(tmp_path, phantom((1, 8, 8)), transfer_syntax=RLELossless)[0]
    assert fast_header(f) is None


@pytest.mark.parametrize("signed", [False, True])
def test_bits_stored_handled_like_pydicom(tmp_path: Path, signed: bool) -> None:
    f = write_ct_series(tmp_path, np.zeros((1, 2, 4)), rescale=None, shuffle_names=False)[0]
    ds = pydicom.dcmread(f)
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 12, 11, int(signed)
    ds.PixelData = np.array([0xF123, 0x0FFF, 0x0800, 2, 0x7FF, 0x8001, 1, 0], "<u2").tobytes()
    ds.save_as(f)
    h, arr = read_native_pixels(f, PixelScratch())  # type: ignore[misc]
    assert np.array_equal(arr, pydicom.dcmread(f).pixel_array)


def test_fix_stored_bits_returns_same_array_when_in_range() -> None:
    a = np.array([0, 100, 4095], np.uint16)
    assert fix_stored_bits(a, 12, False) is a


def test_fast_and_pydicom_paths_give_identical_volumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hu = phantom((6, 20, 18))
    write_ct_series(tmp_path / "plain", hu, spacing=(1.5, 0.6, 0.6), seed=4)
    fast = load_series(tmp_path / "plain")
    # force every slice through pydicom's pixel handler
    monkeypatch.setattr(dicom_series, "read_native_at", lambda *a, **k: None)
    slow = load_series(tmp_path / "plain")
    assert np.array_equal(fast.array, slow.array) and fast.array.dtype == slow.array.dtype
    assert fast.origin == slow.origin and fast.spacing == slow.spacing
    assert np.array_equal(fast.direction, slow.direction)
    write_ct_series(tmp_path / "jls", hu, spacing=(1.5, 0.6, 0.6), seed=4, transfer_syntax=JPEGLSLossless)
    assert np.array_equal(load_series(tmp_path / "jls").array, fast.array)
