"""Analytic chest anatomy for the synthetic CT phantoms.

Why analytic: every tissue is a cheap function of the anatomical coordinate
(X to the patient's left, Y posterior, Z superior, mm; the carina is near
Z = 0), so a slice can be evaluated at any resolution, a follow-up scan can
move the patient by an exact rigid transform, and ground truth (lung, lobe) is
known per voxel without segmentation. Tubular structures (great vessels,
airways, pulmonary vessels) are lists of segments drawn by
:mod:`inference.synth.raster`.

The anatomy of one patient is fixed by :func:`make_anatomy` from a random
generator; rendering never draws random numbers, so it is deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from inference.synth.raster import Segments

__all__ = ["Anatomy", "AnatomyRenderer", "make_anatomy", "reference_points", "fissure_z", "lung_lobe_at", "LOBE_NAMES", "HU"]

#: Lobe label values used in :attr:`Phantom.lobes`.
LOBE_NAMES = {1: "RUL", 2: "RML", 3: "RLL", 4: "LUL", 5: "LLL"}

#: Nominal tissue values (HU) -- inside the ranges of clinical-facts.md §9.1.
HU = {
    "air": -1000.0,
    "lung": -860.0,
    "fat": -95.0,
    "muscle": 48.0,
    "skin": 35.0,
    "blood": 40.0,
    "heart": 42.0,
    "liver": 58.0,
    "spleen": 48.0,
    "fluid": 12.0,
    "cartilage": 110.0,
    "cancellous": 330.0,
    "cortical": 1250.0,
    "disc": 85.0,
    "csf": 12.0,
    "emphysema": -975.0,
}


@dataclass
class Anatomy:
    """Shape parameters and tube lists of one synthetic patient (anatomical mm)."""

    sex: str
    scale: float
    body_a: float
    body_b: float
    body_yc: float
    fat_mm: float
    cav_a: float
    cav_b: float
    cav_yc: float
    z_apex: float
    z_dome_r: float
    z_dome_l: float
    rib_z1: float
    rib_pitch: float
    rib_drop: float
    vb_y: float
    fiss_r: tuple[float, float]  # oblique fissure Z = c0 + c1 * (Y + FISS_KX * (|X| - 60)) + waves (right)
    fiss_l: tuple[float, float]
    fiss_h: float  # horizontal fissure height (right)
    tex: np.ndarray  # (K, 7) lung texture terms: amp, kx, ky, kz, px, py, pz
    mediastinum: Segments  # soft tissue that is "not lung"
    med_fat: Segments  # mediastinal / pericardial fat (drawn first)
    bones: Segments  # clavicles
    air: Segments  # trachea + main bronchi lumen
    vessels: Segments = field(default_factory=Segments.empty)
    airway_wall: Segments = field(default_factory=Segments.empty)
    airway_lumen: Segments = field(default_factory=Segments.empty)
    emphysema: Segments = field(default_factory=Segments.empty)
    effusion_mm: float = 0.0
    atelectasis_mm: float = 0.0
    z_min: float = 0.0
    z_max: float = 0.0


def _caps(points: list[tuple[tuple[float, float, float], ...]], radii: list[float], values: list[float], s: float) -> Segments:
    """Polylines -> segments (anatomical mm scaled by the patient scale ``s``)."""
    a, b, r, v = [], [], [], []
    for pts, rad, val in zip(points, radii, values):
        for p, q in zip(pts[:-1], pts[1:]):
            a.append(p)
            b.append(q)
            r.append(rad)
            v.append(val)
    if not a:
        return Segments.empty()
    ra = np.asarray(r, float) * s
    return Segments(np.asarray(a, float) * s, np.asarray(b, float) * s, ra, ra.copy(), np.asarray(v, float))


def make_anatomy(
    rng: np.random.Generator,
    *,
    sex: str | None = None,
    emphysema: bool = False,
    effusion: bool = False,
    atelectasis: bool = False,
    vessel_density: float = 1.0,
) -> Anatomy:
    """Draw one patient's anatomy.

    Parameters
    ----------
    rng
        Source of all randomness (the phantom seed).
    sex
        ``"F"`` or ``"M"``; drawn when ``None``.
    emphysema, effusion, atelectasis
        Optional pathology.
    vessel_density
        Scales the number of terminal vessel territories: 1.0 for the demo,
        lower for fast training phantoms (fewer, slightly coarser branches).
    """
    sex = sex or ("F" if rng.random() < 0.5 else "M")
    s = float(rng.uniform(0.9, 1.08) * (0.95 if sex == "F" else 1.0))
    wf = float(rng.uniform(0.94, 1.06))
    af = float(rng.uniform(0.92, 1.08))
    z_apex = 88.0 * s
    z_dome_r = float(-128.0 * s + rng.uniform(-10, 10))
    z_dome_l = z_dome_r - float(rng.uniform(8, 18))
    rib_z1 = z_apex + 2.0
    rib_pitch = (rib_z1 - (z_dome_l - 55.0 * s)) / 11.0
    tex = np.column_stack(
        [
            rng.uniform(4, 10, 6),
            rng.uniform(0.02, 0.12, (6, 3)),
            rng.uniform(0, 2 * np.pi, (6, 3)),
        ]
    )
    ax = float(rng.uniform(-4, 4))  # slight aortic variation
    med = _caps(
        [
            ((0, -8, 95), (0, -14, -40)),  # anterior/middle mediastinal column
            ((0, 56, 110), (0, 58, -230)),  # paraspinal
            ((3, 40, 110), (15, 35, -150)),  # oesophagus
            ((-6, -14, -70), (44, -32, -118)),  # heart
            ((-30, -4, -92), (-24, -8, -122)),  # right atrium
            ((6, 18, -70), (10, 22, -85)),  # left atrium
            ((-12 + ax, -18, -70), (-12 + ax, -24, 24)),  # ascending aorta
            ((-12 + ax, -24, 24), (0, -12, 38), (18, 22, 32)),  # arch
            ((18, 26, 32), (22, 34, -170)),  # descending aorta
            ((20, -34, -56), (14, -22, -14)),  # pulmonary trunk
            ((14, -22, -14), (-30, 2, -18), (-52, 8, -24)),  # right PA
            ((14, -22, -14), (38, 6, -8), (52, 14, -16)),  # left PA
            ((-34, -14, 44), (-30, -10, -56)),  # SVC
            ((-5, -20, 36), (-24, -18, 100)),  # brachiocephalic trunk
            ((5, -14, 38), (16, -8, 100)),  # left common carotid
            ((15, 2, 36), (38, 12, 96)),  # left subclavian
            ((-34, -14, 44), (-44, -8, 100)),  # right brachiocephalic vein
            ((-32, -20, 44), (34, -26, 76)),  # left brachiocephalic vein
            ((-50, 12, -22), (-50, 12, -22)),  # right hilum
            ((50, 16, -16), (50, 16, -16)),  # left hilum
            ((0, 10, 120), (0, 15, 0)),  # trachea (wall)
            ((0, 15, 0), (-36, 20, -22)),  # right main bronchus (wall)
            ((0, 15, 0), (42, 22, -30)),  # left main bronchus (wall)
        ],
        [28, 24, 8, 47, 30, 24, 15, 13, 12, 14, 11, 10, 10, 7, 5, 6, 8, 6, 15, 13, 11, 8.5, 8],
        [-75, 45, 40, HU["heart"], HU["heart"], HU["heart"], 42, 42, 42, 42, 42, 42, 40, 42, 42, 42, 40, 40, 42, 42, 45, 45, 45],
        s,
    )
    med_fat = _caps([((-6, -14, -70), (44, -32, -118)), ((-30, -4, -92), (-24, -8, -122))], [51.0, 33.5], [-85, -85], s)
    air = _caps(
        [((0, 10, 125), (0, 15, 0)), ((0, 15, 0), (-36, 20, -22)), ((0, 15, 0), (42, 22, -30))],
        [8.5, 6.8, 6.3],
        [HU["air"]] * 3,
        s,
    )
    bones = _caps(
        [((-22, -70, 78), (-70, -62, 88), (-125, -40, 100)), ((22, -70, 78), (70, -62, 88), (125, -40, 100))],
        [7, 7],
        [650, 650],
        s,
    )
    an = Anatomy(
        sex=sex,
        scale=s,
        body_a=152.0 * s * wf,
        body_b=112.0 * s * af,
        body_yc=6.0 * s,
        fat_mm=float(rng.uniform(6, 24) * (1.2 if sex == "F" else 1.0)),
        cav_a=128.0 * s * wf,
        cav_b=90.0 * s * af,
        cav_yc=8.0 * s,
        z_apex=z_apex,
        z_dome_r=z_dome_r,
        z_dome_l=z_dome_l,
        rib_z1=rib_z1,
        rib_pitch=rib_pitch,
        rib_drop=float(rng.uniform(75, 95) * s),
        vb_y=58.0 * s,
        fiss_r=(float(-62 * s + rng.uniform(-6, 6)), float(rng.uniform(1.0, 1.25))),
        fiss_l=(float(-68 * s + rng.uniform(-6, 6)), float(rng.uniform(1.1, 1.35))),
        fiss_h=float(-40 * s + rng.uniform(-8, 8)),
        tex=tex,
        mediastinum=med,
        med_fat=med_fat,
        bones=bones,
        air=air,
        effusion_mm=float(rng.uniform(20, 45)) if effusion else 0.0,
        atelectasis_mm=float(rng.uniform(6, 14)) if atelectasis else 0.0,
        z_min=z_dome_l - 80.0 * s,
        z_max=z_apex + 25.0 * s,
    )
    _grow_trees(an, rng, vessel_density)
    if emphysema:
        _emphysema(an, rng)
    return an


def reference_points(an: Anatomy) -> dict[str, np.ndarray]:
    """Anatomical points well inside one tissue each, for checking HU.

    Returns ``{tissue: (x, y, z)}``: subcutaneous fat (lateral wall), muscle
    (paraspinal), blood (descending aorta), heart, cancellous bone (a vertebral
    body between two discs), liver, air (in front of the patient).
    """
    s = an.scale
    z_mid = -40.0 * s
    level = (an.rib_z1 + 8.0 * s - z_mid) / an.rib_pitch
    z_vb = an.rib_z1 + 8.0 * s - (np.floor(level) + 0.5) * an.rib_pitch  # half-way between discs
    # the descending aorta tube, half-way down
    d0, d1 = np.array([18, 26, 32]) * s, np.array([22, 34, -170]) * s
    aorta = d0 + (d1 - d0) * ((z_mid - d0[2]) / (d1[2] - d0[2]))
    h0, h1 = np.array([-6, -14, -70]) * s, np.array([44, -32, -118]) * s
    return {
        # lateral wall, half-way through the subcutaneous fat (thickest there)
        "fat": np.array([-(an.body_a - 1.0 - 0.5 * (an.fat_mm * 1.3 + 2.0)), an.body_yc, z_mid]),
        "muscle": np.array([30.0 * s, an.vb_y + 35.0 * s, z_mid]),
        "blood": aorta,
        "heart": 0.5 * (h0 + h1),
        "cancellous": np.array([0.0, an.vb_y, z_vb]),
        "liver": np.array([-60.0 * s, 0.0, an.z_dome_r - 60.0 * s]),
        "air": np.array([0.0, an.body_yc - an.body_b - 25.0, z_mid]),
    }


# --------------------------------------------------------------------------- fields


def _cavity(an: Anatomy, X: np.ndarray, Y: np.ndarray, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(depth inside the thoracic cavity in mm, negative outside; apex mask)."""
    taper = 1.0 - 0.10 * np.clip((Z + 20.0) / 80.0, 0.0, 1.0)
    a = an.cav_a * taper
    dy = Y - an.cav_yc
    # kidney shape: the spine indents the cavity posteriorly
    b = np.where(dy > 0, an.cav_b - 30.0 * an.scale * np.exp(-((X / (34.0 * an.scale)) ** 2)), an.cav_b)
    r = np.sqrt(X * X + dy * dy) + 1e-3
    rho = np.sqrt((X / a) ** 2 + (dy / b) ** 2) + 1e-6
    depth = r * (1.0 / rho - 1.0)
    # apical domes, one per lung
    zt = an.z_apex - 62.0 * an.scale
    u = np.clip((Z - zt) / (an.z_apex - zt), 0.0, 1.5)
    ra = np.sqrt(np.clip(1.0 - u * u, 0.0, 1.0))
    apx = ((np.abs(X) - 58.0 * an.scale) / (60.0 * an.scale)) ** 2 + ((Y - 12.0 * an.scale) / (62.0 * an.scale)) ** 2
    apex_ok = (Z < zt) | (apx < ra * ra)
    return depth, apex_ok


def _dome(an: Anatomy, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Height of the diaphragm under each lung (lower laterally and posteriorly)."""
    s = an.scale
    right = X < 0
    z0 = np.where(right, an.z_dome_r, an.z_dome_l)
    xc = np.where(right, -55.0 * s, 60.0 * s)
    yy = Y - 5.0 * s
    post = np.where(yy > 0, 42.0, 22.0) * (yy / (70.0 * s)) ** 2
    return z0 - 34.0 * ((X - xc) / (75.0 * s)) ** 2 - post


#: The oblique fissure also runs forward laterally, so on an axial slice it is
#: an oblique line from postero-medial to antero-lateral, as on real CT.
FISS_KX = 0.35


def fissure_z(c0: float | np.ndarray, c1: float | np.ndarray, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Height of the oblique fissure above the point (X, Y) (anatomical mm)."""
    wav = 4.0 * np.sin(X / 23.0) + 3.0 * np.cos(Y / 31.0)
    return c0 + c1 * (Y + FISS_KX * (np.abs(X) - 60.0)) + wav


def _lobe_of(an: Anatomy, X: np.ndarray, Y: np.ndarray, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lobe label (1..5) where a voxel *would* be lung, and the signed distance
    (mm) to the nearest fissure, used to draw the fissure line."""
    right = X < 0
    c0 = np.where(right, an.fiss_r[0], an.fiss_l[0])
    c1 = np.where(right, an.fiss_r[1], an.fiss_l[1])
    d_obl = (Z - fissure_z(c0, c1, X, Y)) / np.sqrt(1.0 + c1 * c1)
    upper_part = d_obl > 0
    d_h = Z - (an.fiss_h + 0.12 * Y + 2.5 * np.sin(X / 19.0))
    lobe = np.where(
        right,
        np.where(upper_part, np.where(d_h > 0, 1, 2), 3),
        np.where(upper_part, 4, 5),
    ).astype(np.uint8)
    dist = np.abs(d_obl)
    dist = np.where(right & upper_part, np.minimum(dist, np.abs(d_h)), dist)
    return lobe, dist


def _inside_segments(seg: Segments, P: np.ndarray) -> np.ndarray:
    """Which points ``P`` (N, 3) lie inside any tube of ``seg`` (anatomical)."""
    inside = np.zeros(len(P), bool)
    for a, b, r in zip(seg.a, seg.b, seg.r0):
        d = b - a
        L2 = max(float(d @ d), 1e-9)
        t = np.clip((P - a) @ d / L2, 0, 1)
        e = P - a - t[:, None] * d
        inside |= (e * e).sum(1) < r * r
    return inside


def lung_lobe_at(an: Anatomy, P: np.ndarray) -> np.ndarray:
    """Lobe label (0 = not lung) at anatomical points ``P`` (N, 3) -- the same
    rule as :func:`render_chunk`, for placing nodules and growing trees."""
    X, Y, Z = P[:, 0], P[:, 1], P[:, 2]
    depth, apex_ok = _cavity(an, X, Y, Z)
    lung = (depth > 0) & apex_ok & (Z > _dome(an, X, Y)) & ~_inside_segments(an.mediastinum, P)
    if an.effusion_mm > 0:
        lung &= ~_effusion(an, X, Y, Z, depth)
    lobe, _ = _lobe_of(an, X, Y, Z)
    return np.where(lung, lobe, 0).astype(np.uint8)


def _effusion(an: Anatomy, X: np.ndarray, Y: np.ndarray, Z: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """Dependent pleural fluid: a posterior crescent, deepest at the bases."""
    zb = np.minimum(an.z_dome_r, an.z_dome_l)
    thick = an.effusion_mm * np.clip((zb + 60.0 * an.scale - Z) / (90.0 * an.scale), 0.0, 1.0)
    return (depth < thick) & (Y > an.cav_yc + 10.0 * an.scale) & (X > 0)


class AnatomyRenderer:
    """Evaluates the static anatomy plane by plane on a fixed (y, x) grid.

    Why a class: everything that depends only on the in-plane position (angles,
    distances, the diaphragm height, fissure offsets, texture) is computed once
    and reused for every plane, so a plane costs a few dozen cheap 2-D
    operations. Coordinates are *anatomical* (an axis-aligned grid in the
    patient frame); a rotated patient is handled by resampling the result.
    """

    def __init__(self, an: Anatomy, x: np.ndarray, y: np.ndarray) -> None:
        s = an.scale
        self.an = an
        X, Y = np.meshgrid(np.asarray(x, np.float32), np.asarray(y, np.float32))
        self.X, self.Y = X, Y
        self.absX = np.abs(X)
        self.right = X < 0
        dyb = Y - an.body_yc
        self.rb = np.sqrt(X * X + dyb * dyb) + 1e-3
        b_b = np.where(dyb > 0, an.body_b * 0.93, an.body_b)
        self.tX = self.absX ** np.float32(2.3)
        self.tY = (np.abs(dyb) / b_b) ** np.float32(2.3)
        dy = Y - an.cav_yc
        self.cav_dy = dy
        self.cav_b = np.where(dy > 0, an.cav_b - 30.0 * s * np.exp(-((X / (34.0 * s)) ** 2)), an.cav_b).astype(np.float32)
        self.cav_r = np.sqrt(X * X + dy * dy) + 1e-3
        self.apx = (((self.absX - 58.0 * s) / (60.0 * s)) ** 2 + ((Y - 12.0 * s) / (62.0 * s)) ** 2).astype(np.float32)
        self.dome = _dome(an, X, Y).astype(np.float32)
        phi = np.arctan2(self.absX, -dy)
        self.phi = phi
        self.fat_t = an.fat_mm * (0.8 + 0.5 * np.sin(phi) ** 2) + 2.0
        self.muscle_front = 14.0 * np.exp(-((phi - 0.45) / 0.35) ** 2)
        self.muscle_back = 9.0 + 30.0 * np.exp(-((phi - np.pi) / 0.5) ** 2)
        self.g = np.clip((2.75 - phi) / 2.4, 0.0, 1.0)
        c0 = np.where(self.right, an.fiss_r[0], an.fiss_l[0])
        c1 = np.where(self.right, an.fiss_r[1], an.fiss_l[1])
        self.obl_base = fissure_z(c0, c1, X, Y).astype(np.float32)
        self.obl_norm = (1.0 / np.sqrt(1.0 + c1 * c1)).astype(np.float32)
        self.h_base = (an.fiss_h + 0.12 * Y + 2.5 * np.sin(X / 19.0)).astype(np.float32)
        self.grad = (HU["lung"] + 40.0 * np.clip(dy / an.cav_b, -1.0, 1.0)).astype(np.float32)
        self.tex = [
            (amp * np.cos(kx * X + px) * np.cos(ky * Y + py)).astype(np.float32, copy=False) for amp, kx, ky, kz, px, py, pz in an.tex
        ]
        self.dvb = np.sqrt(X * X + (Y - an.vb_y) ** 2)
        ys_front = an.cav_yc - an.cav_b
        self.stern_yc = ys_front - 8.0

    def plane(self, Z: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """HU (float32), lobe label (0 = not lung; lungs follow: 1-3 right,
        4-5 left) and "inner" mask (thoracic cavity and neck without bone,
        where mediastinal and pulmonary tubes may be drawn) at height ``Z``."""
        an, s, X, Y = self.an, self.an.scale, self.X, self.Y
        hu = np.full(X.shape, HU["air"], np.float32)
        # ------------------------------------------------------------ body wall
        a_b = an.body_a * (1.0 + 0.16 / (1.0 + np.exp(-(Z - 70.0 * s) / 12.0)))
        rho_b = (self.tX / a_b**2.3 + self.tY) ** np.float32(1 / 2.3) + 1e-6
        d_skin = self.rb * (1.0 / rho_b - 1.0)
        d_breast = None
        if an.sex == "F" and -140 * s < Z < -25 * s:
            for sx in (-1.0, 1.0):
                # supine breasts are flattened and spread laterally: fat with
                # fibroglandular strands on top of the pectoral muscle
                q = ((X - sx * 80 * s) / (76 * s)) ** 2 + ((Y + an.body_b - 20 * s) / (32 * s)) ** 2 + ((Z + 85 * s) / (50 * s)) ** 2
                db = (1.0 - np.sqrt(q)) * 26 * s
                d_breast = db if d_breast is None else np.maximum(d_breast, db)
        body = d_skin > 0
        taper = 1.0 - 0.10 * min(max((Z + 20.0) / 80.0, 0.0), 1.0)
        a_c = an.cav_a * taper
        rho = np.sqrt((X / a_c) ** 2 + (self.cav_dy / self.cav_b) ** 2) + 1e-6
        depth = self.cav_r * (1.0 / rho - 1.0)
        zt = an.z_apex - 62.0 * s
        if Z < zt:
            apex_ok = True
        else:
            u = min((Z - zt) / (an.z_apex - zt), 1.5)
            apex_ok = self.apx < max(1.0 - u * u, 0.0)
        out_c = -depth
        hu[body] = HU["fat"]
        muscle_t = self.muscle_back + (self.muscle_front if Z > -60 else 0.0)
        musc = body & (d_skin > self.fat_t)
        hu[musc] = HU["muscle"]
        hu[body & (d_skin < 2.0)] = HU["skin"]
        if d_breast is not None:
            breast = (d_breast > 0) & (d_skin < self.fat_t)
            hu[breast] = HU["fat"]
            core = breast & (d_breast > 9.0 * s)
            # fibroglandular tissue mixed with fat: denser towards the nipple
            hu[core] = (-70.0 + 90.0 * np.clip(d_breast[core] / (20.0 * s), 0.0, 1.0)).astype(np.float32)
            hu[breast & (d_breast < 2.0) & (d_skin < 0.5)] = HU["skin"]
            body |= breast
        hu[(out_c > 0.8) & (out_c < 2.2) & body] = -70.0  # extrapleural fat
        # intermuscular fat plane in the thick muscles
        hu[musc & (np.abs(out_c - muscle_t * 0.55 - 6.0) < 1.2) & (out_c > 10)] = -80.0
        # ------------------------------------------------------------ ribs
        u = (an.rib_z1 - (Z + an.rib_drop * self.g)) / an.rib_pitch
        i = np.rint(u)
        zdiff = (u - i) * an.rib_pitch
        h = 5.5 * s * np.where(i < 1, 0.75, 1.0)
        t = 7.0 * s
        rr = (zdiff / h) ** 2 + ((out_c - 2.5 - t / 2) / (t / 2)) ** 2
        rib = (rr < 1.0) & (i >= 0) & (i <= 11) & (self.phi > 0.35 + 0.02 * i) & (self.phi < 2.75) & body
        rib &= ~((i >= 10) & (self.phi < 1.6))
        hu[rib] = np.where(rr[rib] > 0.5, HU["cortical"] * 0.9, HU["cancellous"] + 60)
        hu[rib & (self.g > 0.78)] = HU["cartilage"]
        # ------------------------------------------------------------ scapulae
        ztop, zbot = 70.0 * s, -55.0 * s
        scap = np.zeros(X.shape, bool)
        if zbot < Z < ztop:
            frac = (Z - zbot) / (ztop - zbot)
            scap = (
                (self.phi > 2.25 - 0.45 * frac) & (self.phi < 2.25 + 0.35 * frac)
                & (out_c > t + 12.0) & (out_c < t + 16.0) & body
            )
            hu[scap] = 620.0
        # ------------------------------------------------------------ sternum
        stern = np.zeros(X.shape, bool)
        if -115.0 * s < Z < 70.0 * s:
            w = (14.0 + 10.0 * (Z > 45 * s)) * s
            e = (X / w) ** 2 + ((Y - self.stern_yc) / 5.5) ** 2
            stern = (e < 1.0) & body
            hu[stern] = np.where(e[stern] > 0.55, HU["cortical"] * 0.7, HU["cancellous"])
        # ------------------------------------------------------------ cavity contents
        cav = (depth > 0) & apex_ok
        abdo = cav & (Z <= self.dome)
        lung = cav & (Z > self.dome)
        d_obl = (Z - self.obl_base) * self.obl_norm
        upper = d_obl > 0
        d_h = Z - self.h_base
        lobe = np.where(self.right, np.where(upper, np.where(d_h > 0, 1, 2), 3), np.where(upper, 4, 5)).astype(np.uint8)
        fdist = np.abs(d_obl)
        np.minimum(fdist, np.where(self.right & upper, np.abs(d_h), np.inf), out=fdist)
        lung_hu = self.grad.copy()
        for txy, (_, _, _, kz, _, _, pz) in zip(self.tex, an.tex):
            lung_hu += txy * np.float32(np.cos(kz * Z + pz))
        lung_hu += 160.0 * np.clip(1.0 - fdist / 0.7, 0.0, 1.0)
        np.copyto(hu, lung_hu, where=lung)
        if an.atelectasis_mm > 0:
            atel = lung & (depth < an.atelectasis_mm) & (self.cav_dy > 0.4 * an.cav_b) & (Z < self.dome + 45 * s)
            hu[atel] = 25.0
        if an.effusion_mm > 0:
            eff = cav & _effusion(an, X, Y, Z, depth) & (Z > self.dome - 10)
            hu[eff] = HU["fluid"]
            lung &= ~eff
        if (abdo_any := abdo.any()):
            hu[abdo] = HU["spleen"]
            hu[abdo & (X < 25.0 * s)] = HU["liver"]
            gas = abdo & (((X - 55 * s) / 35) ** 2 + ((Y + 25 * s) / 30) ** 2 + ((Z - an.z_dome_l + 12 * s) / 14) ** 2 < 1)
            hu[gas] = HU["air"]
        del abdo_any
        # ------------------------------------------------------------ spine
        rvb = (16.0 + 6.0 * min(max(-Z / 200.0, 0.0), 1.0)) * s
        level = (an.rib_z1 + 8.0 * s - Z) / an.rib_pitch
        disc = abs(level - round(level)) * an.rib_pitch < 2.6 * s
        vb = self.dvb < rvb
        if disc:
            hu[vb] = HU["disc"]
        else:
            hu[vb] = HU["cancellous"]
            hu[vb & (self.dvb > rvb - 1.6)] = HU["cortical"] * 0.75
        cy = an.vb_y + rvb + 8.0 * s
        dc = np.sqrt(X * X + (Y - cy) ** 2)
        post = (dc < 14.0 * s) & (dc > 8.5 * s) & (Y > cy - 9.0 * s)
        if not disc:
            post |= (self.absX < 3.0 * s) & (Y > cy + 8 * s) & (Y < cy + 34.0 * s)
            post |= (np.abs(Y - cy + 0.25 * (self.absX - 8 * s)) < 3.5 * s) & (self.absX > 8 * s) & (self.absX < 27.0 * s)
        post &= ~vb
        hu[post] = 520.0
        hu[dc < 8.5 * s] = HU["csf"]
        hu[dc < 5.0 * s] = 32.0  # cord
        bone = vb | post
        lung &= ~bone
        inner = (depth > 0) & ~(bone | rib | stern | scap) & body
        lobe = np.where(lung, lobe, 0).astype(np.uint8)
        return hu, lobe, inner


# --------------------------------------------------------------------------- trees


def _grow_trees(an: Anatomy, rng: np.random.Generator, density: float) -> None:
    """Pulmonary arteries, veins and airways as space-filling branching trees.

    Each tree owns attractor points sampled in its lung; a branch heads for the
    centroid of its points, then the set is split in two across its longest
    axis and each half becomes a child (Kitaoka-style). Radii follow Murray's
    law (r^3 proportional to the flow, i.e. to the number of points served),
    so vessels taper smoothly to sub-millimetre calibre near the pleura.
    """
    s = an.scale
    n_target = int(9000 * density)
    lo = np.array([-an.cav_a, an.cav_yc - an.cav_b, an.z_min])
    hi = np.array([an.cav_a, an.cav_yc + an.cav_b, an.z_apex])
    vessels, walls, lumens = [], [], []
    for kind, value in (("artery", 42.0), ("vein", 38.0)):
        pts = lo + (hi - lo) * rng.random((int(n_target * 3.2), 3))
        lab = lung_lobe_at(an, pts)
        keep = lab > 0
        pts, lab = pts[keep], lab[keep]
        for side, root, r_root in (
            ("R", np.array([-50, 6 if kind == "artery" else 26, -22 if kind == "artery" else -58]) * s, 8.0),
            ("L", np.array([50, 12 if kind == "artery" else 28, -16 if kind == "artery" else -55]) * s, 7.5),
        ):
            mask = (pts[:, 0] < 0) if side == "R" else (pts[:, 0] >= 0)
            P, Lb = pts[mask], lab[mask]
            segs = _tree(P, Lb, root, r_root * s, rng, n_leaf=2, r_min=0.4)
            vessels.append(np.column_stack([segs, np.full(len(segs), value)]))
            if kind == "artery":
                w, lmn = _airways(segs, rng)
                walls.append(w)
                lumens.append(lmn)
    v = np.concatenate(vessels)
    an.vessels = Segments(v[:, 0:3], v[:, 3:6], v[:, 6], v[:, 7], v[:, 8])
    w = np.concatenate(walls)
    an.airway_wall = Segments(w[:, 0:3], w[:, 3:6], w[:, 6], w[:, 7], np.full(len(w), 30.0))
    lm = np.concatenate(lumens)
    an.airway_lumen = Segments(lm[:, 0:3], lm[:, 3:6], lm[:, 6], lm[:, 7], np.full(len(lm), HU["air"]))


#: radius ~ (territory size)^_TAPER; Murray's 1/3 with a finite number of
#: territories leaves the twigs too thick, 0.42 matches lobar ~4 mm, segmental
#: ~2 mm and sub-millimetre terminal vessels.
_TAPER = 0.36


def _tree(P: np.ndarray, lobes: np.ndarray, root: np.ndarray, r_root: float, rng: np.random.Generator, *, n_leaf: int, r_min: float) -> np.ndarray:
    """Grow one tree; returns segments as rows ``(a xyz, b xyz, r0, r1)``."""
    out: list[tuple] = []
    n_all = len(P)
    # first generation: one branch per lobe, so vessels respect the fissures
    stack = []
    for lb in np.unique(lobes):
        idx = np.nonzero(lobes == lb)[0]
        stack.append((root, idx, r_root * (len(idx) / n_all) ** _TAPER * 1.05, r_root))
    while stack:
        p, idx, r, r_parent = stack.pop()
        Q = P[idx]
        c = Q.mean(0)
        n = len(idx)
        if n <= n_leaf or r < r_min:
            # terminal twig: run towards the centroid, tapering
            end = p + (c - p) * 1.0
            out.append((*p, *end, max(r, r_min), max(r * 0.7, r_min)))
            continue
        frac = 0.3 if n > 400 else (0.45 if n > 40 else 0.6)
        q = p + (c - p) * frac
        q += rng.normal(0, 0.6, 3) * min(1.0, r)
        out.append((*p, *q, min(r_parent, r * 1.05), r))
        # split across the longest axis of the territory
        D = Q - c
        ext = D.std(0)
        ax = int(np.argmax(ext))
        cov = D.T @ D
        w, v = np.linalg.eigh(cov)
        dirn = v[:, -1] if w[-1] > 0 else np.eye(3)[ax]
        proj = D @ dirn
        cut = np.median(proj) + rng.normal(0, 0.15) * proj.std()
        left = idx[proj <= cut]
        right = idx[proj > cut]
        if len(left) == 0 or len(right) == 0:
            out.append((*q, *c, r, max(r * 0.6, 0.15)))
            continue
        for child in (left, right):
            rc = r * (len(child) / n) ** _TAPER
            stack.append((q, child, rc, r))
    return np.asarray(out, float)


def _airways(art: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Bronchi beside the arteries (broncho-arterial bundles) down to ~1 mm
    calibre: an air lumen about the artery's size inside a thin soft-tissue wall."""
    big = art[np.minimum(art[:, 6], art[:, 7]) >= 1.1]
    a, b = big[:, 0:3], big[:, 3:6]
    d = b - a
    d /= np.linalg.norm(d, axis=1, keepdims=True) + 1e-9
    ref = np.where(np.abs(d[:, 2:3]) < 0.9, np.array([[0, 0, 1.0]]), np.array([[1.0, 0, 0]]))
    perp = np.cross(d, ref)
    perp /= np.linalg.norm(perp, axis=1, keepdims=True) + 1e-9
    rl0 = 0.85 * big[:, 6]
    rl1 = 0.85 * big[:, 7]
    wall0 = 0.2 + 0.12 * rl0
    wall1 = 0.2 + 0.12 * rl1
    off = (big[:, 6] + rl0 + wall0 + 0.4)[:, None] * perp
    off1 = (big[:, 7] + rl1 + wall1 + 0.4)[:, None] * perp
    wall = np.column_stack([a + off, b + off1, rl0 + wall0, rl1 + wall1])
    lumen = np.column_stack([a + off, b + off1, rl0, rl1])
    return wall, lumen


def _emphysema(an: Anatomy, rng: np.random.Generator) -> None:
    """Centrilobular low-attenuation holes, upper-lobe predominant, plus a few bullae."""
    s = an.scale
    n = int(rng.integers(120, 260))
    lo = np.array([-an.cav_a, an.cav_yc - an.cav_b, 0.0])
    hi = np.array([an.cav_a, an.cav_yc + an.cav_b, an.z_apex])
    P = lo + (hi - lo) * rng.random((n * 3, 3))
    P = P[lung_lobe_at(an, P) > 0][:n]
    r = rng.uniform(2.0, 7.0, len(P)) * s
    big = rng.random(len(P)) < 0.04
    r[big] = rng.uniform(10, 18, big.sum()) * s
    an.emphysema = Segments(P, P + 0.01, r, r.copy(), np.full(len(P), HU["emphysema"]))
