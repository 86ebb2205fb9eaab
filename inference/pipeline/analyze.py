"""``clinview analyze``: scan a study, pick the CT series, run the imaging
pipeline, add the clinical parts, write findings.json + label maps.

Why the outputs are written atomically: the viewer cancels a run by killing
the worker process. Everything is first written into a hidden partial folder
inside ``out_dir`` and then moved into place with ``os.replace`` --
``findings.json`` last -- so a killed run never leaves a half-written
findings.json, and a findings.json on disk always has its label maps beside it.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from inference.errors import CancelledError, NoUsableSeriesError
from inference.types import Progress, SeriesInfo, Volume

__all__ = ["analyze", "choose_series", "build_findings", "write_outputs", "SCHEMA"]

SCHEMA = "clinview.findings/1"
ProgressFn = Callable[[Progress], None]
CancelFn = Callable[[], bool]


# --------------------------------------------------------------------- series
def _is_axial(s: SeriesInfo) -> bool:
    if not s.image_orientation or len(s.image_orientation) < 6:
        return True
    r = np.array(s.image_orientation[:3], float)
    c = np.array(s.image_orientation[3:6], float)
    n = np.cross(r, c)
    return bool(abs(n[2]) > 0.8 * np.linalg.norm(n))


def choose_series(series: Sequence[SeriesInfo], series_uid: str | None = None) -> tuple[SeriesInfo, str]:
    """The series to analyse and a sentence saying why.

    Rule (findings contract): the thinnest axial CT with the most slices;
    ``series_uid`` overrides.

    Raises
    ------
    NoUsableSeriesError
        No CT series, or ``series_uid`` not found.
    """
    if series_uid:
        for s in series:
            if s.series_instance_uid == series_uid:
                return s, f"series {series_uid} chosen by --series"
        raise NoUsableSeriesError(f"series {series_uid} is not in this study",
                                  fix="run `clinview info STUDY` to list the series UIDs")
    cts = [s for s in series if s.modality == "CT" and s.n_images >= 3]
    if not cts:
        mods = sorted({s.modality for s in series}) or ["none"]
        raise NoUsableSeriesError(f"no CT series with at least 3 images (found modalities: {', '.join(mods)})",
                                  fix="point analyze at a chest CT study")
    axial = [s for s in cts if _is_axial(s)] or cts
    best = sorted(axial, key=lambda s: (s.slice_thickness_mm or 1e9, -s.n_images, s.series_instance_uid))[0]
    why = (f"chosen: thinnest axial CT with most slices ({best.n_images} images, "
           f"{best.slice_thickness_mm or '?'} mm, kernel {best.kernel or '?'}) out of {len(cts)} CT series")
    return best, why


def _scan_and_load(study: Path, series_uid: str | None, progress: ProgressFn | None,
                   cancel: CancelFn | None) -> tuple[Volume, str, list[str]]:
    from inference.api import load_series, scan

    res = scan(study)
    warnings = [sf.one_line() for sf in res.skipped[:3]]
    if len(res.skipped) > 3:
        warnings.append(f"{len(res.skipped) - 3} more non-image files skipped (`clinview info` lists them)")
    if not res.series:
        raise NoUsableSeriesError("no DICOM image series found", where=str(study),
                                  fix="check the folder, or run `clinview info` on it")
    s, why = choose_series(res.series, series_uid)
    vol = load_series(s, progress=progress, cancel=cancel)
    return vol, why, warnings


# ------------------------------------------------------------------- findings
def _iso(d: Any) -> str | None:
    return d.isoformat() if d is not None and hasattr(d, "isoformat") else (str(d) if d else None)


def build_findings(volume: Volume, imaging: Any, *, selection_note: str = "", warnings: Sequence[str] = ()) -> dict[str, Any]:
    """The findings dict (contract keys, clinical keys left for the hook)."""
    s = volume.series
    p = s.patient if s else None
    st = s.study if s else None
    return {
        "schema": SCHEMA,
        "patient": {
            "id": p.patient_id if p else None,
            "name": p.name if p else None,
            "sex": p.sex if p else None,
            "age_years": p.age_years if p else None,
            "birth_date": _iso(p.birth_date) if p else None,
        },
        "study": {"study_instance_uid": st.study_instance_uid if st else None, "date": _iso(st.date) if st else None},
        "series": {
            "series_instance_uid": s.series_instance_uid if s else None,
            "description": s.description if s else "",
            "kernel": s.kernel if s else "",
            "shape_zyx": list(volume.shape),
            "spacing_zyx_mm": [float(v) for v in volume.spacing],
            "origin_lps_mm": [float(v) for v in volume.origin],
            "direction": [float(v) for v in np.asarray(volume.direction, float).reshape(-1)],
            "selection": selection_note,
        },
        "lungs": imaging.lungs,
        "nodules": imaging.nodules,
        "exam": None,
        "risk": None,
        "genomics": None,
        "labs": [],
        "derived": {},
        "suggestions": [],
        "identity": None,
        "warnings": [*warnings, *[w.one_line() for w in volume.warnings], *imaging.warnings],
        "model": imaging.model,
    }


# -------------------------------------------------------------------- outputs
def _write_label_map(path: Path, labels: np.ndarray, volume: Volume) -> None:
    try:
        from inference.io.nifti import write_label_map
    except ImportError:  # the DICOM helper's writer has not landed: same geometry via SimpleITK
        import SimpleITK as sitk

        img = sitk.GetImageFromArray(labels)
        img.SetSpacing(tuple(float(v) for v in volume.spacing[::-1]))
        img.SetOrigin(tuple(float(v) for v in volume.origin))
        img.SetDirection(tuple(float(v) for v in np.asarray(volume.direction, float).reshape(-1)))
        sitk.WriteImage(img, str(path), useCompression=True)
        return
    write_label_map(path, labels, volume)


def write_outputs(out_dir: Path, findings: dict[str, Any], nodule_labels: np.ndarray, lung_labels: np.ndarray,
                  volume: Volume) -> Path:
    """Write findings.json, nodules.nii.gz, lungs.nii.gz atomically (see module doc)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob(".partial-*"):  # left by a killed run
        shutil.rmtree(old, ignore_errors=True)
    tmp = out_dir / f".partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        _write_label_map(tmp / "nodules.nii.gz", nodule_labels.astype(np.uint16), volume)
        _write_label_map(tmp / "lungs.nii.gz", lung_labels.astype(np.uint8), volume)
        (tmp / "findings.json").write_text(json.dumps(findings, indent=2, default=_json_default) + "\n", encoding="utf-8")
        for name in ("nodules.nii.gz", "lungs.nii.gz", "findings.json"):  # findings.json last
            os.replace(tmp / name, out_dir / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir / "findings.json"


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "isoformat"):
        return o.isoformat()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


# ------------------------------------------------------------------------ API
def analyze(
    study: Path,
    out_dir: Path,
    *,
    series_uid: str | None = None,
    genomics: Sequence[Path] = (),
    labs: Sequence[Path] = (),
    clinical: Path | None = None,
    prior: Path | None = None,
    device: str = "auto",
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    confirm_identity: bool = False,
    review: Path | None = None,
) -> dict[str, Any]:
    """Run the whole pipeline on ``study`` and write the outputs to ``out_dir``.

    ``review``: the reader's saved review of this series (the viewer's
    ``review.json``): its decisions are applied to the new findings before any
    score is computed (:func:`inference.review.apply_review`), so rejected
    nodules leave the deep model, Fleischner and the suggestions too. A file
    that cannot be read is a warning line; the analysis runs without it.

    Progress: 0–0.2 loading, 0.2–0.9 imaging (0.2–0.55 with a prior, whose own
    load and imaging take 0.55–0.93), then clinical rules and writing.

    Raises
    ------
    NoUsableSeriesError, SeriesLoadError
        Nothing analysable in ``study``.
    ModelIntegrityError
        Nodule weights missing or altered.
    CancelledError
        ``cancel()`` returned True (nothing is written).
    """
    from inference.clinical.integrate import add_clinical
    from inference.pipeline.imaging import run_imaging

    t0 = time.perf_counter()

    def report(f: float, msg: str) -> None:
        if progress is not None:
            progress(Progress(f, msg))

    def check() -> None:
        if cancel is not None and cancel():
            raise CancelledError()

    report(0.0, f"reading {study}")
    vol, why, warns = _scan_and_load(
        Path(study), series_uid,
        (lambda p: report(0.2 * p.fraction, p.message or "loading series")) if progress else None, cancel)
    check()
    t_dicom = time.perf_counter() - t0

    # With a prior, its own load + imaging runs inside the clinical step, so
    # the bar is split evenly between the two CTs instead of stalling at 90 %.
    img_end = 0.55 if prior is not None else 0.9

    def sub(p: Progress) -> None:
        report(0.2 + (img_end - 0.2) * p.fraction, p.message)

    def clin(p: Progress) -> None:
        report(img_end + (0.93 - img_end) * p.fraction, p.message)

    imaging = run_imaging(vol, device=device, progress=sub, cancel=cancel)
    check()
    report(img_end, "clinical inputs, prior and risk")
    findings = build_findings(vol, imaging, selection_note=why, warnings=warns)
    if review is not None:
        from inference.review import apply_review, read_review

        doc, bad = read_review(review)
        findings["warnings"].extend([bad] if bad else apply_review(findings, doc or {}, str(review)))
    # the clinical half (identity, prior + growth, guidelines, risk, suggestions) lives in
    # one place so that the CLI, the worker and the viewer get the same order of steps
    add_clinical(findings, vol, imaging, genomics=genomics, labs=labs, clinical=clinical, prior=prior,
                 confirm_identity=confirm_identity, device=device, progress=clin, cancel=cancel)
    findings["model"]["seconds"]["dicom"] = round(t_dicom, 3)
    findings["model"]["seconds"]["total"] = round(time.perf_counter() - t0, 3)
    check()
    report(0.95, "writing outputs")
    write_outputs(Path(out_dir), findings, imaging.nodule_labels, imaging.lung_labels, vol)
    report(1.0, f"done: {len(findings['nodules'])} nodule(s)")
    return findings
