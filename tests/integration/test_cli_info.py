"""``clinview info`` on DICOM through the real console script: a readable
patient → study → series tree, skipped files with reasons, ``--json``, and
exit codes 0 (a series found) / 2 (nothing usable), never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.dicomgen import phantom, write_ct_series, write_random_binary, write_zero_byte, zip_folder


def _clinview() -> list[str]:
    exe = Path(sys.executable).parent / "clinview"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "clinview.cli"]


def _info(path: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ}
    env.pop("CLINVIEW_DEBUG", None)
    return subprocess.run([*_clinview(), "info", str(path), *extra], capture_output=True, text=True, timeout=120, env=env)


def _folder(tmp_path: Path) -> Path:
    root = tmp_path / "export"
    study = "1.2.826.0.1.3680043.8.498.77"
    write_ct_series(root / "s1", phantom((4, 16, 12)), spacing=(1.25, 0.7, 0.7), patient_id="PAT-9", study_uid=study,
                    series_description="lung 1.25", kernel="B70f", study_description="CT thorax")
    write_ct_series(root / "s2", phantom((2, 8, 8)), patient_id="PAT-9", study_uid=study, modality="MR", rescale=None,
                    series_description="t2 ax", series_number=5)
    write_zero_byte(root / "empty.dcm")
    write_random_binary(root / "garbage.dcm")
    return root


def test_info_tree_text(tmp_path: Path) -> None:
    r = _info(_folder(tmp_path))
    assert r.returncode == 0, r.stderr
    out = r.stdout
    lines = out.splitlines()
    i_pat = next(i for i, l in enumerate(lines) if "patient PAT-9" in l)
    i_study = next(i for i, l in enumerate(lines) if "study 2024-01-15 'CT thorax'" in l)
    i_ct = next(i for i, l in enumerate(lines) if "CT 'lung 1.25' 4 image(s), 12×16" in l)
    i_mr = next(i for i, l in enumerate(lines) if "MR 't2 ax' 2 image(s)" in l)
    assert i_pat < i_study < i_ct < i_mr
    assert "0.7×0.7×1.25 mm" in lines[i_ct] and "kernel B70f" in lines[i_ct]
    assert "skipped 2 file(s):" in out
    assert any("empty.dcm: empty file" in l for l in lines)
    assert any("garbage.dcm: not a DICOM file" in l for l in lines)
    assert "Traceback" not in r.stderr


def test_info_json(tmp_path: Path) -> None:
    r = _info(_folder(tmp_path), "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["n_series"] == 2
    (pat,) = data["patients"]
    assert pat["patient_id"] == "PAT-9"
    series = pat["studies"][0]["series"]
    ct = next(s for s in series if s["modality"] == "CT")
    assert ct["n_images"] == 4 and ct["rows"] == 16 and ct["columns"] == 12 and ct["kernel"] == "B70f"
    assert ct["pixel_spacing_mm"] == [0.7, 0.7] and len(ct["files"]) == 4
    assert {Path(s["path"]).name for s in data["skipped"]} == {"empty.dcm", "garbage.dcm"}


def test_info_zip(tmp_path: Path) -> None:
    zp = zip_folder(_folder(tmp_path), tmp_path / "export.zip")
    r = _info(zp)
    assert r.returncode == 0, r.stderr
    assert "CT 'lung 1.25' 4 image(s)" in r.stdout


def test_info_nothing_usable_exits_2(tmp_path: Path) -> None:
    write_random_binary(tmp_path / "a.dcm")
    r = _info(tmp_path)
    assert r.returncode == 2
    assert "no DICOM series found" in r.stdout and "a.dcm: not a DICOM file" in r.stdout
    r2 = _info(tmp_path / "does-not-exist")
    assert r2.returncode == 2 and "no such file" in r2.stderr and "Traceback" not in r2.stderr


def test_info_non_image_object_listed_and_exit_2() -> None:
    from pydicom.data import get_testdata_file

    r = _info(Path(get_testdata_file("rtplan.dcm")))
    assert r.returncode == 2
    assert "rtplan.dcm: RTPLAN object without image pixels" in r.stdout
