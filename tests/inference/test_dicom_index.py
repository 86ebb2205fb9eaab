"""scan(): grouping, sorting, skipped files with reasons, zip and DICOMDIR."""

from __future__ import annotations

import zipfile
from datetime import date
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from inference.io.dicom_index import scan
from inference.io.dicom_series import load_series
from tests.dicomgen import (
    phantom,
    write_2d_image,
    write_ct_series,
    write_dicomdir,
    write_random_binary,
    write_truncated_copy,
    write_zero_byte,
    zip_folder,
)


def _reasons(result) -> dict[str, str]:
    return {Path(s.path).name: s.reason for s in result.skipped}


def test_series_info_fields_and_sorted_files(tmp_path: Path) -> None:
    files = write_ct_series(
        tmp_path,
        phantom((5, 12, 10)),
        spacing=(2.5, 0.6, 0.7),
        patient_id="P-17",
        kernel="B45f",
        study_date="20230102",
        series_description="lung 2.5",
        series_number=4,
    )
    r = scan(tmp_path)
    assert len(r.series) == 1 and r.skipped == ()
    s = r.series[0]
    assert s.files == tuple(files)  # slice order, not name order
    assert sorted(files) != files  # the names really were shuffled
    assert (s.rows, s.columns) == (12, 10)
    assert s.pixel_spacing_mm == pytest.approx((0.6, 0.7))
    assert s.slice_thickness_mm == pytest.approx(2.5)
    assert s.kernel == "B45f" and s.modality == "CT" and s.series_number == 4
    assert s.description == "lung 2.5"
    assert s.patient.patient_id == "P-17" and s.patient.sex == "F"
    assert s.patient.birth_date == date(1956, 3, 14)
    assert s.study.date == date(2023, 1, 2)
    assert s.image_orientation == pytest.approx((1, 0, 0, 0, 1, 0))
    assert s.transfer_syntax_uid == "1.2.840.10008.1.2.1"
    assert s.frame_of_reference_uid and s.number_of_frames == 1


def test_patients_studies_series_grouping(tmp_path: Path) -> None:
    study = "1.2.826.0.1.3680043.8.498.10"
    write_ct_series(tmp_path / "a", phantom((3, 8, 8)), patient_id="A", study_uid=study, series_number=1)
    write_ct_series(tmp_path / "a", phantom((2, 8, 8)), patient_id="A", study_uid=study, series_number=2, modality="MR", rescale=None)
    write_ct_series(tmp_path / "b", phantom((2, 8, 8)), patient_id="B")
    r = scan(tmp_path)
    tree = r.patients()
    assert set(tree) == {"A", "B"}
    assert list(tree["A"]) == [study]
    assert [s.modality for s in tree["A"][study]] == ["CT", "MR"]


def test_bad_files_listed_with_reasons_never_abort(tmp_path: Path) -> None:
    files = write_ct_series(tmp_path, phantom((3, 8, 8)))
    write_zero_byte(tmp_path / "zero.dcm")
    write_random_binary(tmp_path / "random.dcm")
    write_truncated_copy(files[0], tmp_path / "cut_pixels.dcm", keep_fraction=0.8)
    write_truncated_copy(files[0], tmp_path / "cut_header.dcm", keep_fraction=0.1)
    (tmp_path / "readme.txt").write_text("exported by PACS")
    r = scan(tmp_path)
    assert len(r.series) == 1 and len(r.series[0].files) == 3
    reasons = _reasons(r)
    assert set(reasons) == {"zero.dcm", "random.dcm", "cut_pixels.dcm", "cut_header.dcm", "readme.txt"}
    assert "empty" in reasons["zero.dcm"]
    assert "not a DICOM file" in reasons["random.dcm"]
    assert "truncated" in reasons["cut_pixels.dcm"]
    assert "truncated" in reasons["cut_header.dcm"] or "unreadable" in reasons["cut_header.dcm"]
    assert all("\n" not in s.one_line() for s in r.skipped)


def test_non_ct_and_2d_series_are_indexed(tmp_path: Path) -> None:
    write_ct_series(tmp_path, phantom((2, 8, 8)), modality="MR", rescale=None)
    write_2d_image(tmp_path / "cxr.dcm", np.zeros((20, 16), np.uint16))
    mods = sorted(s.modality for s in scan(tmp_path).series)
    assert mods == ["DX", "MR"]


def test_zip_archive_scanned_and_loadable(tmp_path: Path) -> None:
    hu = phantom((4, 10, 10))
    write_ct_series(tmp_path / "src", hu)
    write_random_binary(tmp_path / "src" / "junk.dcm")
    zp = zip_folder(tmp_path / "src", tmp_path / "export.zip")
    r = scan(zp)
    assert len(r.series) == 1
    assert [Path(s.path).name for s in r.skipped] == ["junk.dcm"]
    assert "export.zip" in str(r.skipped[0].path)
    # extracted into the cache dir (redirected by conftest), so files stay loadable
    assert all(f.exists() for f in r.series[0].files)
    v = load_series(r.series[0])
    assert np.array_equal(v.array, hu)
    assert np.array_equal(load_series(zp).array, hu)


def test_zip_inside_a_folder_is_expanded(tmp_path: Path) -> None:
    write_ct_series(tmp_path / "src", phantom((3, 8, 8)), series_description="zipped")
    zip_folder(tmp_path / "src", tmp_path / "outer" / "study.zip")
    write_ct_series(tmp_path / "outer" / "plain", phantom((2, 8, 8)), series_description="plain")
    r = scan(tmp_path / "outer")
    assert sorted(s.description for s in r.series) == ["plain", "zipped"]


def test_zip_slip_member_refused(tmp_path: Path) -> None:
    zp = tmp_path / "evil.zip"
    with zipfile.ZipFile(zp, "w") as zf:
        zf.writestr("../../outside.dcm", b"x" * 200)
    r = scan(zp)
    assert r.series == ()
    assert "unsafe path" in r.skipped[0].reason
    assert not (tmp_path.parent / "outside.dcm").exists()


def test_corrupt_zip_is_skipped(tmp_path: Path) -> None:
    zp = tmp_path / "broken.zip"
    zp.write_bytes(b"PK\x03\x04" + b"\x00" * 50)
    r = scan(zp)
    assert r.series == () and "zip" in r.skipped[0].reason


def test_generated_dicomdir(tmp_path: Path) -> None:
    hu = phantom((3, 8, 8))
    files = write_ct_series(tmp_path / "src", hu)
    dd = write_dicomdir(files, tmp_path / "cd")
    r = scan(dd)
    assert len(r.series) == 1 and len(r.series[0].files) == 3
    assert np.array_equal(load_series(dd).array, hu)
    # the folder holding the DICOMDIR gives the same series, and the DICOMDIR itself is no "skipped" file
    r2 = scan(dd.parent)
    assert len(r2.series) == 1 and r2.skipped == ()


def test_pydicom_dicomdir_with_missing_references(tmp_path: Path) -> None:
    dd = Path(get_testdata_file("DICOMDIR"))
    r = scan(dd)
    n_ref = sum(
        1 for rec in pydicom.dcmread(dd).DirectoryRecordSequence if "ReferencedFileID" in rec
    )
    assert sum(len(s.files) for s in r.series) + len(r.skipped) == n_ref
    assert {"CT", "MR"} <= {s.modality for s in r.series}


def test_progress_reported(tmp_path: Path) -> None:
    write_ct_series(tmp_path, phantom((3, 8, 8)))
    seen: list[float] = []
    scan(tmp_path, progress=lambda p: seen.append(p.fraction))
    assert seen[0] == 0.0 and seen[-1] == 1.0
