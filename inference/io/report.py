"""Human and machine descriptions of a :class:`~inference.types.ScanResult`
for ``clinview info``.

Why a tree: a CD or PACS export is read the way a radiologist thinks about
it -- patient, then study (date, description), then series (modality,
description, how many images, matrix, voxel size, kernel) -- and whatever was
skipped must be visible with its reason, one line per file, so nothing
disappears silently.
"""

from __future__ import annotations

from typing import Any

from inference.types import ScanResult, SeriesInfo

__all__ = ["format_scan", "scan_to_json", "series_to_json", "series_line"]


def _spacing_text(s: SeriesInfo) -> str:
    parts = []
    if s.pixel_spacing_mm:
        parts.append(f"{s.pixel_spacing_mm[1]:.3g}×{s.pixel_spacing_mm[0]:.3g}")
    if s.slice_thickness_mm:
        parts.append(f"{s.slice_thickness_mm:.3g}")
    return ("×".join(parts) + " mm") if parts else "spacing unknown"


def series_line(s: SeriesInfo) -> str:
    """One line for a series: ``#3 CT 'lung 1mm' 64 images 512×512, 0.84×0.84×5 mm, kernel B70f``."""
    num = f"#{s.series_number} " if s.series_number is not None else ""
    desc = f"'{s.description}' " if s.description else ""
    if s.rows and s.columns:
        size = f"{s.columns}×{s.rows}"
        frames = f" ({len(s.files)} file(s) × {s.number_of_frames} frames)" if s.number_of_frames > 1 else ""
        body = f"{s.n_images} image(s){frames}, {size}, {_spacing_text(s)}"
    else:
        body = f"{len(s.files)} object(s) without pixels"
    kernel = f", kernel {s.kernel}" if s.kernel else ""
    return f"{num}{s.modality} {desc}{body}{kernel}"


def format_scan(result: ScanResult) -> str:
    """Readable tree: patient → study → series, then the skipped files."""
    lines = [f"{result.root}"]
    pats = result.patients()
    if not pats:
        lines.append("  no DICOM series found")
    for pid, studies in pats.items():
        any_series = next(iter(next(iter(studies.values()))))
        p = any_series.patient
        extra = []
        if p.name and p.name != pid:
            extra.append(p.name)
        if p.sex:
            extra.append(p.sex)
        if p.birth_date:
            extra.append(f"born {p.birth_date.isoformat()}")
        elif p.age_years is not None:
            extra.append(f"{p.age_years:g} y")
        lines.append(f"  patient {pid}" + (f" ({', '.join(extra)})" if extra else ""))
        for study_uid, series in studies.items():
            st = series[0].study
            when = st.date.isoformat() if st.date else "no date"
            desc = f" '{st.description}'" if st.description else ""
            lines.append(f"    study {when}{desc}  [{study_uid}]")
            for s in series:
                lines.append(f"      series {series_line(s)}")
                lines.append(f"        uid {s.series_instance_uid}")
    n_series = len(result.series)
    n_files = sum(len(s.files) for s in result.series)
    lines.append(f"{n_series} series in {n_files} file(s)")
    if result.skipped:
        lines.append(f"skipped {len(result.skipped)} file(s):")
        lines.extend(f"  {sk.one_line()}" for sk in result.skipped)
    return "\n".join(lines)


def series_to_json(s: SeriesInfo) -> dict[str, Any]:
    """A JSON-ready dictionary for one series (paths as strings, dates ISO)."""
    return {
        "series_instance_uid": s.series_instance_uid,
        "modality": s.modality,
        "description": s.description,
        "series_number": s.series_number,
        "n_images": s.n_images,
        "n_files": len(s.files),
        "number_of_frames": s.number_of_frames,
        "rows": s.rows,
        "columns": s.columns,
        "pixel_spacing_mm": list(s.pixel_spacing_mm) if s.pixel_spacing_mm else None,
        "slice_thickness_mm": s.slice_thickness_mm,
        "image_orientation": list(s.image_orientation) if s.image_orientation else None,
        "kernel": s.kernel,
        "frame_of_reference_uid": s.frame_of_reference_uid,
        "transfer_syntax_uid": s.transfer_syntax_uid,
        "files": [str(f) for f in s.files],
    }


def scan_to_json(result: ScanResult) -> dict[str, Any]:
    """``{"root", "patients": [{..., "studies": [{..., "series": [...]}]}], "skipped": [...]}``."""
    patients = []
    for pid, studies in result.patients().items():
        p = next(iter(next(iter(studies.values())))).patient
        pj: dict[str, Any] = {
            "patient_id": None if pid == "(no PatientID)" else pid,
            "name": p.name,
            "sex": p.sex,
            "birth_date": p.birth_date.isoformat() if p.birth_date else None,
            "age_years": p.age_years,
            "studies": [],
        }
        for study_uid, series in studies.items():
            st = series[0].study
            pj["studies"].append(
                {
                    "study_instance_uid": study_uid,
                    "date": st.date.isoformat() if st.date else None,
                    "description": st.description,
                    "accession_number": st.accession_number,
                    "series": [series_to_json(s) for s in series],
                }
            )
        patients.append(pj)
    return {
        "root": str(result.root),
        "n_series": len(result.series),
        "patients": patients,
        "skipped": [{"path": str(sk.path), "reason": sk.reason} for sk in result.skipped],
    }
