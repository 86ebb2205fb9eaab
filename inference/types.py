"""Small frozen dataclasses that cross the boundary between core, CLI and viewer.

Conventions (see ``../shared/docs/architecture.md``):

* arrays are indexed ``(z, y, x)``;
* world coordinates are DICOM patient **LPS** in millimetres;
* :attr:`Volume.affine` maps a homogeneous voxel index written ``(x, y, z, 1)``
  -- i.e. ``(i, j, k, 1)``, the ITK/NIfTI order -- to LPS ``(x, y, z, 1)``.
  Because that order trips people up, use :meth:`Volume.voxel_to_lps` and
  :meth:`Volume.lps_to_voxel`, which take and return ``(z, y, x)`` indices.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal

import numpy as np

__all__ = [
    "Issue",
    "PatientInfo",
    "StudyInfo",
    "SeriesInfo",
    "SkippedFile",
    "ScanResult",
    "Volume",
    "ClinicalFacts",
    "Progress",
    "DemoPatient",
    "ModelCard",
]


@dataclass(frozen=True)
class Issue:
    """A problem with one input, returned as data instead of raised.

    Real-world files deviate from the standard all the time; the loaders keep
    going and report what they noticed, so the user sees one line per problem
    and everything else still loads.
    """

    message: str
    path: str | None = None
    line: int | None = None
    code: str = "warning"

    def one_line(self) -> str:
        """The message as shown to a user: ``path:line: message``."""
        where = ""
        if self.path:
            where = f"{self.path}:{self.line}: " if self.line is not None else f"{self.path}: "
        return f"{where}{self.message}".replace("\n", " ")

    def __str__(self) -> str:
        return self.one_line()


@dataclass(frozen=True)
class PatientInfo:
    """Patient identity as read from one source (DICOM, VCF, FHIR ...)."""

    patient_id: str | None = None
    name: str | None = None
    birth_date: date | None = None
    sex: Literal["F", "M", "O"] | None = None
    age_years: float | None = None


@dataclass(frozen=True)
class StudyInfo:
    study_instance_uid: str
    date: date | None = None
    description: str = ""
    accession_number: str = ""


@dataclass(frozen=True)
class SeriesInfo:
    """Header-only description of one series: enough to list it and load it."""

    series_instance_uid: str
    modality: str
    patient: PatientInfo
    study: StudyInfo
    description: str = ""
    series_number: int | None = None
    kernel: str = ""
    frame_of_reference_uid: str = ""
    files: tuple[Path, ...] = ()
    rows: int | None = None
    columns: int | None = None
    slice_thickness_mm: float | None = None
    pixel_spacing_mm: tuple[float, float] | None = None
    image_orientation: tuple[float, ...] | None = None
    number_of_frames: int = 1
    transfer_syntax_uid: str = ""

    @property
    def n_images(self) -> int:
        """Number of 2D images (files × frames for single-frame series)."""
        return len(self.files) * self.number_of_frames


@dataclass(frozen=True)
class SkippedFile:
    path: Path
    reason: str

    def one_line(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass(frozen=True)
class ScanResult:
    """What a folder holds: series grouped by patient and study, plus every file
    that was skipped with its reason (never an abort)."""

    root: Path
    series: tuple[SeriesInfo, ...]
    skipped: tuple[SkippedFile, ...] = ()

    def patients(self) -> dict[str, dict[str, list[SeriesInfo]]]:
        """``{patient_id: {study_uid: [series, ...]}}`` in a stable order."""
        out: dict[str, dict[str, list[SeriesInfo]]] = {}
        for s in self.series:
            pid = s.patient.patient_id or "(no PatientID)"
            out.setdefault(pid, {}).setdefault(s.study.study_instance_uid, []).append(s)
        return out


@dataclass(frozen=True, eq=False)
class Volume:
    """A 3D image in patient space.

    ``array`` holds stored values after the per-slice rescale (HU for CT),
    indexed ``(z, y, x)``, sorted along the slice normal. ``direction`` is the
    3×3 matrix whose **columns** are the LPS unit vectors of the x (column),
    y (row) and z (slice) index axes -- the same matrix SimpleITK's
    ``GetDirection()`` returns in row-major order.
    """

    array: np.ndarray
    spacing: tuple[float, float, float]  # (z, y, x) in mm
    origin: tuple[float, float, float]  # LPS (x, y, z) of voxel (0, 0, 0), mm
    direction: np.ndarray  # 3x3, columns = LPS directions of index axes x, y, z
    series: SeriesInfo | None = None
    warnings: tuple[Issue, ...] = ()

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.array.shape)  # type: ignore[return-value]

    @property
    def affine(self) -> np.ndarray:
        """4×4 matrix: ``(i, j, k, 1)`` (= x, y, z index) → LPS ``(x, y, z, 1)``."""
        a = np.eye(4)
        sz, sy, sx = self.spacing
        a[:3, :3] = np.asarray(self.direction, float) @ np.diag([sx, sy, sz])
        a[:3, 3] = self.origin
        return a

    def voxel_to_lps(self, zyx: Any) -> np.ndarray:
        """Continuous ``(z, y, x)`` index (or an ``(N, 3)`` array) → LPS mm."""
        p = np.asarray(zyx, float)
        ijk = p[..., ::-1]
        a = self.affine
        return ijk @ a[:3, :3].T + a[:3, 3]

    def lps_to_voxel(self, xyz: Any) -> np.ndarray:
        """LPS mm (or ``(N, 3)``) → continuous ``(z, y, x)`` index."""
        p = np.asarray(xyz, float)
        a = self.affine
        ijk = (p - a[:3, 3]) @ np.linalg.inv(a[:3, :3]).T
        return ijk[..., ::-1]

    @property
    def voxel_volume_mm3(self) -> float:
        return float(np.prod(self.spacing))

    def with_array(self, array: np.ndarray) -> "Volume":
        """Same geometry, new voxels (e.g. a label map aligned with this CT)."""
        if array.shape != self.array.shape:
            raise ValueError(f"shape {array.shape} does not match volume {self.array.shape}")
        return dataclasses.replace(self, array=array)


@dataclass(frozen=True)
class ClinicalFacts:
    """Clinical context for risk scores. ``None`` means *not known*: consumers
    must say what they assumed instead of silently filling a default."""

    age_years: float | None = None
    sex: Literal["F", "M", "O"] | None = None
    smoking_status: Literal["never", "former", "current"] | None = None
    pack_years: float | None = None
    years_since_quit: float | None = None
    family_history_lung_cancer: bool | None = None
    emphysema: bool | None = None
    known_cancer: bool | None = None
    immunocompromised: bool | None = None
    screening: bool | None = None  # True: lung-cancer screening context (Lung-RADS, not Fleischner)
    source: str = ""
    patient: PatientInfo | None = None
    issues: tuple[Issue, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Progress:
    """One step of a long job: fraction 0..1 and a human message."""

    fraction: float
    message: str = ""


@dataclass(frozen=True)
class DemoPatient:
    """Paths of the bundled synthetic demo patient (one consistent identity)."""

    patient_id: str
    root: Path
    baseline_dir: Path  # DICOM CT, baseline study
    followup_dir: Path  # DICOM CT, 12-month follow-up study
    vcf: Path  # tumour VCF (somatic EGFR + germline DPYD ...)
    labs_fhir: Path  # FHIR R4 Bundle (Patient + lab Observations)
    labs_csv: Path  # the same labs as CSV
    clinical_fhir: Path  # FHIR R4 Bundle: smoking, family history ...
    truth_json: Path  # ground truth of every nodule in both studies


@dataclass(frozen=True)
class ModelCard:
    """One shipped model as its card shows it (:func:`inference.api.model_cards`).

    ``sections`` maps a heading ("Trained on", "Tested on ...") to its lines, in
    order; ``weights_check`` is ``"verified ..."``, ``"MISMATCH ..."`` or a note
    for a model without learned weights; ``limitations`` are the model's own
    words on where it is weak; ``problem`` is set, and the rest mostly empty,
    when the model's files cannot be read.
    """

    name: str
    version: str
    task: str = ""
    intended_use: str = ""
    weights_check: str = ""
    limitations: list[str] = field(default_factory=list)
    sections: dict[str, list[str]] = field(default_factory=dict)
    problem: str | None = None
