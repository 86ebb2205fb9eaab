"""The clinical half of ``clinview analyze``: one place that runs, in order,
everything that turns measured nodules into decisions.

Why the order matters:

1. the non-imaging inputs are read first, because the patient-identity check
   decides which of them may be combined with this CT at all;
2. the prior CT is analysed and registered next, because Lung-RADS (new /
   growing) and the deep risk model both use growth;
3. guideline scores (Brock, Lung-RADS v2022, Fleischner 2017) come before the
   treatment suggestions, whose work-up rules read them;
4. the deep risk model is optional: a missing or altered weight file is
   reported, never fatal, because the guideline scores still stand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

from inference.errors import CancelledError, ClinviewError
from inference.types import Progress, Volume

__all__ = ["add_clinical"]

ProgressFn = Callable[[Progress], None]


def _same_patient(a: Volume, b: Volume) -> tuple[bool, str]:
    pa = a.series.patient if a.series else None
    pb = b.series.patient if b.series else None
    ida = pa.patient_id if pa else None
    idb = pb.patient_id if pb else None
    if ida and idb and ida != idb:
        return False, f"prior CT belongs to patient {idb!r}, current CT to {ida!r}"
    return True, ""


def _analyse_prior(
    prior: Path, volume: Volume, *, device: str, confirm_identity: bool, progress: ProgressFn | None,
    cancel: Callable[[], bool] | None,
) -> tuple[Volume, Any, dict[str, Any]] | str:
    """Load and analyse the prior study; a one-line reason when it cannot be used."""
    from inference.pipeline.analyze import _scan_and_load, build_findings
    from inference.pipeline.imaging import run_imaging

    try:
        pvol, why, _ = _scan_and_load(prior, None, None, cancel)
    except CancelledError:
        raise
    except ClinviewError as e:
        return f"prior not used: {e.one_line()}"
    ok, reason = _same_patient(volume, pvol)
    if not ok and not confirm_identity:
        return (f"prior not used: {reason}; nothing was combined "
                "(re-run with --confirm-identity if they are the same person)")
    sub = (lambda p: progress(Progress(p.fraction, f"prior: {p.message}"))) if progress else None
    pimg = run_imaging(pvol, device=device, progress=sub, cancel=cancel)
    pf = build_findings(pvol, pimg, selection_note=why)
    return pvol, pimg, pf


def add_clinical(
    findings: dict[str, Any],
    volume: Volume,
    imaging: Any,
    *,
    genomics: Sequence[Path] = (),
    labs: Sequence[Path] = (),
    clinical: Path | None = None,
    prior: Path | None = None,
    confirm_identity: bool = False,
    device: str = "auto",
    progress: ProgressFn | None = None,
    cancel: Callable[[], bool] | None = None,
) -> None:
    """Fill ``exam``, ``risk``, ``genomics``, ``labs``, ``derived``,
    ``suggestions``, ``identity`` and each nodule's ``brock``/``lung_rads``/
    ``growth`` in ``findings`` (edited in place). Every problem with an input
    becomes one line in ``findings["warnings"]``; nothing here aborts the
    analysis except a cancel."""
    from inference.clinical.precision import fill_findings, read_clinical_inputs
    from inference.clinical.scoring import apply_guidelines
    from inference.clinical.suggestions import suggest

    warnings: list[str] = findings.setdefault("warnings", [])
    s = volume.series
    inputs = read_clinical_inputs(
        genomics=[Path(p) for p in genomics],
        labs=[Path(p) for p in labs],
        clinical=Path(clinical) if clinical else None,
        dicom_patient=s.patient if s else None,
        study_date=s.study.date if s else None,
        confirmed_identity=confirm_identity,
    )
    fill_findings(findings, inputs, confirmed_identity=confirm_identity)

    prior_available = False
    findings.setdefault("prior", None)
    if prior is not None:
        res = _analyse_prior(Path(prior), volume, device=device, confirm_identity=confirm_identity,
                             progress=progress, cancel=cancel)
        if isinstance(res, str):
            warnings.append(res)
        else:
            from inference.pipeline.growth import compare_with_prior

            pvol, pimg, pf = res
            warnings.extend(compare_with_prior(
                volume, imaging.nodule_labels, findings, pvol, pimg.nodule_labels, pf,
                current_date=(findings.get("study") or {}).get("date"),
                prior_date=(pf.get("study") or {}).get("date"),
            ))
            prior_block = findings.get("prior") or {}  # compare_with_prior records the registration here
            prior_block.update({"study": pf.get("study"), "series": pf.get("series"),
                                "nodule_count": len(pf.get("nodules") or [])})
            findings["prior"] = prior_block
            prior_available = True

    if cancel is not None and cancel():
        raise CancelledError()
    warnings.extend(apply_guidelines(findings, inputs.facts, prior_available=prior_available))

    try:
        from inference.models.risk import predict_risk

        findings["risk"] = predict_risk(findings, inputs.facts, volume=volume, genomics=findings.get("genomics"),
                                        labs=findings.get("labs"), device=device)
        # each note names its source already ("Risk model: ..."; inference.models.risk.predict_risk)
        warnings.extend(str(n) for n in findings["risk"].get("notes") or [])
    except ClinviewError as e:  # altered/missing weights: the guideline scores still stand
        findings["risk"] = None
        warnings.append(f"deep risk model not run: {e.one_line()}")
    findings["suggestions"] = suggest(findings, inputs)
