"""Synthetic lung nodules: design, placement, supersampled rendering, measurement.

Why supersampling: the ground truth that trains and checks the detector is
the *mask*, and the image must show the partial-volume edge a real scanner
shows. Each nodule is sampled several times per voxel (through the whole slice
thickness along z), so the voxel value is the true fractional occupancy and
the mask (occupancy >= 0.5) is exact for the rendered shape.

Measurements in the record are taken *from the mask* the way a radiologist
measures (Lung-RADS §3.1 of clinical-facts.md): on the axial slice with the
largest cross-section, the longest diameter and the longest diameter
perpendicular to it; the mean of the two; the volume from the voxel count.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from inference.synth.anatomy import FISS_KX, LOBE_NAMES, Anatomy, fissure_z, lung_lobe_at
from inference.synth.raster import Grid

__all__ = [
    "NODULE_KINDS",
    "NoduleSpec",
    "NoduleRecord",
    "design_nodules",
    "make_spec",
    "render_nodules",
    "measure_axial",
]

#: Kinds of nodule the generator can make (``nodule_types`` picks among them).
NODULE_KINDS = (
    "solid",
    "part-solid",
    "ground-glass",
    "calcified-central",
    "calcified-diffuse",
    "calcified-popcorn",
    "juxtapleural",
    "juxtavascular",
    "perifissural",
    "spiculated",
    "lobulated",
    "cavitary",
    "mass",
)


@dataclass
class NoduleSpec:
    """Design of one nodule in anatomical mm (see :mod:`inference.synth.anatomy`).

    ``radius_mm`` is the mean design radius of the outer (ground-glass
    included) boundary; ``axes`` stretch it; ``core_frac`` is the solid core's
    radius relative to it for part-solid nodules.
    """

    id: int
    type: str  # solid | part-solid | ground-glass | calcified
    kind: str  # one of NODULE_KINDS
    center: np.ndarray  # anatomical (X, Y, Z) mm
    radius_mm: float
    axes: tuple[float, float, float] = (1.0, 1.0, 1.0)
    rot: np.ndarray = field(default_factory=lambda: np.eye(3))
    hu_outer: float = 40.0
    hu_core: float = 40.0
    core_frac: float = 1.0
    calc: str = ""  # central | diffuse | popcorn
    calc_blobs: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))  # local xyz, r (fraction of R)
    bumps: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))  # dir xyz, amplitude
    spicules: np.ndarray = field(default_factory=lambda: np.zeros((0, 5)))  # dir xyz, length (xR), width mm
    cavity: np.ndarray = field(default_factory=lambda: np.zeros(0))  # local xyz offset, r (fraction of R)
    necrosis: bool = False
    features: dict[str, Any] = field(default_factory=dict)
    vdt_days: float | None = None  # growth used for follow-ups (None = stable)


@dataclass(frozen=True)
class NoduleRecord:
    """Ground truth of one rendered nodule (everything measured from its mask)."""

    id: int
    type: str
    subtype: str
    features: dict[str, Any]
    long_axis_mm: float
    short_axis_mm: float
    mean_diameter_mm: float
    solid_component_mm: float
    volume_mm3: float
    center_lps_mm: tuple[float, float, float]
    center_voxel_zyx: tuple[int, int, int]
    side: str
    lobe: str
    attachments: tuple[str, ...]
    n_voxels: int
    design_diameter_mm: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (tuples become lists)."""
        d = asdict(self)
        d["attachments"] = list(self.attachments)
        d["center_lps_mm"] = [round(float(v), 3) for v in self.center_lps_mm]
        d["center_voxel_zyx"] = [int(v) for v in self.center_voxel_zyx]
        return d


def _random_rot(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    return q


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.normal(size=(n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def make_spec(
    rng: np.random.Generator,
    an: Anatomy,
    nid: int,
    kind: str,
    diameter_mm: float,
    *,
    lobe: int | None = None,
    avoid: list[NoduleSpec] = (),  # type: ignore[assignment]
) -> NoduleSpec | None:
    """Design and place one nodule of ``kind`` and design diameter ``diameter_mm``.

    Returns ``None`` when no valid place was found (the caller tries another).
    """
    R = diameter_mm / 2.0
    spec = NoduleSpec(id=nid, type="solid", kind=kind, center=np.zeros(3), radius_mm=R)
    spec.rot = _random_rot(rng)
    spec.axes = tuple(float(a) for a in rng.uniform(0.85, 1.1, 3))  # type: ignore[assignment]
    spec.hu_outer = spec.hu_core = float(rng.uniform(25, 55))
    feats: dict[str, Any] = {}
    # nothing in a lung is a perfect sphere: gentle irregularity for every nodule
    nb0 = int(rng.integers(3, 7))
    spec.bumps = np.column_stack([_unit(rng, nb0), rng.uniform(0.03, 0.1, nb0)])
    if kind in ("lobulated", "mass", "spiculated") or (kind == "solid" and rng.random() < 0.3):
        nb = int(rng.integers(5, 10))
        spec.bumps = np.vstack([spec.bumps, np.column_stack([_unit(rng, nb), rng.uniform(0.15, 0.32, nb)])])
        feats["lobulated"] = True
    if kind in ("spiculated",) or (kind == "mass" and rng.random() < 0.6) or (kind == "part-solid" and rng.random() < 0.3):
        ns = int(rng.integers(20, 36))
        # a corona of strands: flattened towards the axial plane so that, as on
        # real CT, every axial slice through the nodule shows several of them
        dirs = _unit(rng, ns) * np.array([1.0, 1.0, 0.3])
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        dirs = dirs @ spec.rot  # anatomical -> the nodule's own frame
        spec.spicules = np.column_stack(
            [dirs, rng.uniform(0.5, 1.4, ns), rng.uniform(1.2, 2.6, ns) * min(1.0, 0.3 + R / 12.0)]
        )
        feats["spiculated"] = True
    if kind == "part-solid":
        spec.type = "part-solid"
        spec.hu_outer = float(rng.uniform(-620, -480))
        spec.hu_core = float(rng.uniform(10, 45))
        spec.core_frac = float(rng.uniform(0.3, 0.6))
    elif kind == "ground-glass":
        spec.type = "ground-glass"
        spec.hu_outer = spec.hu_core = float(rng.uniform(-700, -500))
        spec.core_frac = 0.0
        nb = int(rng.integers(3, 6))
        spec.bumps = np.column_stack([_unit(rng, nb), rng.uniform(0.1, 0.2, nb)])
    elif kind.startswith("calcified"):
        spec.type = "calcified"
        spec.calc = kind.split("-", 1)[1]
        feats["calcification"] = spec.calc
        if spec.calc == "popcorn":
            nb = int(rng.integers(4, 9))
            spec.calc_blobs = np.column_stack([_unit(rng, nb) * rng.uniform(0.2, 0.6, (nb, 1)), rng.uniform(0.15, 0.3, nb)])
            spec.hu_core = float(rng.uniform(700, 1000))
        elif spec.calc == "central":
            spec.calc_blobs = np.array([[0.0, 0.0, 0.0, float(rng.uniform(0.3, 0.5))]])
            spec.hu_core = float(rng.uniform(500, 900))
        else:
            spec.hu_outer = spec.hu_core = float(rng.uniform(350, 900))
    elif kind == "cavitary":
        off = _unit(rng, 1)[0] * rng.uniform(0.0, 0.2)
        spec.cavity = np.array([*off, float(rng.uniform(0.4, 0.6))])
        feats["cavitary"] = True
    elif kind == "mass":
        spec.necrosis = R > 20 and rng.random() < 0.7
        feats["mass"] = True
        # most lung cancers large enough to be masses reach the pleura or the
        # mediastinum (T3/T4 territory); a mass free in the lung is the rarer case
        feats["abuts"] = str(rng.choice(["", "pleura", "mediastinum"], p=[0.34, 0.33, 0.33]))
    if kind == "perifissural":
        spec.axes = (1.0, 1.0, float(rng.uniform(0.4, 0.55)))
    spec.features = feats
    return _place(rng, an, spec, lobe, list(avoid))


def _fissure_normal(an: Anatomy, x: float) -> tuple[np.ndarray, tuple[float, float]]:
    c0, c1 = an.fiss_r if x < 0 else an.fiss_l
    n = np.array([-c1 * FISS_KX * np.sign(x), -c1, 1.0])
    return n / np.linalg.norm(n), (c0, c1)


def _fits(an: Anatomy, c: np.ndarray, R: float, lobe: int | None, *, strict_lobe: bool = True) -> bool:
    """Every point on a sphere of radius R + 2 mm around c is lung (same lobe)."""
    d = _SPHERE * (R + 2.0) + c
    lb = lung_lobe_at(an, np.vstack([c[None], d]))
    if lb[0] == 0 or (lobe is not None and lb[0] != lobe):
        return False
    return bool(np.all(lb[1:] == lb[0])) if strict_lobe else bool(np.all(lb[1:] > 0))


#: Fixed wave vectors (rad/mm) and phases for the ground-glass texture.
_GGO_WAVES = np.random.default_rng(12345).normal(0.0, 1.1, (4, 3)).astype(np.float32)
_GGO_PHASES = np.random.default_rng(54321).uniform(0, 2 * np.pi, 4).astype(np.float32)

_SPHERE = np.array(
    [
        [np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)]
        for t in np.linspace(0, np.pi, 7)
        for p in np.linspace(0, 2 * np.pi, 10, endpoint=False)
    ]
)


def _lung_surface(an: Anatomy, p: np.ndarray, direction: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """First non-lung point marching from ``p`` along ``direction`` (0.5 mm steps, up to 20 cm), and the unit direction.

    ``None`` when ``p`` is not lung or no surface lies within reach. Nodules on a pleural
    surface (juxtapleural nodules, masses against the chest wall or the
    mediastinum) are centred a fraction of their radius back from it.
    """
    dirn = direction / (np.linalg.norm(direction) + 1e-9)
    steps = p + np.arange(0, 200, 0.5)[:, None] * dirn
    k = int(np.argmax(lung_lobe_at(an, steps) == 0))
    return None if k == 0 else (steps[k], dirn)


def _place(rng: np.random.Generator, an: Anatomy, spec: NoduleSpec, lobe: int | None, avoid: list[NoduleSpec]) -> NoduleSpec | None:
    R = spec.radius_mm * max(spec.axes)
    lo = np.array([-an.cav_a, an.cav_yc - an.cav_b, min(an.z_dome_r, an.z_dome_l) - 40])
    hi = np.array([an.cav_a, an.cav_yc + an.cav_b, an.z_apex - 10])

    def far_from_others(c: np.ndarray) -> bool:
        return all(np.linalg.norm(c - o.center) > R + o.radius_mm * 1.5 * (1 + 0.5 * len(o.spicules) > 0) + 4 for o in avoid)

    for _ in range(400):
        p = lo + (hi - lo) * rng.random(3)
        lb = int(lung_lobe_at(an, p[None])[0])
        if lb == 0 or (lobe is not None and lb != lobe):
            continue
        attach: list[str] = []
        if spec.kind == "juxtapleural":
            # march outwards (radially in the axial plane) to the costal pleura
            hit = _lung_surface(an, p, np.array([p[0], p[1] - an.cav_yc, 0.0]))
            if hit is None:
                continue
            surf, dirn = hit
            c = surf - dirn * (0.55 * spec.radius_mm + 0.5)
            if lung_lobe_at(an, c[None])[0] == 0 or not far_from_others(c):
                continue
            attach = ["pleura"]
        elif spec.kind == "mass" and spec.features.get("abuts"):
            # march to the costal pleura (radially outward in the axial plane) or to
            # the mediastinal pleura (medially); the mass straddles that surface and
            # is drawn in its lung part only, so it merges with the soft tissue there
            outward = [p[0], p[1] - an.cav_yc, 0.0] if spec.features["abuts"] == "pleura" else [-p[0], 0.0, 0.0]
            hit = _lung_surface(an, p, np.array(outward))
            if hit is None:
                continue
            surf, dirn = hit
            c = surf - dirn * (rng.uniform(0.45, 0.8) * spec.radius_mm)
            if lung_lobe_at(an, c[None])[0] == 0 or not far_from_others(c):
                continue
            attach = [str(spec.features["abuts"])]
        elif spec.kind == "perifissural":
            n, (c0, c1) = _fissure_normal(an, p[0])
            zf = float(fissure_z(c0, c1, np.asarray(p[0]), np.asarray(p[1])))
            c = np.array([p[0], p[1], zf + rng.uniform(-0.3, 0.3) * spec.radius_mm * spec.axes[2]])
            # the flat axis along the fissure normal
            e1 = np.cross(n, [1.0, 0, 0])
            e1 /= np.linalg.norm(e1)
            spec.rot = np.column_stack([e1, np.cross(n, e1), n])
            if not _fits(an, c, spec.radius_mm * 0.8, None, strict_lobe=False) or not far_from_others(c):
                continue
            attach = ["fissure"]
        elif spec.kind == "juxtavascular":
            v = an.vessels
            ok = np.nonzero((v.r0 > 1.2) & (v.r0 < 3.5))[0]
            if len(ok) == 0:
                continue
            j = int(rng.choice(ok))
            t = rng.uniform(0.2, 0.8)
            q = v.a[j] + t * (v.b[j] - v.a[j])
            d = v.b[j] - v.a[j]
            d /= np.linalg.norm(d) + 1e-9
            perp = np.cross(d, _unit(rng, 1)[0])
            perp /= np.linalg.norm(perp) + 1e-9
            c = q + perp * (v.r0[j] + 0.75 * spec.radius_mm)
            if not _fits(an, c, spec.radius_mm, None, strict_lobe=False) or not far_from_others(c):
                continue
            attach = ["vessel"]
        else:
            c = p
            if not _fits(an, c, R + 1.0, lobe) or not far_from_others(c):
                continue
        spec.center = np.asarray(c, float)
        spec.features = {**spec.features, "attachments": attach}
        return spec
    return None


def design_nodules(
    rng: np.random.Generator,
    an: Anatomy,
    n: int,
    kinds: tuple[str, ...] | None = None,
    *,
    size_mm: tuple[float, float] = (3.0, 30.0),
    first_id: int = 1,
) -> list[NoduleSpec]:
    """Place ``n`` nodules of random kinds (from ``kinds``) and log-uniform sizes.

    Masses (``"mass"``) are 30-70 mm whatever ``size_mm`` says.
    """
    kinds = tuple(kinds) if kinds else tuple(k for k in NODULE_KINDS if k != "mass")
    bad = [k for k in kinds if k not in NODULE_KINDS]
    if bad:
        raise ValueError(f"unknown nodule type(s) {bad}; choose from {', '.join(NODULE_KINDS)}")
    out: list[NoduleSpec] = []
    tries = 0
    # cycle through the requested kinds in a random order, so n >= len(kinds)
    # gives at least one of each
    order = rng.permutation(len(kinds))
    while len(out) < n and tries < n * 6:
        tries += 1
        kind = str(kinds[int(order[len(out) % len(kinds)])])
        if kind == "mass":
            d = float(rng.uniform(30, 70))
        else:
            d = float(np.exp(rng.uniform(np.log(size_mm[0]), np.log(size_mm[1]))))
            if kind.startswith("calcified") or kind in ("perifissural", "juxtapleural"):
                d = min(d, 12.0)
            if kind == "cavitary":
                d = max(d, 10.0)
        spec = make_spec(rng, an, first_id + len(out), kind, d, avoid=out)
        if spec is not None:
            out.append(spec)
    return out


# --------------------------------------------------------------------------- rendering


def _shape_fields(spec: NoduleSpec, L: np.ndarray) -> dict[str, np.ndarray]:
    """Boolean membership of local points ``L`` (..., 3) in mm, nodule frame."""
    R = spec.radius_mm
    ax = np.asarray(spec.axes)
    q = L / ax
    rho = np.sqrt((q * q).sum(-1)) + 1e-9
    u = q / rho[..., None]
    rs = np.full(rho.shape, R)
    for bx, by, bz, amp in spec.bumps:
        rs = rs + R * amp * np.clip(u[..., 0] * bx + u[..., 1] * by + u[..., 2] * bz, 0.0, 1.0) ** 2
    outer = rho < rs
    for sx, sy, sz, ln, wd in spec.spicules:
        t = L[..., 0] * sx + L[..., 1] * sy + L[..., 2] * sz
        perp2 = (L * L).sum(-1) - t * t
        # a spicule: a strand as thick as ``wd`` where it leaves the surface,
        # tapering to a thread; it starts inside so it merges with the nodule
        t0, t1 = 0.75 * R, R + max(2.5, R * ln)
        wr = np.maximum(0.3, 0.5 * wd * np.clip((t1 - t) / (t1 - R), 0.0, 1.0) * (1.0 + 0.5 * np.clip((R - t) / R, 0.0, 1.0)))
        outer |= (t > t0) & (t < t1) & (perp2 < wr * wr)
    f: dict[str, np.ndarray] = {"outer": outer}
    if spec.type == "part-solid":
        f["core"] = rho < rs * spec.core_frac
    if spec.calc in ("central", "popcorn"):
        calc = np.zeros(rho.shape, bool)
        for bx, by, bz, br in spec.calc_blobs:
            d = L - R * np.array([bx, by, bz])
            calc |= (d * d).sum(-1) < (br * R) ** 2
        f["calc"] = calc
    if len(spec.cavity):
        d = L - R * spec.cavity[:3]
        f["cavity"] = (d * d).sum(-1) < (spec.cavity[3] * R) ** 2
    if spec.necrosis:
        f["necrosis"] = rho < 0.55 * rs
    return f


def render_nodules(
    hu: np.ndarray,
    grid: Grid,
    lungs: np.ndarray,
    specs: list[NoduleSpec],
    rot: np.ndarray,
    shift: np.ndarray,
    *,
    oversample_mm: float = 0.5,
) -> tuple[np.ndarray, dict[int, dict[str, np.ndarray]]]:
    """Draw nodules into ``hu`` (float32, on the output ``grid``) in place.

    Returns the nodule label map (uint16, value = spec id; only lung voxels)
    and, per id, the boolean masks of the solid core (for the solid-component
    measurement).
    """
    labels = np.zeros(hu.shape, np.uint16)
    cores: dict[int, dict[str, np.ndarray]] = {}
    zs, ys, xs = grid.axes()
    sz, sy, sx = grid.spacing
    for spec in specs:
        c_world = rot @ spec.center + shift
        R = spec.radius_mm
        reach = max(
            1.0 + (float(spec.bumps[:, 3].sum()) if len(spec.bumps) else 0.0),
            1.0 + (max(2.5 / R, float(spec.spicules[:, 3].max())) if len(spec.spicules) else 0.0),
        )
        ext = R * max(spec.axes) * reach + 1.5
        idx = []
        for ax_vals, cw, sp in ((zs, c_world[2], sz), (ys, c_world[1], sy), (xs, c_world[0], sx)):
            lo = int(np.clip(np.searchsorted(ax_vals, cw - ext - sp) - 1, 0, len(ax_vals)))
            hi = int(np.clip(np.searchsorted(ax_vals, cw + ext + sp) + 1, 0, len(ax_vals)))
            idx.append((lo, hi))
        (k0, k1), (j0, j1), (i0, i1) = idx
        if k1 <= k0 or j1 <= j0 or i1 <= i0:
            continue
        # sub-sample offsets within a voxel (through the whole slice thickness
        # in z); big lesions get a coarser sampling so the cost stays bounded
        box_mm3 = (k1 - k0) * sz * (j1 - j0) * sy * (i1 - i0) * sx
        oversample_mm = max(oversample_mm, (box_mm3 / 1.5e6) ** (1 / 3))
        nsz = max(2, int(np.ceil(sz / oversample_mm)))
        nsy = max(2, int(np.ceil(sy / oversample_mm)))
        nsx = max(2, int(np.ceil(sx / oversample_mm)))
        oz = ((np.arange(nsz) + 0.5) / nsz - 0.5) * sz
        oy = ((np.arange(nsy) + 0.5) / nsy - 0.5) * sy
        ox = ((np.arange(nsx) + 0.5) / nsx - 0.5) * sx
        wy = (ys[j0:j1, None] + oy[None]).reshape(-1)
        wx = (xs[i0:i1, None] + ox[None]).reshape(-1)
        nj, ni = j1 - j0, i1 - i0
        core_box = np.zeros((k1 - k0, nj, ni), bool) if spec.type == "part-solid" else None
        # a few slices at a time keeps the sub-sample arrays small for masses
        step = max(1, int(4_000_000 // max(1, nj * ni * nsz * nsy * nsx)))
        for ka in range(k0, k1, step):
            kb = min(k1, ka + step)
            nk = kb - ka
            wz = (zs[ka:kb, None] + oz[None]).reshape(-1)
            W = np.stack(np.broadcast_arrays(wx[None, None, :], wy[None, :, None], wz[:, None, None]), -1)
            A = (W - shift) @ rot  # world -> anatomical: rot^T (w - t)
            Lc = ((A - spec.center) @ spec.rot).astype(np.float32)
            del W, A
            F = _shape_fields(spec, Lc)

            inv_n = np.float32(1.0 / (nsz * nsy * nsx))

            def frac(m: np.ndarray) -> np.ndarray:
                c = m.view(np.uint8).reshape(nk, nsz, nj, nsy, ni, nsx).sum(axis=5, dtype=np.uint16)
                return c.sum(axis=(1, 3), dtype=np.uint16).astype(np.float32) * inv_n

            fo = frac(F["outer"])
            sl = (slice(ka, kb), slice(j0, j1), slice(i0, i1))
            box = hu[sl]
            target = np.float32(spec.hu_outer)
            if spec.hu_outer < -200:
                # ground glass is not uniform: bubbly, patchy attenuation
                Lv = Lc.reshape(nk, nsz, nj, nsy, ni, nsx, 3)[:, nsz // 2, :, nsy // 2, :, nsx // 2]
                tex = np.zeros(Lv.shape[:3], np.float32)
                for kv, ph in zip(_GGO_WAVES, _GGO_PHASES):
                    tex += np.cos(Lv @ kv + ph)
                target = target + np.float32(45.0) * tex
            v = np.maximum(box, box + fo * (target - box))
            if "core" in F:
                fc = frac(F["core"])
                v = np.maximum(v, v + fc * (np.float32(spec.hu_core) - v))
                assert core_box is not None
                core_box[ka - k0 : kb - k0] = (fc >= 0.5) & (lungs[sl] > 0)
            if "necrosis" in F:
                fn = frac(F["necrosis"])
                v = v + fn * (np.float32(15.0) - v) * (fo > 0.99)
            if "calc" in F:
                fc = frac(F["calc"] & F["outer"])
                v = v + fc * (np.float32(spec.hu_core) - v)
            if "cavity" in F:
                fv = frac(F["cavity"] & F["outer"])
                v = v + fv * (np.float32(-990.0) - v)
            box[...] = v
            m = (fo >= 0.5) & (lungs[sl] > 0)
            lab = labels[sl]
            lab[m] = spec.id
        if core_box is not None:
            cores[spec.id] = {"core": core_box, "box": np.array([k0, k1, j0, j1, i0, i1])}
    return labels, cores


def measure_axial(mask: np.ndarray, spacing: tuple[float, float, float]) -> tuple[float, float, int]:
    """Long and short axis (mm) of a 3-D mask on its largest axial cross-section.

    The long axis is the largest distance between pixel *corners* of the
    section (the extent a caliper spans), the short axis the section's width
    perpendicular to it. Returns ``(long, short, z_index)``; zeros if empty.
    """
    from scipy.spatial import ConvexHull, QhullError

    areas = mask.reshape(mask.shape[0], -1).sum(1)
    if areas.max() == 0:
        return 0.0, 0.0, -1
    k = int(np.argmax(areas))
    jj, ii = np.nonzero(mask[k])
    sy, sx = spacing[1], spacing[2]
    corners = np.concatenate(
        [np.column_stack([(ii + dx) * sx, (jj + dy) * sy]) for dx in (-0.5, 0.5) for dy in (-0.5, 0.5)]
    )
    try:
        hull = corners[ConvexHull(corners).vertices]
    except (QhullError, ValueError):
        hull = corners
    d = hull[:, None, :] - hull[None, :, :]
    dist = np.sqrt((d * d).sum(-1))
    a, b = np.unravel_index(int(np.argmax(dist)), dist.shape)
    long_ = float(dist[a, b])
    u = (hull[b] - hull[a]) / max(long_, 1e-9)
    perp = np.array([-u[1], u[0]])
    proj = hull @ perp
    short = float(proj.max() - proj.min())
    return long_, short, k


def lobe_name(an: Anatomy, p: np.ndarray) -> str:
    """Lobe name at an anatomical point ("" outside the lungs)."""
    return LOBE_NAMES.get(int(lung_lobe_at(an, np.asarray(p, float)[None])[0]), "")

