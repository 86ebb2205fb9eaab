"""Load one DICOM series into a :class:`~inference.types.Volume` (HU, LPS).

What a radiologist expects, and therefore what this module does:

* **Slice order** comes from ImagePositionPatient projected on the slice
  normal (row × column of ImageOrientationPatient), never from file names or
  InstanceNumber. Enhanced multi-frame objects use the per-frame functional
  groups the same way.
* **Per-slice rescale**: RescaleSlope/Intercept are applied per slice (or per
  frame); scanners do vary them. The array is ``int16`` when every rescaled
  value fits, else ``float32``.
* **Duplicate positions** (the same slice sent twice, or repeated
  acquisitions): the first by InstanceNumber is kept, the rest dropped, with
  a warning.
* **Missing slices and non-uniform spacing**: the volume is resampled onto a
  uniform grid with the *median* slice step, each missing position filled by
  linear interpolation between its two acquired neighbours. Distances and
  volumes therefore stay physically true (a gap is never silently closed,
  which would shorten the patient and shrink nodules), and the warning names
  the gap so the reader knows not to measure inside it.
* **Gantry tilt** (slice origins not moving along the slice normal): every
  slice is shifted in-plane onto an orthogonal grid (linear interpolation,
  edges filled with air) and a warning gives the angle. Without this, an
  orthogonal affine would misplace anatomy by up to ``length × tan(tilt)``.
* **Separate stacks under one UID** (gaps of five or more missing slices):
  the largest run of slices is loaded and the warning says what was dropped.
* **Several sizes/orientations under one UID** are split by the index into
  sub-series; a path with several series loads the largest image series and
  says so.
* **2D images** (CR/DX, secondary capture) load as a 1-slice volume; missing
  patient geometry is reported, not invented silently.

Plain uncompressed little-endian single-frame files take the fast path
(:mod:`inference.io.dicom_fastread`): the pixel bytes are read into a reused
scratch buffer and rescaled straight into the preallocated volume, so the
only transient memory is one file. Everything else goes through pydicom's
pixel handlers (pylibjpeg, gdcm for compressed syntaxes).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from inference.errors import CancelledError, NoUsableSeriesError, SeriesLoadError
from inference.io.dicom_fastread import Header, PixelScratch, read_native_at, stored_range
from inference.io.dicom_index import HeaderError, read_header, scan
from inference.types import Issue, Progress, ScanResult, SeriesInfo, Volume

__all__ = ["load_series", "choose_series", "read_slices_pydicom"]

ProgressFn = Callable[[Progress], None]
CancelFn = Callable[[], bool]

_DUP_TOL_MM = 0.01  # positions closer than this along the normal are the same slice
_UNIFORM_REL_TOL = 0.01  # steps within 1 % of the median count as uniform
_TILT_MIN_SHIFT_VOX = 0.05  # ignore in-plane drift below 5 % of a pixel over the whole stack


@dataclass
class _Slice:
    """One 2D image: a single-frame file, or one frame of a multi-frame file."""

    path: Path
    header: Header
    frame: int | None = None
    position: np.ndarray | None = None
    orientation: tuple[float, ...] | None = None
    pixel_spacing: tuple[float, float] | None = None
    slope: float = 1.0
    intercept: float = 0.0
    instance: float = 0.0
    source: Any = field(default=None, repr=False)  # the _MultiFrame owning this frame


@dataclass
class _MultiFrame:
    """A multi-frame file: decoded once, frames handed out on request."""

    path: Path
    dataset: Any
    pixels: np.ndarray | None = None

    def frame(self, f: int) -> np.ndarray:
        if self.pixels is None:
            arr = _pixels_of(self.dataset)
            n = int(self.dataset.get("NumberOfFrames", 1) or 1)
            if n == 1:
                arr = arr[None]
            self.pixels = arr
        return self.pixels[f]


def _sub_progress(progress: ProgressFn | None, lo: float, hi: float) -> ProgressFn | None:
    if progress is None:
        return None

    def fn(p: Progress) -> None:
        progress(Progress(lo + (hi - lo) * p.fraction, p.message))

    return fn


def choose_series(result: ScanResult, series_uid: str | None, issues: list[Issue]) -> SeriesInfo:
    """Pick the series to load from a scan: ``series_uid`` if given, else the
    largest image series; appends a warning whenever a choice was made.

    Raises
    ------
    NoUsableSeriesError
        Nothing loadable (with the reason of the first skipped file when the
        source was a single file), or ``series_uid`` not found.
    """
    where = str(result.root)
    images = [s for s in result.series if s.rows and s.columns]
    if series_uid:
        matches = [s for s in images if s.series_instance_uid == series_uid]
        if not matches:
            known = [s for s in result.series if s.series_instance_uid == series_uid]
            if known:
                raise NoUsableSeriesError(
                    f"series {series_uid} ({known[0].modality}) holds no image pixels", where=where
                )
            raise NoUsableSeriesError(
                f"series {series_uid} not found ({len(result.series)} series present)",
                where=where,
                fix="list the series with `clinview info`",
            )
        best = max(matches, key=lambda s: s.n_images)
        if len(matches) > 1:
            issues.append(
                Issue(
                    f"series {series_uid} mixes {len(matches)} image sizes/orientations; loaded the largest part "
                    f"({best.n_images} images); the others are listed separately by `clinview info`",
                    path=where,
                    code="sub-series",
                )
            )
        return best
    if not images:
        if len(result.skipped) == 1 and not result.series:
            sk = result.skipped[0]
            raise NoUsableSeriesError(sk.reason, where=str(sk.path))
        others = ", ".join(sorted({s.modality for s in result.series}))
        what = "no image series found"
        if result.series:
            what += f" (only non-image objects: {others})"
        if result.skipped:
            what += f"; {len(result.skipped)} file(s) skipped, e.g. {result.skipped[0].one_line()}"
        raise NoUsableSeriesError(what, where=where, fix="point to a folder, DICOMDIR or .zip with CT/MR images")
    best = max(images, key=lambda s: s.n_images)  # max keeps the first of equals: scan order is stable
    if len(images) > 1:
        issues.append(
            Issue(
                f"{len(images)} image series found; loaded the largest: {best.modality} "
                f"'{best.description}' ({best.n_images} images, UID {best.series_instance_uid}); "
                "choose another with series_uid / --series",
                path=where,
                code="several-series",
            )
        )
    return best


def load_series(
    source: SeriesInfo | str | Path,
    *,
    series_uid: str | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> Volume:
    """Load one series as a :class:`Volume` (see the module docstring for the
    rules on order, gaps, duplicates, tilt).

    Parameters
    ----------
    source
        A :class:`SeriesInfo` from :func:`inference.io.dicom_index.scan`, or
        a folder, file, DICOMDIR or ``.zip``.
    series_uid
        With a path: which series to load (default: the largest image series).
    progress, cancel
        Progress callback; cancel polled between slices.

    Returns
    -------
    Volume
        ``array`` (z, y, x) int16/float32, geometry in LPS, ``warnings`` with
        every deviation noticed.

    Raises
    ------
    NoUsableSeriesError
        No loadable image series in ``source``.
    SeriesLoadError
        The series cannot be made into a consistent volume (reason given).
    CancelledError
        ``cancel()`` returned True.
    """
    issues: list[Issue] = []
    if isinstance(source, SeriesInfo):
        info = source
        lo = 0.0
    else:
        path = Path(source)
        if not path.exists():
            raise NoUsableSeriesError("no such file or folder", where=str(path))
        result = scan(path, progress=_sub_progress(progress, 0.0, 0.2), cancel=cancel)
        info = choose_series(result, series_uid, issues)
        lo = 0.2
    return _load(info, issues, _sub_progress(progress, lo, 1.0), cancel)


# ----------------------------------------------------------------------------
# Slices


def _floats(v: Any, n: int) -> tuple[float, ...] | None:
    if v is not None and not isinstance(v, str | bytes) and hasattr(v, "__len__") and len(v) == n:
        try:
            out = tuple(float(x) for x in v)
        except (TypeError, ValueError):
            return None
        return out if all(np.isfinite(out)) else None
    return None


def _num(v: Any, default: float) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return default
    return f if np.isfinite(f) else default


def _fg_value(groups: list[Any], seq: str, kw: str) -> Any:
    """First value of ``kw`` inside functional-group sequence ``seq``, looking
    at the per-frame item first, then the shared one."""
    for g in groups:
        if g is None:
            continue
        try:
            s = g.get(seq)
        except (ValueError, TypeError, KeyError):
            continue
        if s:
            v = s[0].get(kw)
            if v is not None and v != "":
                return v
    return None


def read_slices_pydicom(path: Path, header: Header) -> tuple[list[_Slice], list[Issue]]:
    """All frames of a multi-frame file, with per-frame geometry and rescale
    from the functional groups (Enhanced CT/MR/PET) or, for legacy multi-frame
    objects, stacked along the normal with the declared spacing."""
    import pydicom

    issues: list[Issue] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path, force=True)
    except Exception as e:  # noqa: BLE001 - pydicom raises many types on corrupt files; report and go on
        raise SeriesLoadError(f"cannot read file: {type(e).__name__}: {e}", where=str(path)) from e
    mf = _MultiFrame(path, ds)
    n = int(ds.get("NumberOfFrames", 1) or 1)
    shared = ds.get("SharedFunctionalGroupsSequence")
    shared_item = shared[0] if shared else None
    per = ds.get("PerFrameFunctionalGroupsSequence") or []
    top_iop = _floats(header.get("ImageOrientationPatient"), 6)
    top_ipp = _floats(header.get("ImagePositionPatient"), 3)
    top_ps = _floats(header.get("PixelSpacing"), 2) or _floats(header.get("ImagerPixelSpacing"), 2)
    top_slope = _num(header.get("RescaleSlope"), 1.0)
    top_inter = _num(header.get("RescaleIntercept"), 0.0)
    slices: list[_Slice] = []
    legacy = not per
    for f in range(n):
        groups = [per[f] if f < len(per) else None, shared_item]
        ipp = _floats(_fg_value(groups, "PlanePositionSequence", "ImagePositionPatient"), 3)
        iop = _floats(_fg_value(groups, "PlaneOrientationSequence", "ImageOrientationPatient"), 6) or top_iop
        ps = _floats(_fg_value(groups, "PixelMeasuresSequence", "PixelSpacing"), 2) or top_ps
        slope = _num(_fg_value(groups, "PixelValueTransformationSequence", "RescaleSlope"), top_slope)
        inter = _num(_fg_value(groups, "PixelValueTransformationSequence", "RescaleIntercept"), top_inter)
        slices.append(
            _Slice(
                path=path,
                header=header,
                frame=f,
                position=np.asarray(ipp) if ipp else None,
                orientation=iop,
                pixel_spacing=ps,
                slope=slope,
                intercept=inter,
                instance=float(f),
                source=mf,
            )
        )
    if legacy and n > 1:
        step = _num(header.get("SpacingBetweenSlices"), 0.0) or _num(header.get("SliceThickness"), 0.0)
        if top_ipp and top_iop and step > 0:
            from inference.io.dicom_index import slice_normal

            nrm = slice_normal(top_iop)
            if nrm is not None:
                for s in slices:
                    s.position = np.asarray(top_ipp) + (s.frame or 0) * step * nrm
        issues.append(
            Issue(
                f"multi-frame image without per-frame positions: {n} frames stacked in stored order"
                + (f" {step:g} mm apart" if step > 0 else " (spacing unknown, 1 mm assumed)"),
                path=str(path),
                code="no-frame-geometry",
            )
        )
    return slices, issues


def _single_slice(path: Path, h: Header) -> _Slice:
    ps = _floats(h.get("PixelSpacing"), 2) or _floats(h.get("ImagerPixelSpacing"), 2)
    ipp = _floats(h.get("ImagePositionPatient"), 3)
    inst = h.get("InstanceNumber")
    return _Slice(
        path=path,
        header=h,
        position=np.asarray(ipp) if ipp else None,
        orientation=_floats(h.get("ImageOrientationPatient"), 6),
        pixel_spacing=ps,
        slope=_num(h.get("RescaleSlope"), 1.0),
        intercept=_num(h.get("RescaleIntercept"), 0.0),
        instance=_num(inst, 0.0),
    )


def _gather(info: SeriesInfo, issues: list[Issue], cancel: CancelFn | None) -> list[_Slice]:
    slices: list[_Slice] = []
    for i, f in enumerate(info.files):
        if cancel is not None and i % 32 == 0 and cancel():
            raise CancelledError(where=str(f))
        try:
            h = read_header(Path(f))
        except HeaderError as e:
            issues.append(Issue(f"skipped: {e.reason}", path=str(f), code="unreadable-file"))
            continue
        if not h.has_pixels:
            issues.append(Issue("no pixel data; skipped", path=str(f), code="no-pixels"))
            continue
        if int(h.get("NumberOfFrames", 1) or 1) > 1 or (h.dataset is not None and "PerFrameFunctionalGroupsSequence" in h.dataset):
            fr, iss = read_slices_pydicom(Path(f), h)
            slices.extend(fr)
            issues.extend(iss)
        else:
            slices.append(_single_slice(Path(f), h))
    return slices


# ----------------------------------------------------------------------------
# Geometry


@dataclass
class _Plan:
    """Output slice ``i`` = ``(1 - w) * acquired[a] + w * acquired[b]``."""

    a: np.ndarray
    b: np.ndarray
    w: np.ndarray
    origin: np.ndarray
    direction: np.ndarray
    spacing: tuple[float, float, float]
    shift_yx: np.ndarray | None  # (n_out, 2) in-plane shift in pixels (tilt correction)


def _majority_orientation(slices: list[_Slice], issues: list[Issue]) -> list[_Slice]:
    groups: dict[tuple[float, ...] | None, list[_Slice]] = {}
    for s in slices:
        key = tuple(round(x, 2) + 0.0 for x in s.orientation) if s.orientation else None
        groups.setdefault(key, []).append(s)
    if len(groups) <= 1:
        return slices
    best = max(groups.values(), key=len)
    issues.append(
        Issue(
            f"{len(groups)} different image orientations in one series; kept the {len(best)} images of the "
            f"most common one, dropped {len(slices) - len(best)}",
            path=str(best[0].path),
            code="mixed-orientation",
        )
    )
    return best


def _axes(orientation: tuple[float, ...] | None) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Row, column and normal unit vectors of an ImageOrientationPatient,
    re-orthogonalised (DS rounding leaves them slightly skewed); None when the
    value is degenerate (zero or parallel vectors, seen in broken exports)."""
    if orientation is None:
        return None
    o = np.asarray(orientation, float)
    nr = np.linalg.norm(o[:3])
    if nr < 1e-6:
        return None
    row = o[:3] / nr
    col = o[3:] - np.dot(o[3:], row) * row
    nc = np.linalg.norm(col)
    if nc < 1e-6:
        return None
    col = col / nc
    return row, col, np.cross(row, col)


def _plan(slices: list[_Slice], info: SeriesInfo, issues: list[Issue]) -> tuple[list[_Slice], _Plan]:
    first = slices[0]
    h = first.header
    where = str(Path(info.files[0]).parent) if info.files else None
    axes = _axes(first.orientation)
    if axes is not None:
        row, col, normal = axes
    else:
        row, col, normal = np.eye(3)
        issues.append(
            Issue(
                "no ImageOrientationPatient: shown in image coordinates (identity orientation), "
                "not patient space; do not fuse with other series",
                path=str(first.path),
                code="no-geometry",
            )
        )
    ps = first.pixel_spacing
    if ps is None or min(ps) <= 0:
        what = "no PixelSpacing" if ps is None else f"invalid PixelSpacing {ps}"
        ps = (1.0, 1.0)
        issues.append(Issue(f"{what}: 1 mm pixels assumed; distances are not in mm", path=str(first.path), code="no-spacing"))
    elif first.header.get("PixelSpacing") is None and first.header.get("ImagerPixelSpacing") is not None:
        issues.append(
            Issue(
                "only ImagerPixelSpacing (detector plane): distances include the projection magnification",
                path=str(first.path),
                code="imager-spacing",
            )
        )
    sy, sx = float(ps[0]), float(ps[1])
    with_pos = [s for s in slices if s.position is not None]
    if with_pos and len(with_pos) < len(slices):
        issues.append(
            Issue(
                f"{len(slices) - len(with_pos)} image(s) without ImagePositionPatient dropped",
                path=where,
                code="no-position",
            )
        )
        slices = with_pos
    if not with_pos:
        slices = sorted(slices, key=lambda s: (s.instance, str(s.path), s.frame or 0))
        step = _num(h.get("SpacingBetweenSlices"), 0.0) or _num(h.get("SliceThickness"), 0.0) or 1.0
        if len(slices) > 1:
            issues.append(
                Issue(
                    f"no ImagePositionPatient: {len(slices)} images ordered by InstanceNumber, {step:g} mm apart (assumed)",
                    path=where,
                    code="no-position",
                )
            )
        n = len(slices)
        return slices, _Plan(
            a=np.arange(n),
            b=np.arange(n),
            w=np.zeros(n),
            origin=np.zeros(3),
            direction=np.column_stack([row, col, normal]),
            spacing=(step, sy, sx),
            shift_yx=None,
        )
    proj = np.array([float(np.dot(s.position, normal)) for s in slices])  # type: ignore[arg-type]
    order = sorted(range(len(slices)), key=lambda i: (proj[i], slices[i].instance, slices[i].frame or 0))
    slices = [slices[i] for i in order]
    proj = proj[order]
    # separate stacks under one UID (e.g. a few extra slices far away):
    # split at gaps of 5+ missing slices and keep the largest run rather
    # than interpolating centimetres of anatomy
    if len(slices) > 2:
        st = np.diff(proj)
        m0 = float(np.median(st[st >= _DUP_TOL_MM])) if np.any(st >= _DUP_TOL_MM) else 0.0
        cuts = [i + 1 for i in range(len(st)) if m0 > 0 and st[i] > 5.5 * m0]
        if cuts:
            bounds = [0, *cuts, len(slices)]
            runs = [(bounds[j], bounds[j + 1]) for j in range(len(bounds) - 1)]
            lo, hi = max(runs, key=lambda r: r[1] - r[0])
            if 2 * (hi - lo) < len(slices):
                raise SeriesLoadError(
                    f"slice positions too irregular to form one volume: {len(slices)} images in {len(runs)} "
                    f"separate groups, the largest holding only {hi - lo}",
                    where=where,
                    fix="check the export for mixed acquisitions, or load the images one by one",
                )
            issues.append(
                Issue(
                    f"{len(runs)} separate stacks along the slice normal (gaps up to {float(st.max()):.1f} mm, "
                    f"slice step {m0:.2f} mm); loaded the largest ({hi - lo} images), dropped "
                    f"{len(slices) - (hi - lo)} image(s) elsewhere",
                    path=where,
                    code="split-stack",
                )
            )
            slices = slices[lo:hi]
            proj = proj[lo:hi]
    # duplicates
    keep = [0]
    dropped: list[_Slice] = []
    for i in range(1, len(slices)):
        if proj[i] - proj[keep[-1]] < _DUP_TOL_MM:
            dropped.append(slices[i])
        else:
            keep.append(i)
    if dropped:
        issues.append(
            Issue(
                f"{len(dropped)} image(s) at an already-seen slice position dropped (duplicates or repeated "
                f"acquisitions; kept the lowest InstanceNumber), e.g. {dropped[0].path.name}",
                path=where,
                code="duplicates",
            )
        )
    slices = [slices[i] for i in keep]
    proj = proj[keep]
    pos = np.array([s.position for s in slices], float)
    n = len(slices)
    direction = np.column_stack([row, col, normal])
    if n == 1:
        sz = _num(h.get("SpacingBetweenSlices"), 0.0) or _num(h.get("SliceThickness"), 0.0) or 1.0
        return slices, _Plan(np.zeros(1, int), np.zeros(1, int), np.zeros(1), pos[0], direction, (sz, sy, sx), None)
    steps = np.diff(proj)
    m = float(np.median(steps))
    uniform = bool(np.all(np.abs(steps - m) <= max(_UNIFORM_REL_TOL * m, 1e-3)))
    # gantry tilt: in-plane drift of slice origins
    rel = pos - pos[0]
    inplane = rel - np.outer(rel @ normal, normal)
    drift_px = np.abs(np.column_stack([inplane @ col / sy, inplane @ row / sx])).max()
    shear = None
    if drift_px > _TILT_MIN_SHIFT_VOX:
        length = proj[-1] - proj[0]
        shear = inplane[-1] / length  # mm of in-plane drift per mm along the normal
        tilt_deg = float(np.degrees(np.arctan(np.linalg.norm(shear))))
        declared = h.get("GantryDetectorTilt")
        issues.append(
            Issue(
                f"gantry tilt {tilt_deg:.1f}° (slice origins drift {np.linalg.norm(inplane[-1]):.1f} mm in-plane"
                + (f"; GantryDetectorTilt {float(declared):g}°" if isinstance(declared, int | float) and declared else "")
                + "): slices shifted in-plane onto an orthogonal grid by linear interpolation, edges filled with air",
                path=where,
                code="gantry-tilt",
            )
        )
    if uniform:
        sz = float((proj[-1] - proj[0]) / (n - 1))
        grid = proj
        a = np.arange(n)
        b = np.arange(n)
        w = np.zeros(n)
    else:
        sz = m
        n_out = int(round((proj[-1] - proj[0]) / m)) + 1
        if n_out > 4 * n:
            # not a stack with a few gaps but scattered images: a uniform grid
            # would be mostly invented; refuse rather than fabricate
            raise SeriesLoadError(
                f"slice positions too irregular to form one volume: {n} images spread over "
                f"{proj[-1] - proj[0]:.1f} mm with a median step of {m:.3f} mm",
                where=where,
                fix="load the images one by one, or check the export for mixed acquisitions",
            )
        grid = proj[0] + np.arange(n_out) * m
        j = np.clip(np.searchsorted(proj, grid, side="right"), 1, n - 1)
        a = j - 1
        b = j
        w = np.clip((grid - proj[a]) / (proj[b] - proj[a]), 0.0, 1.0)
        # snap onto acquired slices where the grid hits them
        near_a = np.abs(grid - proj[a]) < 1e-3 * m
        near_b = np.abs(grid - proj[b]) < 1e-3 * m
        w[near_a] = 0.0
        a = np.where(near_b & ~near_a, b, a)
        w[near_b & ~near_a] = 0.0
        gaps = [(i, steps[i]) for i in range(n - 1) if steps[i] > 1.5 * m]
        if gaps:
            n_missing = int(sum(round(st / m) - 1 for _, st in gaps))
            i0, st0 = gaps[0]
            issues.append(
                Issue(
                    f"{n_missing} slice(s) missing in {len(gaps)} gap(s) (first: {st0:.2f} mm between "
                    f"{slices[i0].path.name} and {slices[i0 + 1].path.name}, expected {m:.2f} mm); "
                    "filled by linear interpolation from the neighbouring slices so distances stay true; "
                    "do not measure inside the gap",
                    path=where,
                    code="missing-slices",
                )
            )
        irregular = [st for st in steps if st <= 1.5 * m and abs(st - m) > max(_UNIFORM_REL_TOL * m, 1e-3)]
        if irregular:
            issues.append(
                Issue(
                    f"non-uniform slice spacing (steps {float(min(steps)):.3f}–{float(max(steps)):.3f} mm): "
                    f"resampled to a uniform {m:.3f} mm by linear interpolation along the slice normal",
                    path=where,
                    code="non-uniform-spacing",
                )
            )
    shift_yx = None
    if shear is not None:
        # output slice at height g holds what the tilted stack had at
        # position - shear*(g - proj0); shift it back in-plane
        d = np.outer(grid - proj[0], shear)
        shift_yx = np.column_stack([d @ col / sy, d @ row / sx])
    return slices, _Plan(a, b, w, pos[0], direction, (sz, sy, sx), shift_yx)


# ----------------------------------------------------------------------------
# Pixels


def _stored(s: _Slice, scratch: PixelScratch) -> tuple[np.ndarray, tuple[int, int] | None]:
    """Stored values of one slice (2D, or (rows, cols, 3) for colour), and
    their guaranteed range when known without scanning (fast path)."""
    if s.source is not None:
        return s.source.frame(s.frame or 0), None
    if s.header.fast:
        arr = read_native_at(s.path, s.header, scratch)
        if arr is not None:
            bits = int(s.header.get("BitsAllocated", 16))
            bs = int(s.header.get("BitsStored", bits) or bits)
            return arr, stored_range(min(bs, bits), s.header.get("PixelRepresentation", 0) == 1)
    import pydicom

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(s.path, force=True)  # the index accepted it, maybe without preamble
        return _pixels_of(ds), None


def _pixels_of(ds: Any) -> np.ndarray:
    """pydicom's pixel array, after giving files without a meta header the
    transfer syntax pydicom parsed them with, and with palette colour applied
    (indices are meaningless to look at)."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    meta = getattr(ds, "file_meta", None)
    if meta is None or "TransferSyntaxUID" not in meta:
        meta = meta if meta is not None else FileMetaDataset()
        if ds.original_encoding[0]:
            meta.TransferSyntaxUID = ImplicitVRLittleEndian
        else:
            meta.TransferSyntaxUID = ExplicitVRLittleEndian if ds.original_encoding[1] else ExplicitVRBigEndian
        ds.file_meta = meta
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        arr = ds.pixel_array
        if str(ds.get("PhotometricInterpretation", "")) == "PALETTE COLOR":
            from pydicom.pixels import apply_color_lut

            arr = apply_color_lut(arr, ds)
    return arr


def _to_gray(arr: np.ndarray, photometric: str) -> np.ndarray:
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        a = arr[..., :3].astype(np.float32)
        return 0.299 * a[..., 0] + 0.587 * a[..., 1] + 0.114 * a[..., 2]
    return arr


def _put(
    out: np.ndarray, i: int, stored: np.ndarray, slope: float, intercept: float, known: tuple[int, int] | None = None
) -> np.ndarray:
    """Write rescaled ``stored`` into ``out[i]``; returns ``out``, converted to
    float32 once if the rescaled values do not fit int16 (the only case where
    a second full copy exists, briefly). ``known`` is the stored range when
    BitsStored already guarantees it (saves two scans per slice)."""
    if out.dtype == np.int16:
        if stored.dtype.kind in "iu" and float(slope).is_integer() and float(intercept).is_integer():
            if stored.size == 0:
                return out
            lo, hi = known if known is not None else (int(stored.min()), int(stored.max()))
            ends = (lo * slope + intercept, hi * slope + intercept)
            if known is not None and not (min(ends) >= -32768 and max(ends) <= 32767):
                # BitsStored allows more than int16 after rescale; the actual values may not
                lo, hi = int(stored.min()), int(stored.max())
                ends = (lo * slope + intercept, hi * slope + intercept)
            if min(ends) >= -32768 and max(ends) <= 32767:
                if slope == 1 and stored.itemsize == 2 and stored.dtype.isnative and lo >= -32768 and hi <= 32767:
                    # uint16 below 32768 reinterprets exactly as int16; the sum
                    # fits by the check above, so int16 arithmetic is exact
                    np.add(stored.view(np.int16), np.int16(intercept), out=out[i])
                elif slope == 1:
                    np.add(stored, int(intercept), out=out[i], dtype=np.int32, casting="unsafe")
                else:
                    out[i] = stored.astype(np.int32) * int(slope) + int(intercept)
                return out
        out = out.astype(np.float32)
    np.multiply(stored, slope, out=out[i], dtype=np.float64, casting="unsafe")
    out[i] += np.float32(intercept)
    return out


def _rescaled(stored: np.ndarray, s: _Slice) -> np.ndarray:
    return stored.astype(np.float64) * s.slope + s.intercept


def _store_float(out: np.ndarray, i: int, val: np.ndarray) -> np.ndarray:
    if out.dtype == np.int16:
        r = np.rint(val)
        if r.size and (r.min() < -32768 or r.max() > 32767):
            out = out.astype(np.float32)
            out[i] = val
        else:
            out[i] = r
    else:
        out[i] = val
    return out


def _load(info: SeriesInfo, issues: list[Issue], progress: ProgressFn | None, cancel: CancelFn | None) -> Volume:
    if not info.files:
        raise NoUsableSeriesError("series has no files", where=info.series_instance_uid)
    slices = _gather(info, issues, cancel)
    if not slices:
        raise NoUsableSeriesError(
            f"series {info.modality} '{info.description}' has no readable image",
            where=str(info.files[0]),
            fix=issues[0].message if issues else None,
        )
    slices = _majority_orientation(slices, issues)
    slices, plan = _plan(slices, info, issues)
    h0 = slices[0].header
    rows, cols = int(h0.get("Rows")), int(h0.get("Columns"))
    photometric = str(h0.get("PhotometricInterpretation", "") or "")
    spp = int(h0.get("SamplesPerPixel", 1) or 1)
    integral = all(float(s.slope).is_integer() and float(s.intercept).is_integer() for s in slices)
    dtype = np.int16 if integral and spp == 1 and int(h0.get("BitsAllocated", 16) or 16) <= 32 else np.float32
    if spp > 1 or photometric.startswith(("RGB", "YBR", "PALETTE")):
        dtype = np.float32
        issues.append(Issue(f"colour image ({photometric}) shown as luminance", path=str(slices[0].path), code="colour"))
    if photometric == "MONOCHROME1":
        issues.append(
            Issue("MONOCHROME1: low values are meant to display white", path=str(slices[0].path), code="monochrome1")
        )
    air = -1024.0 if info.modality == "CT" else 0.0
    n_out = len(plan.a)
    out = np.empty((n_out, rows, cols), dtype)
    scratch = PixelScratch()
    cache: dict[int, np.ndarray] = {}
    unreadable: list[str] = []
    known_range: list[tuple[int, int] | None] = [None]

    def stored_of(k: int) -> np.ndarray | None:
        s = slices[k]
        try:
            arr, known = _stored(s, scratch)
        except Exception as e:  # noqa: BLE001 - decoders raise assorted errors; one bad slice must not lose the series
            unreadable.append(f"{s.path.name}: {type(e).__name__}: {str(e)[:120]}")
            return None
        if arr.shape[:2] != (rows, cols):
            unreadable.append(f"{s.path.name}: size {arr.shape[:2]} differs from {(rows, cols)}")
            return None
        known_range[0] = known if arr.ndim == 2 else None
        return _to_gray(arr, photometric)

    def float_of(k: int) -> np.ndarray:
        if k not in cache:
            st = stored_of(k)
            val = np.full((rows, cols), air) if st is None else _rescaled(st, slices[k])
            if len(cache) >= 2:
                cache.pop(min(cache))
            cache[k] = val
        return cache[k]

    for i in range(n_out):
        if cancel is not None and cancel():
            raise CancelledError(where=str(info.files[0]))
        if progress is not None and (i % 16 == 0 or i == n_out - 1):
            progress(Progress(i / n_out, f"loading slice {i + 1}/{n_out}"))
        a, b, w = int(plan.a[i]), int(plan.b[i]), float(plan.w[i])
        if w == 0.0:
            st = stored_of(a)
            if st is None:
                out = _store_float(out, i, np.full((rows, cols), air))
            else:
                out = _put(out, i, st, slices[a].slope, slices[a].intercept, known_range[0])
        else:
            out = _store_float(out, i, (1.0 - w) * float_of(a) + w * float_of(b))
        if plan.shift_yx is not None and np.any(np.abs(plan.shift_yx[i]) > 1e-6):
            from scipy.ndimage import shift as nd_shift

            shifted = nd_shift(out[i].astype(np.float64), plan.shift_yx[i], order=1, mode="constant", cval=air)
            out = _store_float(out, i, shifted)
    if unreadable:
        issues.append(
            Issue(
                f"{len(unreadable)} slice(s) could not be decoded and are shown as air: {unreadable[0]}",
                path=str(Path(info.files[0]).parent),
                code="unreadable-slice",
            )
        )
        if len(unreadable) >= n_out:
            raise SeriesLoadError(f"no slice could be decoded ({unreadable[0]})", where=str(info.files[0]))
    if progress is not None:
        progress(Progress(1.0, f"loaded {n_out} slices"))
    return Volume(
        array=out,
        warnings=_collapse(issues),
        spacing=tuple(float(v) for v in plan.spacing),  # type: ignore[arg-type]
        origin=tuple(float(v) for v in plan.origin),  # type: ignore[arg-type]
        direction=plan.direction,
        series=info,
    )


def _collapse(issues: list[Issue]) -> tuple[Issue, ...]:
    """One line per kind of problem: the same message for many files (every
    frame file of a cine loop, say) becomes one Issue naming the count."""
    groups: dict[tuple[str, str], list[Issue]] = {}
    for i in issues:
        groups.setdefault((i.code, i.message), []).append(i)
    out = []
    for (_, msg), items in groups.items():
        first = items[0]
        if len(items) > 1:
            first = Issue(f"{msg} ({len(items)} files)", path=first.path, line=first.line, code=first.code)
        out.append(first)
    return tuple(out)
