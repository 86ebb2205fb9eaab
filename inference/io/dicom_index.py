"""Index a folder tree, a DICOMDIR or a ``.zip`` of DICOM: headers only.

Why headers only: a CD or PACS export holds thousands of files and the user
first wants to see *what* is there (patient → study → series) before paying
for pixels. Plain little-endian files are read with the minimal tag walker of
:mod:`inference.io.dicom_fastread`; everything else with pydicom
(``stop_before_pixels``). A file that is not DICOM, is empty, truncated or
unreadable never aborts the scan: it is listed in :attr:`ScanResult.skipped`
with a one-line reason.

Within one SeriesInstanceUID, images of different size or orientation (a
scout in the axial series, a reformat saved under the same UID) are split
into sub-series, each a :class:`SeriesInfo` with the same UID and a
description saying "part i of n", so that every SeriesInfo is loadable as one
consistent volume.
"""

from __future__ import annotations

import hashlib
import os
import warnings
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from inference.errors import CancelledError
from inference.io.dicom_fastread import (
    DICOMDIR_SOP_CLASS,
    HEADER_KEYWORDS,
    Header,
    TruncatedHeaderError,
    fast_header,
    header_from_dataset,
)
from inference.types import PatientInfo, Progress, ScanResult, SeriesInfo, SkippedFile, StudyInfo

__all__ = [
    "scan",
    "read_header",
    "HeaderError",
    "build_series",
    "series_key_parts",
    "slice_normal",
]

ProgressFn = Callable[[Progress], None]

_FALLBACK_TAGS = [
    *HEADER_KEYWORDS,
    "SharedFunctionalGroupsSequence",
    "PerFrameFunctionalGroupsSequence",
]
# Header cache: (mtime_ns, size) -> Header, so that load_series right after a
# scan does not walk the same headers twice. Bounded; fast headers only (they
# are small and carry the pixel offset the loader needs).
_CACHE: dict[str, tuple[int, int, Header]] = {}
_CACHE_MAX = 50_000


class HeaderError(Exception):
    """A file cannot be indexed; ``reason`` is the one-line explanation."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _looks_like_raw_dicom(head: bytes) -> bool:
    """A DICOM dataset written without preamble ("raw" or ACR-NEMA style)
    starts with a group 0x0002 or 0x0008 element, little or big endian."""
    if len(head) < 8:
        return False
    g_le = int.from_bytes(head[0:2], "little")
    g_be = int.from_bytes(head[0:2], "big")
    return g_le in (0x0002, 0x0008) or g_be in (0x0002, 0x0008)


def read_header(path: Path) -> Header:
    """The header of one file, fast path first, pydicom otherwise.

    Raises
    ------
    HeaderError
        With a one-line reason when the file is not usable DICOM (empty, not
        DICOM, truncated header, unreadable); the caller lists it as skipped.
    """
    key = str(path)
    try:
        st = path.stat()
    except OSError as e:
        raise HeaderError(f"unreadable: {e.strerror or e}") from e
    cached = _CACHE.get(key)
    if cached is not None and cached[0] == st.st_mtime_ns and cached[1] == st.st_size:
        return cached[2]
    if st.st_size == 0:
        raise HeaderError("empty file (0 bytes)")
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError as e:
        raise HeaderError(f"unreadable: {e.strerror or e}") from e
    has_prefix = len(head) >= 132 and head[128:132] == b"DICM"
    if not has_prefix and not _looks_like_raw_dicom(head):
        raise HeaderError("not a DICOM file (no 'DICM' marker at byte 128)")
    try:
        h = fast_header(path) if has_prefix else None
    except TruncatedHeaderError as e:
        raise HeaderError(f"truncated: {e}") from e
    if h is not None:
        _validate(h)
        if h.pixel_offset is not None and h.pixel_length is not None and h.pixel_offset + h.pixel_length > st.st_size:
            raise HeaderError(
                f"truncated: pixel data needs {h.pixel_offset + h.pixel_length} bytes, file has {st.st_size}"
            )
        if len(_CACHE) >= _CACHE_MAX:
            _CACHE.clear()
        _CACHE[key] = (st.st_mtime_ns, st.st_size, h)
        return h
    return _pydicom_header(path, force=not has_prefix)


def _pydicom_header(path: Path, *, force: bool) -> Header:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        with warnings.catch_warnings():
            # pydicom warns on every non-conformant value; those files still index
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path, stop_before_pixels=True, force=force, specific_tags=_FALLBACK_TAGS)
    except InvalidDicomError as e:
        raise HeaderError(f"not a DICOM file ({_short(e)})") from e
    except EOFError as e:
        raise HeaderError(f"truncated: file ends inside the header ({_short(e)})") from e
    except (OSError, ValueError, TypeError, KeyError, IndexError, NotImplementedError, AttributeError) as e:
        raise HeaderError(f"unreadable DICOM header: {type(e).__name__}: {_short(e)}") from e
    except Exception as e:  # noqa: BLE001 - pydicom raises assorted errors on corrupt bytes; one bad file must not abort a scan
        raise HeaderError(f"unreadable DICOM header: {type(e).__name__}: {_short(e)}") from e
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # values are converted lazily, on access
        h = header_from_dataset(ds, path)
    if not h.has_pixels and h.get("Rows") and h.get("Columns"):
        h.has_pixels = True  # stop_before_pixels hides PixelData; Rows/Columns mean an image
    if force and not (h.get("SOPClassUID") or h.get("StudyInstanceUID") or h.get("SeriesInstanceUID") or h.get("Rows")):
        raise HeaderError("not a DICOM file (no recognisable DICOM elements)")
    _validate(h)
    return h


def _validate(h: Header) -> None:
    """Checks shared by both readers: an object clinview can place needs a
    SOP Class or Series UID, and "has pixels" needs Rows and Columns too."""
    if not (h.get("SOPClassUID") or h.get("SeriesInstanceUID")):
        raise HeaderError("incomplete header: no SOP Class or Series Instance UID (truncated or not a stored object)")
    if h.has_pixels and not (isinstance(h.get("Rows"), int) and isinstance(h.get("Columns"), int)):
        h.has_pixels = False


def _short(e: BaseException) -> str:
    return str(e).replace("\n", " ").strip()[:200]


# ----------------------------------------------------------------------------
# Grouping


def slice_normal(iop: Iterable[float]) -> np.ndarray | None:
    """Unit normal of an ImageOrientationPatient (row × column), or None."""
    v = np.asarray(tuple(iop), float)
    if v.size != 6 or not np.all(np.isfinite(v)):
        return None
    n = np.cross(v[:3], v[3:])
    norm = np.linalg.norm(n)
    return n / norm if norm > 1e-6 else None


def series_key_parts(h: Header) -> tuple[Any, ...]:
    """What must agree for images to form one volume: size, orientation
    (rounded to 0.01), and single- vs multi-frame."""
    iop = h.get("ImageOrientationPatient")
    ori = tuple(round(float(x), 2) + 0.0 for x in iop) if iop and len(iop) == 6 else None
    frames = int(h.get("NumberOfFrames", 1) or 1)
    return (h.get("Rows"), h.get("Columns"), ori, frames > 1, bool(h.has_pixels))


def _parse_date(s: Any) -> date | None:
    s = str(s or "").strip()
    if len(s) >= 8 and s[:8].isdigit():
        try:
            return date(int(s[:4]), int(s[4:6]), int(s[6:8]))
        except ValueError:
            return None
    return None


def _parse_age(s: Any) -> float | None:
    s = str(s or "").strip()
    if len(s) == 4 and s[:3].isdigit() and s[3] in "DWMY":
        n = int(s[:3])
        return round(n / {"D": 365.25, "W": 52.1775, "M": 12.0, "Y": 1.0}[s[3]], 3)
    return None


def _patient(h: Header) -> PatientInfo:
    sex = str(h.get("PatientSex", "") or "").upper()
    return PatientInfo(
        patient_id=str(h.get("PatientID")) if h.get("PatientID") else None,
        name=str(h.get("PatientName")) if h.get("PatientName") else None,
        birth_date=_parse_date(h.get("PatientBirthDate")),
        sex=sex if sex in ("F", "M", "O") else None,  # type: ignore[arg-type]
        age_years=_parse_age(h.get("PatientAge")),
    )


def _study(h: Header) -> StudyInfo:
    return StudyInfo(
        study_instance_uid=str(h.get("StudyInstanceUID", "") or "(no StudyInstanceUID)"),
        date=_parse_date(h.get("StudyDate")),
        description=str(h.get("StudyDescription", "") or ""),
        accession_number=str(h.get("AccessionNumber", "") or ""),
    )


def _sort_key(h: Header, normal: np.ndarray | None) -> tuple[float, float, str]:
    pos = h.get("ImagePositionPatient")
    d = float(np.dot(np.asarray(pos, float), normal)) if normal is not None and pos and len(pos) == 3 else 0.0
    inst = h.get("InstanceNumber")
    return (d, float(inst) if isinstance(inst, int | float) else 0.0, h.path.name)


def _floats(v: Any, n: int) -> tuple[float, ...] | None:
    if isinstance(v, tuple) and len(v) == n:
        try:
            return tuple(float(x) for x in v)
        except (TypeError, ValueError):
            return None
    return None


def build_series(headers: list[Header]) -> list[SeriesInfo]:
    """Group headers into :class:`SeriesInfo` objects (split by size and
    orientation within a UID), files sorted along the slice normal."""
    by_uid: dict[str, list[Header]] = {}
    for h in headers:
        uid = str(h.get("SeriesInstanceUID", "") or "")
        if not uid:
            uid = f"(no SeriesInstanceUID) {h.get('StudyInstanceUID', '')} #{h.get('SeriesNumber', '')}"
        by_uid.setdefault(uid, []).append(h)
    out: list[SeriesInfo] = []
    for uid, hs in by_uid.items():
        parts: dict[tuple[Any, ...], list[Header]] = {}
        for h in hs:
            parts.setdefault(series_key_parts(h), []).append(h)
        ordered = sorted(parts.values(), key=lambda p: -len(p))
        for i, part in enumerate(ordered):
            out.append(_series_info(uid, part, i, len(ordered)))
    out.sort(
        key=lambda s: (
            s.patient.patient_id or "",
            s.study.date or date.min,
            s.study.study_instance_uid,
            s.series_number if s.series_number is not None else 1 << 30,
            s.series_instance_uid,
            s.description,
        )
    )
    return out


def _series_info(uid: str, hs: list[Header], part: int, n_parts: int) -> SeriesInfo:
    first = hs[0]
    iop = _floats(first.get("ImageOrientationPatient"), 6)
    normal = slice_normal(iop) if iop else None
    hs = sorted(hs, key=lambda h: _sort_key(h, normal))
    first = hs[0]
    ps = _floats(first.get("PixelSpacing"), 2) or _floats(first.get("ImagerPixelSpacing"), 2)
    kernel = first.get("ConvolutionKernel", ())
    kernel_s = "\\".join(str(k) for k in kernel) if isinstance(kernel, tuple) else str(kernel or "")
    desc = str(first.get("SeriesDescription", "") or "")
    rows, cols = first.get("Rows"), first.get("Columns")
    if n_parts > 1:
        shape = f"{cols}×{rows}" if rows else "no image"
        desc = f"{desc} (part {part + 1} of {n_parts}: {shape}, {len(hs)} file{'s' if len(hs) != 1 else ''})".strip()
    st = first.get("SliceThickness")
    sn = first.get("SeriesNumber")
    return SeriesInfo(
        series_instance_uid=uid,
        modality=str(first.get("Modality", "") or "OT"),
        patient=_patient(first),
        study=_study(first),
        description=desc,
        series_number=int(sn) if isinstance(sn, int | float) else None,
        kernel=kernel_s,
        frame_of_reference_uid=str(first.get("FrameOfReferenceUID", "") or ""),
        files=tuple(h.path for h in hs),
        rows=int(rows) if isinstance(rows, int) and first.has_pixels else None,
        columns=int(cols) if isinstance(cols, int) and first.has_pixels else None,
        slice_thickness_mm=float(st) if isinstance(st, int | float) else None,
        pixel_spacing_mm=(ps[0], ps[1]) if ps else None,
        image_orientation=iop,
        number_of_frames=max(int(h.get("NumberOfFrames", 1) or 1) for h in hs),
        transfer_syntax_uid=first.transfer_syntax,
    )


# ----------------------------------------------------------------------------
# Sources: folder, single file, DICOMDIR, zip


@dataclass
class _Sources:
    files: list[Path]
    skipped: list[SkippedFile]
    display: dict[Path, Path]  # extracted path -> path shown to the user


def _is_dicomdir(path: Path) -> bool:
    if path.name.upper() == "DICOMDIR":
        return True
    if not path.is_file():
        return False
    try:
        h = fast_header(path)
    except TruncatedHeaderError:
        return False
    if h is not None:
        return h.media_sop_class == DICOMDIR_SOP_CLASS
    from pydicom.filereader import read_file_meta_info

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            meta = read_file_meta_info(path)
    except Exception:  # noqa: BLE001 - any failure here just means "not a DICOMDIR"
        return False
    return str(meta.get("MediaStorageSOPClassUID", "")) == DICOMDIR_SOP_CLASS


def _dicomdir_files(path: Path) -> _Sources:
    import pydicom

    skipped: list[SkippedFile] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path, force=True)
        records = ds.get("DirectoryRecordSequence") or []
    except Exception as e:  # noqa: BLE001 - a corrupt DICOMDIR is reported, never raised
        # fall back to walking the folder the DICOMDIR lives in
        src = _walk_folder(path.parent)
        src.skipped.append(SkippedFile(path, f"unreadable DICOMDIR ({_short(e)}); scanned its folder instead"))
        return src
    files: list[Path] = []
    seen: set[Path] = set()
    base = path.parent
    for rec in records:
        fid = rec.get("ReferencedFileID")
        if not fid:
            continue
        parts = [fid] if isinstance(fid, str) else [str(x) for x in fid]
        p = base.joinpath(*parts)
        if not p.exists():
            # media written by DOS-era tools: IDs are upper case, files may be lower
            alt = _case_insensitive(base, parts)
            if alt is None:
                skipped.append(SkippedFile(p, "listed in DICOMDIR but missing"))
                continue
            p = alt
        if p not in seen:
            seen.add(p)
            files.append(p)
    if not files and not skipped:
        skipped.append(SkippedFile(path, "DICOMDIR lists no files"))
    return _Sources(files, skipped, {})


def _case_insensitive(base: Path, parts: list[str]) -> Path | None:
    cur = base
    for part in parts:
        try:
            match = next((c for c in cur.iterdir() if c.name.upper() == part.upper()), None)
        except OSError:
            return None
        if match is None:
            return None
        cur = match
    return cur


def _walk_folder(root: Path) -> _Sources:
    """Every file under ``root``; ``.zip`` archives found on the way are
    expanded too (exports often ship one archive per study inside a folder)."""
    src = _Sources([], [], {})
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for fn in sorted(filenames):
            if fn.upper() == "DICOMDIR":
                continue  # the index of the very files being walked
            p = Path(dirpath) / fn
            if fn.lower().endswith(".zip"):
                sub = _zip_files(p)
                src.files.extend(sub.files)
                src.skipped.extend(sub.skipped)
                src.display.update(sub.display)
                continue
            src.files.append(p)
    return src


def _zip_files(path: Path) -> _Sources:
    """Extract the archive once into the user cache (keyed by path, size and
    mtime) so that the SeriesInfo file paths stay valid for loading later."""
    from inference.paths import cache_dir

    st = path.stat()
    digest = hashlib.sha1(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]
    dest = cache_dir() / "unzipped" / digest
    skipped: list[SkippedFile] = []
    display: dict[Path, Path] = {}
    files: list[Path] = []
    try:
        with zipfile.ZipFile(path) as zf:
            complete = (dest / ".complete").exists()
            for info in zf.infolist():
                if info.is_dir():
                    continue
                name = info.filename
                shown = Path(f"{path}!/{name}")
                parts = Path(name).parts
                if name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
                    skipped.append(SkippedFile(shown, "unsafe path in archive (absolute or '..'); not extracted"))
                    continue
                target = dest.joinpath(*parts)
                if not complete:
                    try:
                        target.parent.mkdir(parents=True, exist_ok=True)
                        with zf.open(info) as src, open(target, "wb") as dst:
                            while chunk := src.read(1 << 20):
                                dst.write(chunk)
                    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as e:
                        skipped.append(SkippedFile(shown, f"cannot extract from archive: {_short(e)}"))
                        continue
                if Path(name).name.upper() == "DICOMDIR":
                    continue
                files.append(target)
                display[target] = shown
            if not complete:
                dest.mkdir(parents=True, exist_ok=True)
                (dest / ".complete").write_text(str(path))
    except zipfile.BadZipFile as e:
        skipped.append(SkippedFile(path, f"not a valid zip archive ({_short(e)})"))
    return _Sources(files, skipped, display)


def _sources(path: Path) -> _Sources:
    if path.is_dir():
        return _walk_folder(path)
    if not path.exists():
        return _Sources([], [SkippedFile(path, "no such file or folder")], {})
    if path.suffix.lower() == ".zip" or zipfile.is_zipfile(path) and not _is_dicom_prefix(path):
        return _zip_files(path)
    if _is_dicomdir(path):
        return _dicomdir_files(path)
    return _Sources([path], [], {})


def _is_dicom_prefix(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return head[128:132] == b"DICM"


def scan(path: Path, *, progress: ProgressFn | None = None, cancel: Callable[[], bool] | None = None) -> ScanResult:
    """Index ``path`` (folder tree, single file, DICOMDIR or ``.zip``).

    Parameters
    ----------
    path
        What the user pointed at.
    progress
        Called with the fraction of files read (every 64 files and at the end).
    cancel
        Polled every 64 files; raises :class:`~inference.errors.CancelledError`.

    Returns
    -------
    ScanResult
        Image series grouped and sorted; every file that could not be used
        in ``skipped`` with its reason -- including valid objects without
        pixels (SR, RT plan ...), so that "a series was found" means
        "something can be shown". Never raises for bad files.
    """
    path = Path(path)
    src = _sources(path)
    headers: list[Header] = []
    skipped = list(src.skipped)
    n = len(src.files)
    for i, f in enumerate(src.files):
        if i % 64 == 0:
            if cancel is not None and cancel():
                raise CancelledError(where=str(path))
            if progress is not None:
                progress(Progress(i / max(n, 1), f"reading headers {i}/{n}"))
        try:
            h = read_header(f)
        except HeaderError as e:
            skipped.append(SkippedFile(src.display.get(f, f), e.reason))
            continue
        if h.media_sop_class == DICOMDIR_SOP_CLASS or str(h.get("SOPClassUID", "")) == DICOMDIR_SOP_CLASS:
            continue  # a DICOMDIR found while walking: not an image, not an error
        if not h.has_pixels:
            # structured reports, RT plans, key objects ...: valid DICOM but
            # nothing to look at; listed so the user knows they were seen
            what = str(h.get("Modality", "") or "") or "DICOM"
            skipped.append(SkippedFile(src.display.get(f, f), f"{what} object without image pixels (not viewable)"))
            continue
        headers.append(h)
    if progress is not None:
        progress(Progress(1.0, f"read {n} headers"))
    return ScanResult(root=path, series=tuple(build_series(headers)), skipped=tuple(skipped))
