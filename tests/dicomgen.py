"""Write small synthetic DICOM series for tests (CT, MR, 2D, multi-frame, edge cases).

Why a generator instead of checked-in files: every test states the geometry it
expects (spacing, origin, direction, HU) in code, writes real DICOM files with
pydicom into ``tmp_path`` and checks the loader against those numbers, so the
expected values never come from the code under test.

Geometry conventions are the project's (see :mod:`inference.types`):

* ``array_zyx`` is indexed ``(z, y, x)`` and holds **HU** (rescaled values);
* ``spacing`` is ``(z, y, x)`` in mm;
* ``origin`` is the LPS position ``(x, y, z)`` of voxel ``(0, 0, 0)``;
* ``direction`` is a 3×3 matrix whose **columns** are the LPS unit vectors of
  the x (column), y (row) and z (slice) index axes -- SimpleITK's
  ``GetDirection()`` reshaped to 3×3.

Typical use::

    from tests.dicomgen import write_ct_series, phantom
    files = write_ct_series(tmp_path / "ct", phantom((8, 32, 32)), spacing=(2.5, 0.7, 0.7))
"""

from __future__ import annotations

import random
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    PYDICOM_IMPLEMENTATION_UID,
    RLELossless,
    UID,
    generate_uid,
)

__all__ = [
    "CT_IMAGE_STORAGE",
    "MR_IMAGE_STORAGE",
    "ENHANCED_CT_STORAGE",
    "DX_IMAGE_STORAGE",
    "phantom",
    "slice_positions",
    "write_ct_series",
    "write_enhanced_ct",
    "write_2d_image",
    "write_zero_byte",
    "write_random_binary",
    "write_truncated_copy",
    "zip_folder",
    "write_dicomdir",
    "ExplicitVRLittleEndian",
    "ImplicitVRLittleEndian",
    "RLELossless",
]

CT_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.2")
MR_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.4")
PT_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.128")
ENHANCED_CT_STORAGE = UID("1.2.840.10008.5.1.4.1.1.2.1")
DX_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.1.1")
CR_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.1")
_SOP_BY_MODALITY = {"CT": CT_IMAGE_STORAGE, "MR": MR_IMAGE_STORAGE, "PT": PT_IMAGE_STORAGE}


def phantom(shape_zyx: tuple[int, int, int], *, seed: int = 0) -> np.ndarray:
    """A small chest-like HU volume: air outside, a soft-tissue body, two lungs
    at -850 HU, a 'nodule' and mild noise. Values are integers in int16 range.

    Asymmetric on purpose (the nodule sits in one lung, near the top slices), so
    a flipped or reordered axis changes the array and tests notice.
    """
    nz, ny, nx = shape_zyx
    z, y, x = np.meshgrid(
        np.linspace(-1, 1, nz), np.linspace(-1, 1, ny), np.linspace(-1, 1, nx), indexing="ij"
    )
    vol = np.full(shape_zyx, -1000.0)
    vol[(x / 0.9) ** 2 + (y / 0.7) ** 2 < 1] = 40.0
    for cx in (-0.4, 0.4):
        vol[((x - cx) / 0.3) ** 2 + (y / 0.5) ** 2 < 1] = -850.0
    vol[((x + 0.4) ** 2 + (y + 0.1) ** 2 + (z + 0.5) ** 2) < 0.15**2] = 30.0
    vol[((x) ** 2 + (y - 0.45) ** 2) < 0.08**2] = 700.0  # spine-ish bone
    rng = np.random.default_rng(seed)
    vol += rng.normal(0, 10, size=shape_zyx)
    return np.round(vol).astype(np.int16)


def slice_positions(
    n: int,
    spacing_z: float,
    origin: Sequence[float] = (0.0, 0.0, 0.0),
    direction: np.ndarray | None = None,
    *,
    tilt_deg: float = 0.0,
) -> np.ndarray:
    """LPS ImagePositionPatient of each slice, ``(n, 3)``.

    With ``tilt_deg`` the stack is sheared like a tilted gantry: slices keep the
    in-plane orientation of ``direction`` but each one moves along the row (y)
    axis by ``spacing_z * tan(tilt)``, so the line joining slice origins is no
    longer the slice normal.
    """
    d = np.eye(3) if direction is None else np.asarray(direction, float)
    o = np.asarray(origin, float)
    k = np.arange(n, dtype=float)[:, None]
    step = spacing_z * d[:, 2] + spacing_z * np.tan(np.radians(tilt_deg)) * d[:, 1]
    return o + k * step


def _stored_values(hu: np.ndarray, slope: float, intercept: float) -> np.ndarray:
    stored = np.round((np.asarray(hu, float) - intercept) / slope)
    if stored.min() < -32768 or stored.max() > 32767:
        raise ValueError("HU values do not fit int16 with this slope/intercept")
    return stored.astype(np.int16)


def _base_dataset(
    *,
    sop_class: UID,
    modality: str,
    patient_id: str,
    patient_name: str,
    study_uid: str,
    series_uid: str,
    frame_of_reference_uid: str,
    series_number: int,
    series_description: str,
    study_description: str,
    study_date: str,
    transfer_syntax: UID,
) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = transfer_syntax
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    ds.PatientID = patient_id
    ds.PatientName = patient_name
    ds.PatientBirthDate = "19560314"
    ds.PatientSex = "F"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = frame_of_reference_uid
    ds.StudyDate = study_date
    ds.SeriesDate = study_date
    ds.StudyTime = "101500"
    ds.StudyDescription = study_description
    ds.SeriesDescription = series_description
    ds.SeriesNumber = series_number
    ds.AccessionNumber = "ACC" + patient_id[-6:]
    ds.StudyID = "1"
    ds.Manufacturer = "clinview-tests"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    return ds


def _save(ds: Dataset, path: Path, pixels: np.ndarray, transfer_syntax: UID) -> None:
    """Attach ``pixels`` (int16, (rows, cols) or (frames, rows, cols)) and save."""
    if transfer_syntax.is_compressed:
        ds.compress(transfer_syntax, np.ascontiguousarray(pixels), generate_instance_uid=False)
    else:
        ds.PixelData = np.ascontiguousarray(pixels, dtype="<i2").tobytes()
        ds["PixelData"].VR = "OW"
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def write_ct_series(
    out_dir: str | Path,
    array_zyx: np.ndarray,
    spacing: Sequence[float] = (2.5, 0.75, 0.75),
    origin: Sequence[float] = (-12.0, -12.0, -40.0),
    direction: np.ndarray | Sequence[float] | None = None,
    *,
    patient_id: str = "SYNTH0001",
    patient_name: str = "Synthetic^Patient",
    study_uid: str | None = None,
    series_uid: str | None = None,
    frame_of_reference_uid: str | None = None,
    modality: str = "CT",
    series_number: int = 1,
    series_description: str = "synthetic chest CT",
    study_description: str = "CT chest",
    study_date: str = "20240115",
    kernel: str = "B70f",
    shuffle_names: bool = True,
    transfer_syntax: str = ExplicitVRLittleEndian,
    rescale: tuple[float, float] | None = (1.0, -1024.0),
    per_slice_rescale: Sequence[tuple[float, float]] | None = None,
    positions: np.ndarray | Sequence[Sequence[float]] | None = None,
    tilt_deg: float = 0.0,
    instance_numbers: Sequence[int] | None = None,
    seed: int = 0,
    name_prefix: str = "",
) -> list[Path]:
    """Write one series, one file per slice, and return the paths in **slice
    order** (index ``k`` holds ``array_zyx[k]``) -- whatever the file names are.

    Parameters
    ----------
    out_dir
        Folder to write into (created).
    array_zyx
        HU values ``(z, y, x)``; stored as int16 after the rescale.
    spacing, origin, direction
        Geometry; see the module docstring. ``direction`` may be a flat
        9-sequence (row-major, as SimpleITK gives it) or a 3×3 array.
    study_uid, series_uid, frame_of_reference_uid
        Fresh UIDs when ``None``; pass the same ``study_uid`` to put several
        series in one study.
    modality
        ``"CT"``, ``"MR"`` or ``"PT"`` (sets the SOP class).
    shuffle_names
        Random file names (``IMG_<random>.dcm``) so that any loader sorting by
        file name or by directory order gets the stack wrong.
    transfer_syntax
        Any syntax pydicom can encode: Explicit/Implicit VR little endian,
        ``RLELossless``, ``JPEGLSLossless`` (both tested). The installed
        openjpeg refuses to encode these signed 16-bit slices as
        ``JPEG2000Lossless``; pydicom's JPEG 2000 test files cover decoding.
    rescale
        ``(slope, intercept)`` for every slice; ``None`` writes no rescale tags
        (stored value = array value).
    per_slice_rescale
        One ``(slope, intercept)`` per slice; overrides ``rescale``. Real
        scanners do vary these per slice, and a loader that reads them from the
        first file only gets wrong HU.
    positions
        Explicit ImagePositionPatient per slice (``(n, 3)`` LPS) for gaps,
        duplicates or irregular spacing; default from :func:`slice_positions`.
    tilt_deg
        Gantry tilt (sets GantryDetectorTilt and shears the positions).
    instance_numbers
        InstanceNumber per slice; default ``1..n`` in slice order. Pass a
        shuffled or reversed list to check that the loader ignores it.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    arr = np.asarray(array_zyx)
    if arr.ndim != 3:
        raise ValueError("array_zyx must be 3D (z, y, x)")
    nz, ny, nx = arr.shape
    sz, sy, sx = (float(v) for v in spacing)
    d = np.eye(3) if direction is None else np.asarray(direction, float).reshape(3, 3)
    pos = (
        slice_positions(nz, sz, origin, d, tilt_deg=tilt_deg)
        if positions is None
        else np.asarray(positions, float).reshape(nz, 3)
    )
    study_uid = study_uid or generate_uid()
    series_uid = series_uid or generate_uid()
    for_uid = frame_of_reference_uid or generate_uid()
    ts = UID(transfer_syntax)
    sop = _SOP_BY_MODALITY.get(modality, CT_IMAGE_STORAGE)
    rng = random.Random(seed)
    inst = list(instance_numbers) if instance_numbers is not None else list(range(1, nz + 1))
    paths: list[Path] = []
    used: set[str] = set()
    for k in range(nz):
        ds = _base_dataset(
            sop_class=sop,
            modality=modality,
            patient_id=patient_id,
            patient_name=patient_name,
            study_uid=study_uid,
            series_uid=series_uid,
            frame_of_reference_uid=for_uid,
            series_number=series_number,
            series_description=series_description,
            study_description=study_description,
            study_date=study_date,
            transfer_syntax=ts,
        )
        ds.InstanceNumber = int(inst[k])
        ds.Rows, ds.Columns = ny, nx
        ds.PixelSpacing = [sy, sx]  # DICOM order: row spacing (between rows = y), column spacing
        ds.SliceThickness = sz
        ds.ImageOrientationPatient = [float(v) for v in (*d[:, 0], *d[:, 1])]
        ds.ImagePositionPatient = [float(v) for v in pos[k]]
        ds.SliceLocation = float(pos[k] @ np.cross(d[:, 0], d[:, 1]))
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        if modality == "CT":
            ds.ConvolutionKernel = kernel
            ds.KVP = 120
        if tilt_deg:
            ds.GantryDetectorTilt = float(tilt_deg)
        sr = per_slice_rescale[k] if per_slice_rescale is not None else rescale
        if sr is not None:
            slope, intercept = sr
            ds.RescaleSlope = slope
            ds.RescaleIntercept = intercept
            if modality == "CT":
                ds.RescaleType = "HU"
            stored = _stored_values(arr[k], slope, intercept)
        else:
            stored = _stored_values(arr[k], 1.0, 0.0)
        if shuffle_names:
            while True:
                name = f"{name_prefix}IMG_{rng.getrandbits(40):010x}.dcm"
                if name not in used:
                    break
        else:
            name = f"{name_prefix}{k + 1:04d}.dcm"
        used.add(name)
        p = out / name
        _save(ds, p, stored, ts)
        paths.append(p)
    return paths


def write_enhanced_ct(
    path: str | Path,
    array_zyx: np.ndarray,
    spacing: Sequence[float] = (2.0, 0.8, 0.8),
    origin: Sequence[float] = (-10.0, -10.0, 20.0),
    direction: np.ndarray | Sequence[float] | None = None,
    *,
    patient_id: str = "SYNTH0001",
    study_uid: str | None = None,
    series_uid: str | None = None,
    frame_order: Sequence[int] | None = None,
    rescale: tuple[float, float] = (1.0, -1024.0),
    transfer_syntax: str = ExplicitVRLittleEndian,
) -> Path:
    """Write an Enhanced CT (multi-frame, per-frame functional groups) file.

    ``frame_order`` stores slice ``frame_order[f]`` as frame ``f`` (default:
    reversed), so a loader must sort frames by their PlanePositionSequence,
    not by frame number.
    """
    arr = np.asarray(array_zyx)
    nz, ny, nx = arr.shape
    sz, sy, sx = (float(v) for v in spacing)
    d = np.eye(3) if direction is None else np.asarray(direction, float).reshape(3, 3)
    pos = slice_positions(nz, sz, origin, d)
    order = list(frame_order) if frame_order is not None else list(range(nz))[::-1]
    ts = UID(transfer_syntax)
    ds = _base_dataset(
        sop_class=ENHANCED_CT_STORAGE,
        modality="CT",
        patient_id=patient_id,
        patient_name="Synthetic^Patient",
        study_uid=study_uid or generate_uid(),
        series_uid=series_uid or generate_uid(),
        frame_of_reference_uid=generate_uid(),
        series_number=7,
        series_description="enhanced CT",
        study_description="CT chest",
        study_date="20240115",
        transfer_syntax=ts,
    )
    ds.InstanceNumber = 1
    ds.Rows, ds.Columns = ny, nx
    ds.NumberOfFrames = nz
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL", "NONE"]
    shared = Dataset()
    pm = Dataset()
    pm.PixelSpacing = [sy, sx]
    pm.SliceThickness = sz
    pm.SpacingBetweenSlices = sz
    shared.PixelMeasuresSequence = DicomSequence([pm])
    po = Dataset()
    po.ImageOrientationPatient = [float(v) for v in (*d[:, 0], *d[:, 1])]
    shared.PlaneOrientationSequence = DicomSequence([po])
    pv = Dataset()
    pv.RescaleSlope, pv.RescaleIntercept = rescale
    pv.RescaleType = "HU"
    shared.PixelValueTransformationSequence = DicomSequence([pv])
    ct = Dataset()
    ct.ConvolutionKernel = "FC07"
    shared.CTReconstructionSequence = DicomSequence([ct])
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
    per_frame = []
    frames = np.empty((nz, ny, nx), np.int16)
    for f, k in enumerate(order):
        fg = Dataset()
        pp = Dataset()
        pp.ImagePositionPatient = [float(v) for v in pos[k]]
        fg.PlanePositionSequence = DicomSequence([pp])
        fc = Dataset()
        fc.InStackPositionNumber = k + 1
        fc.StackID = "1"
        fg.FrameContentSequence = DicomSequence([fc])
        per_frame.append(fg)
        frames[f] = _stored_values(arr[k], *rescale)
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(per_frame)
    p = Path(path)
    _save(ds, p, frames, ts)
    return p


def write_2d_image(
    path: str | Path,
    array_yx: np.ndarray,
    *,
    modality: str = "DX",
    pixel_spacing: tuple[float, float] = (0.2, 0.2),
    patient_id: str = "SYNTH0001",
    study_uid: str | None = None,
) -> Path:
    """Write a projection radiograph (DX/CR): 2D pixels, no ImagePositionPatient
    or orientation (real DX files often lack them), unsigned 16-bit."""
    arr = np.asarray(array_yx)
    sop = DX_IMAGE_STORAGE if modality == "DX" else CR_IMAGE_STORAGE
    ds = _base_dataset(
        sop_class=sop,
        modality=modality,
        patient_id=patient_id,
        patient_name="Synthetic^Patient",
        study_uid=study_uid or generate_uid(),
        series_uid=generate_uid(),
        frame_of_reference_uid=generate_uid(),
        series_number=50,
        series_description="chest PA",
        study_description="chest x-ray",
        study_date="20240110",
        transfer_syntax=ExplicitVRLittleEndian,
    )
    del ds.FrameOfReferenceUID
    ds.PixelRepresentation = 0
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.Rows, ds.Columns = arr.shape
    ds.ImagerPixelSpacing = list(pixel_spacing)
    ds.InstanceNumber = 1
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    ds.PixelData = np.ascontiguousarray(arr, dtype="<u2").tobytes()
    ds["PixelData"].VR = "OW"
    ds.save_as(p, enforce_file_format=True)
    return p


def write_zero_byte(path: str | Path) -> Path:
    """An empty file named like DICOM (a failed copy)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"")
    return p


def write_random_binary(path: str | Path, n_bytes: int = 4096, *, seed: int = 1) -> Path:
    """Random bytes in a ``.dcm`` file (not DICOM at all)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(np.random.default_rng(seed).integers(0, 256, n_bytes, dtype=np.uint8).tobytes())
    return p


def write_truncated_copy(src: str | Path, dst: str | Path, *, keep_fraction: float = 0.5) -> Path:
    """Copy the first ``keep_fraction`` of a DICOM file (an interrupted transfer:
    header intact, pixel data cut short)."""
    data = Path(src).read_bytes()
    p = Path(dst)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data[: max(1, int(len(data) * keep_fraction))])
    return p


def zip_folder(folder: str | Path, zip_path: str | Path, *, arc_prefix: str = "export/") -> Path:
    """Zip every file under ``folder`` (as PACS exports and e-mail attachments do)."""
    folder = Path(folder)
    zp = Path(zip_path)
    zp.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                zf.write(f, arc_prefix + f.relative_to(folder).as_posix())
    return zp


def write_dicomdir(files: Sequence[str | Path], out_dir: str | Path) -> Path:
    """Copy ``files`` into a DICOM File-set under ``out_dir`` (media layout with
    8-character IDs, as on a patient CD) and write its DICOMDIR; returns the
    DICOMDIR path."""
    from pydicom.fileset import FileSet

    fs = FileSet()
    for f in files:
        fs.add(pydicom.dcmread(f))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fs.write(out)
    return out / "DICOMDIR"
