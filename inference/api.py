"""The small surface the viewer and the CLI call.

Everything here is headless, Qt-free and importable without torch: heavy
modules are imported inside the functions so that ``import inference.api``
stays cheap (the GUI imports it at start-up).

Long operations take two optional keyword arguments:

``progress``
    ``Callable[[Progress], None]`` called with a fraction 0..1 and a message.
``cancel``
    ``Callable[[], bool]``; polled between steps; when it returns ``True`` the
    operation raises :class:`inference.errors.CancelledError`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from inference.types import DemoPatient, ModelCard, Progress, ScanResult, SeriesInfo, Volume

__all__ = [
    "ProgressFn",
    "CancelFn",
    "scan",
    "load_series",
    "analyze",
    "describe_file",
    "demo_patient",
    "load_analysis",
    "worker_command",
    "analysis_keys",
    "find_reusable_analysis",
    "model_cards",
]

ProgressFn = Callable[[Progress], None]
CancelFn = Callable[[], bool]


def scan(path: str | Path, *, progress: ProgressFn | None = None) -> ScanResult:
    """Index a folder tree, DICOMDIR or ``.zip`` of DICOM (headers only).

    Non-DICOM, truncated and unreadable files are listed in
    :attr:`ScanResult.skipped` with a reason; they never abort the scan.
    """
    from inference.io.dicom_index import scan as _scan

    return _scan(Path(path), progress=progress)


def load_series(
    source: SeriesInfo | str | Path,
    *,
    series_uid: str | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> Volume:
    """Load one series into a :class:`Volume` (HU for CT, LPS geometry).

    ``source`` is a :class:`SeriesInfo` from :func:`scan`, or a path to a
    folder/archive; with a path holding several series, ``series_uid`` picks
    one, otherwise the largest image series is taken and a warning says so.
    Real-world deviations (gaps, duplicates, tilt ...) come back in
    :attr:`Volume.warnings`.
    """
    from inference.io.dicom_series import load_series as _load

    return _load(source, series_uid=series_uid, progress=progress, cancel=cancel)


def analyze(
    study: str | Path,
    out_dir: str | Path,
    *,
    series_uid: str | None = None,
    genomics: Sequence[str | Path] = (),
    labs: Sequence[str | Path] = (),
    clinical: str | Path | None = None,
    prior: str | Path | None = None,
    device: str = "auto",
    confirm_identity: bool = False,
    review: str | Path | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> dict[str, Any]:
    """Run the whole pipeline and write ``findings.json`` (+ label maps) to
    ``out_dir`` as ``../shared/docs/findings-contract.md`` specifies.
    Returns the findings dictionary.

    ``confirm_identity``: the user has checked that inputs whose patient
    identity differs from the CT's belong to the same person; without it such
    inputs are reported and left out, never combined silently.

    ``review``: the reader's saved review of the series (``review.json``): its
    decisions are applied before any score is computed."""
    from inference.pipeline.analyze import analyze as _analyze

    return _analyze(
        Path(study),
        Path(out_dir),
        series_uid=series_uid,
        genomics=[Path(p) for p in genomics],
        labs=[Path(p) for p in labs],
        clinical=Path(clinical) if clinical else None,
        prior=Path(prior) if prior else None,
        device=device,
        confirm_identity=confirm_identity,
        review=Path(review) if review else None,
        progress=progress,
        cancel=cancel,
    )


def describe_file(path: str | Path) -> tuple[list[str], bool]:
    """For ``clinview info`` on a non-DICOM clinical file (VCF, MAF, biomarker
    table, labs CSV, FHIR Bundle): lines describing what was read and what was
    skipped with reasons, and whether the file is usable."""
    from inference.io.clinical_files import describe_file as _describe

    return _describe(Path(path))


def demo_patient() -> DemoPatient:
    """The synthetic demo patient, generated into the user cache on first use."""
    from inference.synth.demo import ensure_demo_patient

    return ensure_demo_patient()


def load_analysis(out_dir: str | Path, volume: Volume) -> tuple[dict[str, Any], np.ndarray | None, np.ndarray | None]:
    """Read what :func:`analyze` wrote: ``(findings, nodule_labels, lung_labels)``;
    label maps are ``(z, y, x)`` arrays aligned with ``volume`` (None if absent)."""
    import json

    from inference.io.nifti import read_label_map

    out = Path(out_dir)
    findings = json.loads((out / "findings.json").read_text())
    nod = out / "nodules.nii.gz"
    lun = out / "lungs.nii.gz"
    return (
        findings,
        read_label_map(nod, volume) if nod.exists() else None,
        read_label_map(lun, volume) if lun.exists() else None,
    )


def worker_command() -> list[str]:
    """argv that starts the background worker process (JSON request on stdin,
    JSON-lines progress/result on stdout; see :mod:`inference.worker`)."""
    import sys

    return [sys.executable, "-m", "inference.worker"]


def analysis_keys(request: dict[str, Any]) -> tuple[str | None, str | None]:
    """Fingerprints of what an analysis request depends on, with and without the reader's review
    (see :mod:`inference.analysis_cache`); None: not reusable."""
    from inference.analysis_cache import analysis_keys as _keys

    return _keys(request)


def find_reusable_analysis(root: str | Path, request: dict[str, Any]) -> tuple[Path | None, bool]:
    """The newest finished analysis below ``root`` of ``request`` (its ``cache_key``), or else of the same
    inputs (its ``inputs_key``) made with another saved review or none: ``(folder or None, made with this
    review)``."""
    from inference.analysis_cache import find_reusable

    # without a review the inputs key is the cache key: only an exact match is searched for
    return find_reusable(Path(root), request.get("cache_key"), request.get("inputs_key") if request.get("review") else None)


def model_cards() -> list[ModelCard]:
    """A card for every shipped model: version, weights checked against their SHA-256, what it was trained
    and tested on, and its limitations (:mod:`inference.models.cards`)."""
    from inference.models.cards import model_cards as _cards

    return _cards()
