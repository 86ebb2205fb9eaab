"""Write a CT volume as a DICOM CT Image Storage series (one file per slice).

Why complete headers: the demo patient and the integration tests go through
the same DICOM loader as real studies, so every module a loader relies on is
filled (patient, general study, general series, frame of reference, general
equipment, general image, image plane, image pixel, CT image, VOI LUT, SOP
common). UIDs are derived from the caller's identifiers with
``pydicom.uid.generate_uid(entropy_srcs=...)`` and no clock is read, so the
same inputs give the same bytes.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID, generate_uid

from inference.types import PatientInfo, Volume

__all__ = ["write_ct_series", "derive_uid"]

_KERNEL_TEXT = {"sharp": "LUNG", "soft": "STANDARD"}


def derive_uid(*parts: object) -> str:
    """A UID that depends only on ``parts`` (deterministic, collision-safe hash)."""
    return str(generate_uid(entropy_srcs=[str(p) for p in parts]))


def _ds_str(v: float) -> str:
    """A DS value (at most 16 characters) that round-trips the float closely."""
    for digits in range(10, 3, -1):
        s = f"{v:.{digits}g}"
        if len(s) <= 16:
            return s
    return f"{v:.4g}"


def _age(birth: date | None, on: date) -> str:
    if birth is None:
        return ""
    years = on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))
    return f"{max(0, min(years, 999)):03d}Y"


def write_ct_series(
    volume_or_phantom: object,
    out_dir: str | Path,
    *,
    patient: PatientInfo,
    study_uid: str,
    series_uid: str,
    study_date: date,
    description: str = "Synthetic chest CT",
    study_description: str = "CT CHEST (synthetic)",
    kernel: str | None = None,
    series_number: int = 1,
    accession_number: str = "",
    study_id: str = "1",
    frame_of_reference_uid: str | None = None,
    kvp: float = 120.0,
    tube_current_ma: int = 200,
    filename_prefix: str = "CT",
) -> list[Path]:
    """Write one file per slice and return their paths (slice order, inferior first).

    Parameters
    ----------
    volume_or_phantom
        A :class:`inference.types.Volume` or a :class:`~inference.synth.phantom.Phantom`
        (HU, ``(z, y, x)``, LPS geometry; any direction matrix).
    out_dir
        Folder to create (files ``CT000001.dcm`` ...).
    patient
        Identity written into every file (PatientID, name, birth date, sex).
    study_uid, series_uid
        Study and series instance UIDs (derive them with :func:`derive_uid`).
    study_date
        StudyDate/SeriesDate/ContentDate; the time is fixed so bytes are stable.
    kernel
        ``"sharp"``/``"soft"`` or a scanner kernel name for ConvolutionKernel;
        taken from a phantom when omitted.
    frame_of_reference_uid
        Defaults to one derived from the study: a follow-up study of the same
        patient has its own frame (the patient was re-positioned).

    Returns
    -------
    list[pathlib.Path]

    Raises
    ------
    ValueError
        If the array is not 3-D.
    """
    vol: Volume = volume_or_phantom.to_volume() if hasattr(volume_or_phantom, "to_volume") else volume_or_phantom  # type: ignore[assignment]
    if getattr(vol, "array", None) is None or vol.array.ndim != 3:
        raise ValueError("write_ct_series needs a 3-D (z, y, x) volume")
    if kernel is None:
        kernel = getattr(volume_or_phantom, "kernel", "") or ""
    kernel_text = _KERNEL_TEXT.get(kernel, kernel or "STANDARD")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    arr = np.asarray(vol.array)
    nz, ny, nx = arr.shape
    sz, sy, sx = (float(v) for v in vol.spacing)
    D = np.asarray(vol.direction, float)
    origin = np.asarray(vol.origin, float)
    row_dir, col_dir, normal = D[:, 0], D[:, 1], D[:, 2]
    for_uid = frame_of_reference_uid or derive_uid("frame", study_uid)
    # unsigned storage with intercept -1024, as most scanners write CT
    intercept = -1024
    stored = np.clip(np.rint(arr).astype(np.int32) - intercept, 0, 4095).astype(np.uint16)
    da = study_date.strftime("%Y%m%d")
    paths: list[Path] = []
    # one dataset, re-used: only the per-slice elements change between files
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = "CLINVIEW_SYNTH"
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CTImageStorage
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = da
    ds.StudyTime = ds.SeriesTime = "093000"
    ds.AccessionNumber = accession_number
    ds.Modality = "CT"
    ds.Manufacturer = "clinview synthetic phantom"
    ds.ManufacturerModelName = "clinview.synth"
    ds.InstitutionName = "SYNTHETIC - NOT A REAL PATIENT"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = study_description
    ds.SeriesDescription = description
    ds.PatientName = patient.name or ""
    ds.PatientID = patient.patient_id or ""
    ds.PatientBirthDate = patient.birth_date.strftime("%Y%m%d") if patient.birth_date else ""
    ds.PatientSex = patient.sex or ""
    ds.PatientAge = _age(patient.birth_date, study_date)
    ds.PatientIdentityRemoved = "NO"
    ds.BodyPartExamined = "CHEST"
    ds.SliceThickness = _ds_str(sz)
    ds.KVP = _ds_str(kvp)
    ds.DataCollectionDiameter = _ds_str(500.0)
    ds.ReconstructionDiameter = _ds_str(float(nx) * sx)
    ds.GantryDetectorTilt = "0"
    ds.TableHeight = "150"
    ds.RotationDirection = "CW"
    ds.XRayTubeCurrent = int(tube_current_ma)
    ds.Exposure = int(round(tube_current_ma * 0.5))
    ds.ConvolutionKernel = kernel_text
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = study_id
    ds.SeriesNumber = int(series_number)
    ds.AcquisitionNumber = 1
    ds.ImageOrientationPatient = [_ds_str(float(v)) for v in (*row_dir, *col_dir)]
    ds.FrameOfReferenceUID = for_uid
    ds.PositionReferenceIndicator = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ny
    ds.Columns = nx
    ds.PixelSpacing = [_ds_str(sy), _ds_str(sx)]
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.WindowCenter = ["-600", "40"]
    ds.WindowWidth = ["1500", "400"]
    ds.WindowCenterWidthExplanation = ["LUNG", "MEDIASTINUM"]
    ds.RescaleIntercept = str(intercept)
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    ds.BurnedInAnnotation = "NO"
    for k in range(nz):
        pos = origin + normal * sz * k
        sop_uid = derive_uid("sop", series_uid, k)
        meta.MediaStorageSOPInstanceUID = sop_uid
        ds.SOPInstanceUID = sop_uid
        ds.AcquisitionTime = ds.ContentTime = f"0930{min(59, k // 100):02d}"
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [_ds_str(float(v)) for v in pos]
        ds.SliceLocation = _ds_str(float(pos @ normal))
        ds.PixelData = stored[k].tobytes()
        p = out / f"{filename_prefix}{k + 1:06d}.dcm"
        pydicom.dcmwrite(p, ds, enforce_file_format=True)
        paths.append(p)
    return paths
