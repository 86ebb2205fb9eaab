"""Synthetic chest CT phantoms with exact nodule ground truth.

Why: no labelled lung-nodule CT can be downloaded here, so the nodule model
is trained and checked on these, and the demo patient is one of them. The
generator is deterministic by seed (same seed, same bytes), vectorised (a
training-sized phantom in a few seconds on 2 cores) and every nodule's record
is measured from its own mask, so ground truth and image cannot disagree.

Pipeline: analytic anatomy (:mod:`.anatomy`) is evaluated on thin internal
planes in z-chunks, tubes (mediastinum, airways, pulmonary vessels) are drawn
into each chunk, planes are averaged into slices (slice-thickness partial
volume), nodules are supersampled on the output grid (:mod:`.nodules`), then
the scanner is simulated (:mod:`.acquisition`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from inference.synth import acquisition as acq
from inference.synth.anatomy import LOBE_NAMES, Anatomy, AnatomyRenderer, make_anatomy
from inference.synth.nodules import NoduleRecord, NoduleSpec, design_nodules, lobe_name, measure_axial, render_nodules
from inference.synth.raster import Grid, draw_segments
from inference.types import Volume

__all__ = ["Phantom", "NoduleRecord", "make_phantom", "render_phantom", "Acquisition"]


@dataclass(frozen=True)
class Acquisition:
    """Scanner settings of one series."""

    slice_mm: float
    pixel_mm: float
    matrix: tuple[int, int]  # (rows, columns)
    kernel: str
    dose: float
    n_slices: int
    z_start_mm: float  # anatomical Z of the first (most inferior) slice centre
    fov_center_xy: tuple[float, float]  # world (x, y) of the image centre


@dataclass(eq=False)
class Phantom:
    """One synthetic CT series with its ground truth.

    Attributes
    ----------
    hu
        ``(z, y, x)`` int16 Hounsfield units.
    spacing
        ``(z, y, x)`` mm.
    origin
        LPS ``(x, y, z)`` of voxel ``(0, 0, 0)``.
    direction
        3×3, columns = LPS directions of the x, y, z index axes.
    lungs
        uint8, 1 right lung, 2 left lung (nodules included, pleural fluid excluded).
    lobes
        uint8, 1 RUL, 2 RML, 3 RLL, 4 LUL, 5 LLL.
    nodules
        uint16 label map, value = nodule id.
    records
        One :class:`NoduleRecord` per nodule visible in the image.
    cores
        Part-solid nodules' solid cores: id -> ``{"core": bool mask, "box": [z0, z1, y0, y1, x0, x1]}``
        on this grid (the box the mask covers). The record's ``solid_component_mm`` measures them
        corner to corner; an evaluation that compares the product's measurement re-measures
        them with the product's own ruler.
    """

    hu: np.ndarray
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: np.ndarray
    lungs: np.ndarray
    lobes: np.ndarray
    nodules: np.ndarray
    records: list[NoduleRecord]
    seed: int
    acquisition: Acquisition
    rotation: np.ndarray  # anatomical -> world rotation
    shift: np.ndarray  # anatomical -> world translation (mm)
    specs: list[NoduleSpec] = field(default_factory=list, repr=False)
    anatomy: Anatomy | None = field(default=None, repr=False)
    options: dict[str, Any] = field(default_factory=dict)
    followup: Any = None  # inference.synth.followup.FollowupInfo for a follow-up scan
    cores: dict[int, dict[str, np.ndarray]] = field(default_factory=dict, repr=False)

    @property
    def kernel(self) -> str:
        return self.acquisition.kernel

    def to_volume(self) -> Volume:
        """The image as a :class:`inference.types.Volume` (HU, LPS geometry)."""
        return Volume(
            array=self.hu,
            spacing=tuple(float(v) for v in self.spacing),  # type: ignore[arg-type]
            origin=tuple(float(v) for v in self.origin),  # type: ignore[arg-type]
            direction=np.asarray(self.direction, float),
        )

    def record(self, nid: int) -> NoduleRecord:
        """The record of nodule ``nid``."""
        for r in self.records:
            if r.id == nid:
                return r
        raise KeyError(f"no nodule with id {nid}")


def _choice(rng: np.random.Generator, values: Sequence[Any]) -> Any:
    return values[int(rng.integers(len(values)))]


def make_phantom(
    seed: int,
    *,
    shape: tuple[int, int] | None = None,
    pixel_mm: float | None = None,
    slice_mm: float | None = None,
    n_slices: int | None = None,
    kernel: str | None = None,
    dose: float | None = None,
    n_nodules: int | None = None,
    nodule_types: Sequence[str] | None = None,
    nodule_size_mm: tuple[float, float] = (3.0, 30.0),
    emphysema: bool | None = None,
    effusion: bool | None = None,
    atelectasis: bool | None = None,
    sex: str | None = None,
    vessel_density: float | None = None,
    fov_clip: bool | None = None,
    nodule_specs: Sequence[NoduleSpec] | None = None,
    anatomy_factor: int | None = None,
) -> Phantom:
    """Make one synthetic chest CT.

    Every argument left at ``None`` is drawn from ``seed``, so a seed alone
    gives a varied training case and the same seed gives the same bytes.

    Parameters
    ----------
    seed
        Patient and scan identity.
    shape
        In-plane matrix ``(rows, columns)``; default 512² (256² for fast training
        use pass it explicitly with a larger ``pixel_mm``).
    pixel_mm
        In-plane pixel spacing, 0.55-0.95 mm in the issue's range (drawn).
    slice_mm
        Slice thickness = spacing, 0.625-5 mm (drawn).
    n_slices
        Number of slices; default covers apex to costophrenic recesses.
    kernel
        ``"sharp"`` (lung) or ``"soft"`` (mediastinal).
    dose
        Relative dose: 1 routine, 0.25 low-dose screening.
    n_nodules, nodule_types, nodule_size_mm
        How many nodules, of which kinds (see ``nodules.NODULE_KINDS``) and sizes.
    emphysema, effusion, atelectasis
        Optional pathology (drawn, mostly off).
    vessel_density
        Terminal vessel territories relative to the demo (1.0).
    fov_clip
        When True the field of view is narrowed so the body is clipped.
    nodule_specs
        Explicit nodules (used by follow-ups and the demo) instead of drawn ones.
    anatomy_factor
        In-plane coarsening of the smooth static anatomy (vessels, airways and
        nodules are always drawn at full resolution); default 2 below 0.75 mm
        pixels, else 1. 1 renders everything at full resolution (slower).

    Returns
    -------
    Phantom
    """
    ss = np.random.SeedSequence(int(seed))
    r_anat, r_nod, r_noise, r_acq = (np.random.default_rng(s) for s in ss.spawn(4))
    emphysema = bool(r_acq.random() < 0.15) if emphysema is None else emphysema
    effusion = bool(r_acq.random() < 0.08) if effusion is None else effusion
    atelectasis = bool(r_acq.random() < 0.15) if atelectasis is None else atelectasis
    an = make_anatomy(
        r_anat,
        sex=sex,
        emphysema=emphysema,
        effusion=effusion,
        atelectasis=atelectasis,
        vessel_density=1.0 if vessel_density is None else vessel_density,
    )
    shape = shape or (512, 512)
    pixel_mm = float(pixel_mm if pixel_mm is not None else r_acq.uniform(0.55, 0.95))
    slice_mm = float(slice_mm if slice_mm is not None else _choice(r_acq, [0.625, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 5.0]))
    kernel = kernel or _choice(r_acq, ["sharp", "soft"])
    dose = float(dose if dose is not None else _choice(r_acq, [0.25, 0.5, 1.0, 1.5]))
    fov_clip = bool(r_acq.random() < 0.1) if fov_clip is None else fov_clip
    if fov_clip:
        pixel_mm = min(pixel_mm, 0.8 * 2 * an.body_a / shape[1])
    if n_slices is None:
        n_slices = int(np.ceil((an.z_max - an.z_min) / slice_mm))
        z_start = an.z_min
    else:
        z_start = 0.5 * (an.z_max + an.z_min) - 0.5 * (n_slices - 1) * slice_mm
    if nodule_specs is None:
        n_nodules = int(r_nod.integers(1, 6)) if n_nodules is None else n_nodules
        specs = design_nodules(r_nod, an, n_nodules, tuple(nodule_types) if nodule_types else None, size_mm=nodule_size_mm)
    else:
        specs = list(nodule_specs)
    # the scanner's coordinates: table position in z, patient a little off centre
    table_z = float(r_acq.uniform(-500, -250))
    shift = np.array([r_acq.uniform(-8, 8), r_acq.uniform(-6, 6) - 20.0, table_z])
    a = Acquisition(
        slice_mm=slice_mm,
        pixel_mm=pixel_mm,
        matrix=(int(shape[0]), int(shape[1])),
        kernel=kernel,
        dose=dose,
        n_slices=int(n_slices),
        z_start_mm=float(z_start),
        fov_center_xy=(float(r_acq.uniform(-6, 6)), float(shift[1] + an.body_yc + r_acq.uniform(-8, 8))),
    )
    options = {
        "emphysema": emphysema,
        "effusion": effusion,
        "atelectasis": atelectasis,
        "sex": an.sex,
        "vessel_density": 1.0 if vessel_density is None else vessel_density,
        "fov_clip": fov_clip,
        "anatomy_factor": anatomy_factor,
    }
    return render_phantom(an, specs, a, np.eye(3), shift, r_noise, seed=int(seed), options=options)


def render_phantom(
    an: Anatomy,
    specs: list[NoduleSpec],
    a: Acquisition,
    rot: np.ndarray,
    shift: np.ndarray,
    noise_rng: np.random.Generator,
    *,
    seed: int,
    options: dict[str, Any] | None = None,
) -> Phantom:
    """Render an anatomy + nodules through one acquisition, the patient placed
    by ``world = rot @ anatomical + shift``. Used by :func:`make_phantom` and
    by follow-ups (same anatomy, moved patient, changed nodules)."""
    ny, nx = a.matrix
    px = a.pixel_mm
    sz = a.slice_mm
    cx, cy = a.fov_center_xy
    x0 = cx - 0.5 * (nx - 1) * px
    y0 = cy - 0.5 * (ny - 1) * px
    z0 = a.z_start_mm + float(shift[2])
    out_grid = Grid((a.n_slices, ny, nx), (sz, px, px), (x0, y0, z0))
    # thin internal planes so that thick slices average anatomy (partial volume)
    n_sub = max(1, int(round(sz / 1.25)))
    dz = sz / n_sub
    n_planes = a.n_slices * n_sub
    zi_all = z0 + sz * np.arange(a.n_slices)[:, None] + (np.arange(n_sub) + 0.5 - 0.5 * n_sub)[None, :] * dz
    zi_all = zi_all.reshape(-1)
    # the static anatomy is smooth: evaluate it on a coarser in-plane grid
    f = int((options or {}).get("anatomy_factor") or (2 if px < 0.75 else 1))
    cny, cnx = -(-ny // f), -(-nx // f)
    yc = y0 + (np.arange(cny) * f + 0.5 * (f - 1)) * px
    xc = x0 + (np.arange(cnx) * f + 0.5 * (f - 1)) * px
    renderer = AnatomyRenderer(an, xc - shift[0], yc - shift[1])
    Hc = np.empty((n_planes, cny, cnx), np.float32)
    Lc = np.empty((n_planes, cny, cnx), np.uint8)
    # big smooth tubes (mediastinum, trachea, clavicles, emphysema holes) are
    # drawn on the coarse anatomical grid too; pulmonary vessels and airways,
    # the fine structures a detector must see, are drawn at full resolution
    cz = 16
    for q0 in range(0, n_planes, cz):
        q1 = min(n_planes, q0 + cz)
        hs, ls, ins = [], [], []
        for zw in zi_all[q0:q1]:
            h, lobe, inner = renderer.plane(float(zw - shift[2]))
            hs.append(h)
            ls.append(lobe)
            ins.append(inner)
        h, lobe, inner = np.stack(hs), np.stack(ls), np.stack(ins)
        g = Grid(h.shape, (dz, f * px, f * px), (float(xc[0] - shift[0]), float(yc[0] - shift[1]), float(zi_all[q0] - shift[2])))
        tmp = h.copy()
        occ = np.zeros(h.shape, np.float32)
        draw_segments(tmp, g, an.med_fat, mode="blend", occ_out=occ)
        draw_segments(tmp, g, an.mediastinum, mode="blend", occ_out=occ)
        draw_segments(tmp, g, an.air, mode="min")
        lobe[occ >= 0.5] = 0
        if len(an.emphysema):
            em = tmp.copy()
            draw_segments(em, g, an.emphysema, mode="min")
            np.copyto(tmp, em, where=lobe > 0)
        np.copyto(h, tmp, where=inner)
        draw_segments(h, g, an.bones, mode="max")
        # the coarse grid's staircase edges must not survive upsampling
        Hc[q0:q1] = acq.blur_inplane(h) if f > 1 else h
        Lc[q0:q1] = lobe
    del hs, ls, ins, tmp, occ
    if not np.allclose(rot, np.eye(3)):
        Hc, Lc = _move_patient(Hc, Lc, rot, np.array([xc[0], yc[0], zi_all[0]]) - shift, (dz, f * px, f * px))
    hu = np.empty((a.n_slices, ny, nx), np.float32)
    lungs = np.zeros((a.n_slices, ny, nx), np.uint8)
    lobes = np.zeros((a.n_slices, ny, nx), np.uint8)
    world_segs = {name: getattr(an, name).transformed(rot, shift) for name in ("vessels", "airway_wall", "airway_lumen")}
    chunk = max(1, 16 // n_sub)
    lobe_to_lung = np.array([0, 1, 1, 1, 2, 2, 0, 0], np.uint8)
    mid = n_sub // 2
    for k0 in range(0, a.n_slices, chunk):
        k1 = min(a.n_slices, k0 + chunk)
        p0, p1 = k0 * n_sub, k1 * n_sub
        g = Grid((p1 - p0, ny, nx), (dz, px, px), (x0, y0, float(zi_all[p0])))
        h = _upsample(Hc[p0:p1], f, ny, nx, linear=True)
        draw_segments(h, g, world_segs["vessels"], mode="max")
        draw_segments(h, g, world_segs["airway_wall"], mode="max")
        draw_segments(h, g, world_segs["airway_lumen"], mode="min")
        m = k1 - k0
        hu[k0:k1] = h.reshape(m, n_sub, ny, nx).mean(1) if n_sub > 1 else h
        lo = _upsample(Lc[p0 + mid : p1 : n_sub], f, ny, nx, linear=False)
        lobes[k0:k1] = lo
        lungs[k0:k1] = lobe_to_lung[lo]
    del Hc, Lc
    _table(hu, out_grid, an, shift)
    labels, cores = render_nodules(hu, out_grid, lungs, specs, rot, shift)
    # nodules belong to their lung (a lung mask that excludes them is useless)
    from scipy import ndimage

    for i, box in enumerate(ndimage.find_objects(labels)):
        if box is None:
            continue
        spec = next((sp for sp in specs if sp.id == i + 1), None)
        if spec is not None:
            sub = lungs[box]
            sub[labels[box] == spec.id] = 1 if spec.center[0] < 0 else 2
    sigma = acq.noise_sigma(a.kernel, a.dose, sz, an.scale)
    ys = y0 + px * np.arange(ny)
    xs = x0 + px * np.arange(nx)
    zc = z0 + sz * np.arange(a.n_slices) - shift[2]
    gain = 1.0 + 0.6 / (1.0 + np.exp(-(zc - 75.0 * an.scale) / 10.0))  # shoulders
    yy = (ys - shift[1] - an.body_yc)[:, None] / an.body_b
    xx = (xs - shift[0])[None, :] / an.body_a
    weight = (0.8 + 0.35 * np.exp(-(xx * xx + yy * yy) * 1.5)).astype(np.float32)
    noise = acq.NoiseField(noise_rng, a.n_slices, ny, nx, kernel=a.kernel, pixel_mm=px)
    outside = ~acq.apply_fov(hu)
    out = np.empty(hu.shape, np.int16)
    for k0 in range(0, a.n_slices, 16):
        k1 = min(a.n_slices, k0 + 16)
        c = acq.apply_kernel(hu[k0:k1], a.kernel)
        for k in range(k0, k1):
            c[k - k0] += noise.slice(k) * (weight * np.float32(sigma * gain[k]))
        c[:, outside] = -1024.0
        np.rint(c, out=c)
        np.clip(c, -1024, 3071, out=c)
        out[k0:k1] = c
    del hu
    ph = Phantom(
        hu=out,
        spacing=(sz, px, px),
        origin=(x0, y0, z0),
        direction=np.eye(3),
        lungs=lungs,
        lobes=lobes,
        nodules=labels,
        records=[],
        seed=seed,
        acquisition=a,
        rotation=np.asarray(rot, float),
        shift=np.asarray(shift, float),
        specs=list(specs),
        anatomy=an,
        options=dict(options or {}),
    )
    ph.records = _records(ph, cores)
    ph.cores = cores
    return ph


def _upsample(a: np.ndarray, f: int, ny: int, nx: int, *, linear: bool) -> np.ndarray:
    """In-plane upsampling by an integer factor onto the (ny, nx) output grid
    (coarse pixel i is centred on fine pixel i*f + (f-1)/2)."""
    if f == 1:
        return a[:, :ny, :nx].copy()
    if not linear:
        return np.repeat(np.repeat(a, f, axis=1), f, axis=2)[:, :ny, :nx]
    if f == 2:
        out = a
        for axis in (1, 2):
            n = out.shape[axis]
            prev = np.concatenate([out.take([0], axis=axis), out.take(range(n - 1), axis=axis)], axis=axis)
            nxt = np.concatenate([out.take(range(1, n), axis=axis), out.take([n - 1], axis=axis)], axis=axis)
            shp = list(out.shape)
            shp[axis] = 2 * n
            up = np.empty(shp, np.float32)
            ev = [slice(None)] * 3
            od = [slice(None)] * 3
            ev[axis] = slice(0, None, 2)
            od[axis] = slice(1, None, 2)
            up[tuple(ev)] = np.float32(0.75) * out + np.float32(0.25) * prev
            up[tuple(od)] = np.float32(0.75) * out + np.float32(0.25) * nxt
            out = up
        return np.ascontiguousarray(out[:, :ny, :nx])
    out = a
    for axis, n in ((1, ny), (2, nx)):
        src = (np.arange(n) - 0.5 * (f - 1)) / f
        if linear:
            i0 = np.clip(np.floor(src).astype(int), 0, out.shape[axis] - 1)
            i1 = np.clip(i0 + 1, 0, out.shape[axis] - 1)
            w = np.clip(src - i0, 0.0, 1.0).astype(np.float32)
            shp = [1, 1, 1]
            shp[axis] = n
            w = w.reshape(shp)
            out = out.take(i0, axis=axis) * (1 - w) + out.take(i1, axis=axis) * w
        else:
            out = out.take(np.clip(np.rint(src).astype(int), 0, out.shape[axis] - 1), axis=axis)
    return out


def _move_patient(
    H: np.ndarray, L: np.ndarray, rot: np.ndarray, g0: np.ndarray, spacing_zyx: tuple[float, float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Resample anatomy rendered on an axis-aligned anatomical grid (origin
    ``g0``, xyz) onto the world grid of a patient rotated by ``rot``: the
    follow-up's small repositioning. Linear for HU, nearest for labels."""
    from scipy import ndimage

    D = np.diag([spacing_zyx[2], spacing_zyx[1], spacing_zyx[0]])  # xyz
    Dinv = np.linalg.inv(D)
    M = Dinv @ rot.T @ D
    off = Dinv @ (rot.T @ g0 - g0)
    P = np.eye(3)[::-1]  # xyz <-> zyx
    Mz, oz = P @ M @ P, P @ off
    H2 = ndimage.affine_transform(H, Mz, oz, order=1, mode="nearest")
    L2 = ndimage.affine_transform(L, Mz, oz, order=0, mode="nearest")
    return H2, L2


def _table(hu: np.ndarray, grid: Grid, an: Anatomy, shift: np.ndarray) -> None:
    """The patient lies on a curved carbon-fibre table (thin bright shells over foam)."""
    _, ys, xs = grid.axes()
    y_back = shift[1] + an.body_yc + an.body_b * 0.93 + 3.0
    yt = y_back + (xs - shift[0]) ** 2 / 2200.0
    d = ys[:, None] - yt[None, :]
    inside = np.abs(xs - shift[0])[None, :] < 235.0
    top = (d > 0) & (d < 2.5) & inside
    foam = (d >= 2.5) & (d < 38) & inside
    bottom = (d >= 38) & (d < 41) & inside
    for m, v in ((foam, -930.0), (top, 260.0), (bottom, 200.0)):
        hu[:, m] = v


def _records(ph: Phantom, cores: dict[int, dict[str, np.ndarray]]) -> list[NoduleRecord]:
    """Measure each nodule from its mask (what a radiologist would measure)."""
    from scipy import ndimage

    vol = ph.to_volume()
    out: list[NoduleRecord] = []
    sl = ndimage.find_objects(ph.nodules)
    vv = float(np.prod(ph.spacing))
    an = ph.anatomy
    assert an is not None
    for spec in ph.specs:
        if spec.id > len(sl) or sl[spec.id - 1] is None:
            continue  # outside the field of view / scan range
        s = sl[spec.id - 1]
        m = ph.nodules[s] == spec.id
        n = int(m.sum())
        long_, short, _ = measure_axial(m, ph.spacing)
        c_world = ph.rotation @ spec.center + ph.shift
        cv = vol.lps_to_voxel(c_world)
        ci = tuple(int(v) for v in np.rint(cv))
        inside = all(0 <= ci[i] < ph.nodules.shape[i] for i in range(3)) and ph.nodules[ci] == spec.id
        if not inside:
            # the design centre fell outside the mask (cavity, clipped by the
            # pleura): use the mask voxel nearest the mask's centre of mass
            idx = np.argwhere(m)
            com = idx.mean(0)
            best = idx[int(np.argmin(((idx - com) ** 2).sum(1)))]
            ci = tuple(int(best[i] + s[i].start) for i in range(3))
            c_world = vol.voxel_to_lps(np.asarray(ci, float))
        if spec.type == "part-solid" and spec.id in cores:
            cm = cores[spec.id]["core"]
            cl, cs, _ = measure_axial(cm, ph.spacing)
            solid = 0.5 * (cl + cs) if cm.any() else 0.0
        elif spec.type == "ground-glass":
            solid = 0.0
        else:
            solid = 0.5 * (long_ + short)
        side = "right" if spec.center[0] < 0 else "left"
        feats = {k: v for k, v in spec.features.items() if k != "attachments"}
        if spec.vdt_days is not None:
            feats["vdt_days"] = float(spec.vdt_days)
        out.append(
            NoduleRecord(
                id=spec.id,
                type=spec.type,
                subtype=spec.kind,
                features=feats,
                long_axis_mm=round(long_, 1),
                short_axis_mm=round(short, 1),
                mean_diameter_mm=round(0.5 * (long_ + short), 1),
                solid_component_mm=round(solid, 1),
                volume_mm3=round(n * vv, 1),
                center_lps_mm=tuple(float(v) for v in c_world),  # type: ignore[arg-type]
                center_voxel_zyx=ci,  # type: ignore[arg-type]
                side=side,
                lobe=lobe_name(an, spec.center) or LOBE_NAMES.get(int(ph.lobes[ci]), ""),
                attachments=tuple(spec.features.get("attachments", [])),
                n_voxels=n,
                design_diameter_mm=round(2 * spec.radius_mm, 1),
            )
        )
    return out
