"""Training/evaluation cases for the nodule network, at the model's spacing.

Why here and not in ``inference.synth``: the synthetic-patient generator
(:func:`inference.synth.phantom.make_phantom`) draws whole realistic patients;
training needs them *resampled to the model spacing, cropped to the lungs and
augmented* (noise, reconstruction kernel, slice thickness, intensity, flips).
When ``make_phantom`` is importable it is the source; otherwise a small
built-in chest generator (:func:`simple_chest`) keeps training and the smoke
tests runnable -- which source was used is recorded in the model metadata.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage as ndi

__all__ = [
    "Case",
    "NoduleTruth",
    "simple_chest",
    "phantom_available",
    "make_case",
    "augment",
    "resample_to",
]


@dataclass
class NoduleTruth:
    """Ground truth of one nodule (LPS-free: voxel centre in the case grid)."""

    label: int
    type: str
    diameter_mm: float
    volume_mm3: float
    center_zyx: tuple[float, float, float]


@dataclass
class Case:
    """One CT at a known spacing with nodule and lung label maps."""

    hu: np.ndarray  # float32 (z, y, x)
    spacing: tuple[float, float, float]
    nodules: np.ndarray  # int16 labels, 0 = background
    lungs: np.ndarray  # uint8 1/2
    truth: list[NoduleTruth] = field(default_factory=list)
    source: str = ""
    seed: int = 0


def phantom_available() -> bool:
    """True when the synth helper's ``make_phantom`` can be imported."""
    try:
        from inference.synth.phantom import make_phantom  # noqa: F401
    except ImportError:
        return False
    return True


def resample_to(a: np.ndarray, spacing: tuple[float, float, float], target: tuple[float, float, float], order: int) -> np.ndarray:
    """Resample ``a`` from ``spacing`` to ``target`` (z, y, x) mm."""
    zoom = [s / t for s, t in zip(spacing, target)]
    if all(abs(z - 1) < 1e-3 for z in zoom):
        return a
    return ndi.zoom(a, zoom, order=order, mode="nearest", grid_mode=True)


def _ellipsoid_blob(rng: np.random.Generator, d_mm: float, spacing: tuple[float, float, float], spiculated: bool) -> np.ndarray:
    """A lobulated (optionally spiculated) nodule shape as a float occupancy."""
    r = d_mm / 2.0
    ext = r * (1.9 if spiculated else 1.4) + 2 * max(spacing)
    nz, ny, nx = (int(np.ceil(2 * ext / s)) | 1 for s in spacing)
    z = (np.arange(nz) - nz // 2)[:, None, None] * spacing[0]
    y = (np.arange(ny) - ny // 2)[None, :, None] * spacing[1]
    x = (np.arange(nx) - nx // 2)[None, None, :] * spacing[2]
    ax = rng.uniform(0.8, 1.2, 3)
    ax /= np.cbrt(ax.prod())
    rr = np.sqrt((z / ax[0]) ** 2 + (y / ax[1]) ** 2 + (x / ax[2]) ** 2) + 1e-6
    th = np.arccos(np.clip(z / ax[0] / rr, -1, 1))
    ph = np.arctan2(y, x)
    lob = 1 + 0.08 * np.sin(rng.integers(2, 5) * ph + rng.uniform(0, 6)) * np.sin(th) + 0.06 * np.cos(rng.integers(1, 4) * th)
    rad = r * lob
    if spiculated:
        for _ in range(rng.integers(5, 10)):
            t0, p0 = rng.uniform(0.3, 2.8), rng.uniform(-np.pi, np.pi)
            cosang = np.sin(th) * np.sin(t0) * np.cos(ph - p0) + np.cos(th) * np.cos(t0)
            rad = rad + r * 0.8 * np.clip(cosang - 0.97, 0, None) / 0.03
    occ = np.clip((rad - rr) / max(min(spacing), 0.5) + 0.5, 0, 1)
    return occ.astype(np.float32)


def simple_chest(seed: int, *, spacing: tuple[float, float, float] = (1.5, 1.5, 1.5), n_nodules: int | None = None) -> Case:
    """A small built-in chest phantom (fallback when ``make_phantom`` is absent).

    Body with fat layer, two ellipsoidal lungs with a density gradient,
    mediastinum, branching vessels, and 0-4 nodules (solid, part-solid,
    ground-glass, calcified; some juxtapleural, some spiculated). Generated
    directly on the model grid; the acquisition is simulated by :func:`augment`.
    """
    rng = np.random.default_rng(seed)
    fov = np.array([rng.uniform(150, 210), 220.0, 320.0])  # z, y, x mm
    shape = tuple(int(f / s) for f, s in zip(fov, spacing))
    nz, ny, nx = shape
    z = ((np.arange(nz) + 0.5) * spacing[0])[:, None, None]
    y = ((np.arange(ny) + 0.5) * spacing[1] - fov[1] / 2)[None, :, None]
    x = ((np.arange(nx) + 0.5) * spacing[2] - fov[2] / 2)[None, None, :]
    hu = np.full(shape, -1000.0, np.float32)
    bx, by = rng.uniform(140, 155), rng.uniform(95, 105)
    body = (x / bx) ** 2 + (y / by) ** 2 <= 1
    body = np.broadcast_to(body, shape)
    hu[body] = -100.0
    inner = np.broadcast_to((x / (bx - 12)) ** 2 + (y / (by - 10)) ** 2 <= 1, shape)
    hu[inner] = 40.0
    lungs = np.zeros(shape, np.uint8)
    zc = fov[0] * rng.uniform(0.45, 0.55)
    for side, sx in ((1, -1), (2, 1)):
        cx = sx * rng.uniform(60, 70)
        ax = (fov[0] * 0.48, by - 22, rng.uniform(48, 58))
        e = ((z - zc) / ax[0]) ** 2 + ((y - 5) / ax[1]) ** 2 + ((x - cx) / ax[2]) ** 2 <= 1
        # carve a mediastinal/cardiac notch
        e &= ~(((x - sx * 10) / 38) ** 2 + ((y + 25) / 45) ** 2 + ((z - zc + 30) / 60) ** 2 <= 1)
        lungs[e] = side
    lung = lungs > 0
    hu[lung] = -870.0
    hu[lung] += np.broadcast_to((40 * (y / by)), shape)[lung]  # dependent density gradient
    # vessels: random walks from the hilum outwards, tapering
    vessel = np.zeros(shape, np.float32)
    gz, gy, gx = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij", sparse=True)
    for side, sx in ((1, -1), (2, 1)):
        for _ in range(rng.integers(10, 16)):
            p = np.array([zc + rng.uniform(-20, 20), rng.uniform(-10, 20), sx * rng.uniform(20, 35)])
            d = np.array([rng.normal(0, 0.8), rng.normal(0, 0.5), sx * 1.0])
            d /= np.linalg.norm(d)
            r = rng.uniform(2.0, 3.5)
            for _step in range(rng.integers(8, 16)):
                q = p + d * rng.uniform(6, 12)
                # rasterise segment p→q with radius r (bbox only)
                off = np.array([0.0, fov[1] / 2, fov[2] / 2])
                lo = np.floor((np.minimum(p, q) + off - r - 2) / spacing).astype(int)
                hi = np.ceil((np.maximum(p, q) + off + r + 2) / spacing).astype(int)
                lo = np.clip(lo, 0, np.array(shape) - 1)
                hi = np.clip(hi, 0, np.array(shape))
                if np.all(hi > lo):
                    sl = tuple(slice(a, b) for a, b in zip(lo, hi))
                    pz = (gz[sl[0]] + 0.5) * spacing[0]
                    py = (gy[:, sl[1]] + 0.5) * spacing[1] - fov[1] / 2
                    px = (gx[:, :, sl[2]] + 0.5) * spacing[2] - fov[2] / 2
                    v = q - p
                    t = np.clip(((pz - p[0]) * v[0] + (py - p[1]) * v[1] + (px - p[2]) * v[2]) / (v @ v + 1e-9), 0, 1)
                    dist = np.sqrt((pz - p[0] - t * v[0]) ** 2 + (py - p[1] - t * v[1]) ** 2 + (px - p[2] - t * v[2]) ** 2)
                    occ = np.clip((r - dist) / min(spacing) + 0.5, 0, 1)
                    vessel[sl] = np.maximum(vessel[sl], occ)
                p = q
                d = d + rng.normal(0, 0.35, 3)
                d /= np.linalg.norm(d)
                r = max(0.6, r * rng.uniform(0.8, 0.95))
                if rng.random() < 0.25:  # branch: restart nearby with a new direction
                    d = d + rng.normal(0, 0.8, 3)
                    d /= np.linalg.norm(d)
    vessel *= lung
    hu = hu + vessel * (40.0 - hu)
    labels = np.zeros(shape, np.int16)
    truth: list[NoduleTruth] = []
    k = int(rng.integers(0, 5)) if n_nodules is None else n_nodules
    lz, ly, lx = np.nonzero(lung)
    bz, by_, bx_ = np.nonzero(lung & ~ndi.binary_erosion(lung, iterations=2))
    attempts = 0
    while len(truth) < k and attempts < 50 and lz.size:
        attempts += 1
        d_mm = float(np.exp(rng.uniform(np.log(3.5), np.log(28))))
        typ = rng.choice(["solid", "solid", "solid", "part-solid", "ground-glass", "calcified"], p=[0.3, 0.2, 0.15, 0.15, 0.12, 0.08])
        if typ == "calcified":
            d_mm = min(d_mm, 10.0)
        spic = bool(typ in ("solid", "part-solid") and d_mm > 8 and rng.random() < 0.3)
        occ = _ellipsoid_blob(rng, d_mm, spacing, spic)
        if rng.random() < 0.25 and bz.size:  # at the pleura (juxtapleural)
            i = int(rng.integers(bz.size))
            c = np.array([bz[i], by_[i], bx_[i]])
        else:
            i = int(rng.integers(lz.size))
            c = np.array([lz[i], ly[i], lx[i]])
        half = np.array(occ.shape) // 2
        lo = c - half
        hi = lo + np.array(occ.shape)
        if np.any(lo < 0) or np.any(hi > np.array(shape)):
            continue
        sl = tuple(slice(a, b) for a, b in zip(lo, hi))
        inside = lung[sl].mean()
        if inside < 0.35 or labels[sl][occ > 0.5].any():
            continue
        occ = occ * (lung[sl] | (occ > 0.5))
        if typ == "solid":
            val = np.full(occ.shape, rng.uniform(0, 60), np.float32)
        elif typ == "calcified":
            val = np.full(occ.shape, rng.uniform(250, 700), np.float32)
        elif typ == "ground-glass":
            val = np.full(occ.shape, rng.uniform(-700, -450), np.float32)
        else:
            val = np.full(occ.shape, rng.uniform(-650, -450), np.float32)
            core = _ellipsoid_blob(rng, d_mm * rng.uniform(0.35, 0.6), spacing, False)
            pad = [((a - b) // 2, a - b - (a - b) // 2) for a, b in zip(occ.shape, core.shape)]
            if all(p[0] >= 0 and p[1] >= 0 for p in pad):
                core = np.pad(core, pad)
                val = val + core * (rng.uniform(0, 50) - val)
        hu[sl] = hu[sl] + occ * (val - hu[sl])
        lab = len(truth) + 1
        labels[sl][occ >= 0.5] = lab
        vol = float((labels == lab).sum() * np.prod(spacing))
        truth.append(NoduleTruth(lab, str(typ), d_mm, vol, tuple(float(v) for v in c)))
    return Case(hu.astype(np.float32), spacing, labels, lungs, truth, source="simple_chest", seed=seed)


def make_case(seed: int, spacing: tuple[float, float, float], *, source: str = "auto", **phantom_kw: Any) -> Case:
    """A case at the model spacing from ``make_phantom`` (preferred) or
    :func:`simple_chest`.

    Parameters
    ----------
    seed
        Patient seed; training and evaluation use disjoint seed ranges.
    spacing
        Model spacing ``(z, y, x)`` mm.
    source
        ``"auto"`` (phantom if available), ``"phantom"`` or ``"simple"``.
    phantom_kw
        Extra arguments for ``make_phantom`` (e.g. ``nodule_size_mm`` for the
        large-mass training patients).
    """
    if source == "clinical":
        return _clinical_case(seed, spacing, **phantom_kw)
    if source in ("auto", "phantom") and phantom_available():
        from inference.synth.phantom import make_phantom

        # Render directly at the model's spacing (in-plane matrix covering a
        # 384 mm field of view): the phantom's own scanner simulation (noise,
        # kernel, slice partial volume) then happens on the training grid.
        n = int(round(384.0 / spacing[2]))
        kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in phantom_kw.items()}
        ph: Any = make_phantom(seed, shape=(n, n), pixel_mm=spacing[2], slice_mm=spacing[0], **kw)
        sp = tuple(float(s) for s in ph.spacing)
        hu = resample_to(np.asarray(ph.hu, np.float32), sp, spacing, order=1)
        nod = resample_to(np.asarray(ph.nodules, np.int16), sp, spacing, order=0)
        lungs = resample_to(np.asarray(ph.lungs, np.uint8), sp, spacing, order=0)
        truth = []
        for i, rec in enumerate(getattr(ph, "records", []) or [], start=1):
            r = rec if isinstance(rec, dict) else getattr(rec, "__dict__", {})
            lab = int(r.get("label", r.get("id", i)))
            m = nod == lab
            c = tuple(float(v) for v in ndi.center_of_mass(m)) if m.any() else (0.0, 0.0, 0.0)
            d = float(r.get("mean_diameter_mm", r.get("diameter_mm", 0.0)) or 0.0)
            truth.append(NoduleTruth(lab, str(r.get("type", "solid")), d, float(r.get("volume_mm3", 0.0) or 0.0), c))
        return Case(hu, spacing, nod, lungs, truth, source="inference.synth.phantom", seed=seed)
    if source == "phantom":
        raise ImportError("inference.synth.phantom.make_phantom is not available")
    return simple_chest(seed, spacing=spacing)


def _clinical_case(seed: int, spacing: tuple[float, float, float], **kw: Any) -> Case:
    """The patient a scanner would give (:func:`inference.models.fpr_data.draw_patient`:
    0.75-1 mm pixels, 1.25-5 mm slices, the seed's kernel and dose), with the
    product's lung mask, cropped and resampled exactly as inference does
    (:func:`inference.pipeline.nodules.lung_crop`, :func:`~inference.pipeline.nodules.to_model_grid`).

    Why not render at the model spacing (source ``phantom``): the scanner's
    noise and kernel simulated on a 2 mm grid look nothing like a 0.8 mm image
    averaged down to 2 mm, and that difference is exactly the faint contrast
    of ground glass the network has to learn.
    """
    import torch

    from inference.models.fpr_data import draw_patient
    from inference.pipeline.lungs import segment_lungs
    from inference.pipeline.nodules import lung_crop, to_model_grid

    ph = draw_patient(seed, n_nodules=kw.get("n_nodules", 4), masses=bool(kw.get("masses", False)), kinds=kw.get("kinds"))
    vol = ph.to_volume()
    lungs_native = segment_lungs(vol)
    sp = tuple(float(v) for v in vol.spacing)
    crop = lung_crop(lungs_native, sp) or tuple(slice(0, n) for n in vol.shape)
    hu = to_model_grid(np.asarray(vol.array)[crop], sp, spacing)[0, 0].numpy()

    def labels_to_grid(a: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(np.ascontiguousarray(a[crop].astype(np.int16)))[None, None].float()
        return torch.nn.functional.interpolate(t, size=hu.shape, mode="nearest-exact")[0, 0].numpy().astype(np.int16)

    nod = labels_to_grid(np.asarray(ph.nodules))
    lungs = labels_to_grid(lungs_native).astype(np.uint8)
    truth = []
    for rec in ph.records:
        c = [(v - c0.start + 0.5) * s / m - 0.5 for v, c0, s, m in zip(rec.center_voxel_zyx, crop, sp, spacing)]
        truth.append(NoduleTruth(int(rec.id), str(rec.type), float(rec.mean_diameter_mm), float(rec.volume_mm3),
                                 tuple(float(v) for v in c)))  # type: ignore[arg-type]
    return Case(hu.astype(np.float32), spacing, nod, lungs, truth, source="inference.synth.phantom (clinical acquisition)", seed=seed)


def augment(hu: np.ndarray, spacing: tuple[float, float, float], rng: np.random.Generator) -> np.ndarray:
    """Simulate acquisition variety on a patch (HU in, HU out).

    * slice thickness: blur along z with a random FWHM of 0.5–5 mm;
    * reconstruction kernel: soft (extra in-plane blur) or sharp (unsharp
      mask, as lung kernels overshoot edges);
    * intensity: small HU scale/offset (calibration, contrast);
    * noise: 5–60 HU Gaussian, slightly correlated.
    Flips are applied by the caller to image and label together.
    """
    out = hu.astype(np.float32)
    fwhm_z = rng.uniform(0.5, 5.0)
    sig = [fwhm_z / 2.355 / spacing[0], 0, 0]
    kernel = rng.choice(["soft", "none", "sharp"])
    if kernel == "soft":
        s = rng.uniform(0.3, 0.8)
        sig[1] = s / spacing[1] * 1.5
        sig[2] = s / spacing[2] * 1.5
    out = ndi.gaussian_filter(out, sig) if any(sig) else out
    if kernel == "sharp":
        bl = ndi.gaussian_filter(out, [0, 0.8, 0.8])
        out = out + rng.uniform(0.3, 0.8) * (out - bl)
    out = out * rng.uniform(0.95, 1.05) + rng.uniform(-30, 30)
    noise = rng.normal(0, rng.uniform(5, 60), out.shape).astype(np.float32)
    if rng.random() < 0.5:
        noise = ndi.gaussian_filter(noise, 0.6) * 2.0
    return out + noise
