"""Training-free lung-nodule detector and segmenter (candidate stage / fallback).

Why classical: a nodule is a compact blob that is denser than the aerated
lung around it; vessels, its main look-alikes, are tubes. Both facts are
measurable without training data, so this detector works on any CT the lung
mask works on, needs no weights and runs in seconds on one core.

Method (all vectorised numpy/scipy/SimpleITK):

1. **Crop and resample** the lungs' bounding box (+ margin) to
   :data:`WORK_MM` isotropic voxels, so every scale and shape measure is in
   millimetres and thin/thick slices behave the same.
2. **Multi-scale Hessian blob filter**: at scales ``sigma`` matching nodules
   of 4-70 mm (``r ≈ sqrt(3)·sigma``), the scale-normalised smallest-magnitude
   eigenvalue ``B = sigma²·|λ3|`` where all three eigenvalues are negative
   (bright blob). A sphere has three equal eigenvalues, a tube one near zero,
   so vessels score near zero while a nodule -- also one touching a vessel or
   the pleura -- peaks at its centre. Large scales are computed on 2× and 4×
   coarser grids (same normalised response, 1/8 and 1/64 of the cost).
   Only the Laplacian is filtered over the whole grid (its local maxima are
   the seed candidates); the full Hessian is evaluated at those voxels only.
   The filter sees enclosed air pockets (a cavitary nodule's centre) filled
   with their wall's density (:func:`_filled_cavities`).
3. **Seeds** = spatial local maxima of ``B`` inside the lung mask (which is
   hole-filled and closed by :mod:`inference.pipeline.lungs`, so
   juxtapleural nodules and the tumour lie inside it), strongest first.
4. **Per-seed segmentation** at the work grid: threshold halfway between the
   seed's core density and the surrounding lung (so solid and ground-glass
   nodules get their own iso-contour), constrained to a ball of ~2 radii and to
   the lung region; **attached vessels are cut** by an opening with a sphere
   of half the estimated radius (vessels thinner than that vanish, the nodule
   survives), keeping the part connected to the seed. A seed already inside
   an earlier segmentation is skipped (non-maximum suppression).
   A mass seed may also grow into the *pleural envelope* (:func:`_pleural_envelope`), and its
   segmentation is completed by the soft tissue outside the lung mask within its own convex hull
   (:func:`_complete_by_hull`): a tumour against the chest wall has no density edge there.
5. **Shape features and score**: equivalent diameter, elongation
   (sqrt of smallest/largest PCA variance of the voxel coordinates), Hessian
   blob ratio ``|λ3|/|λ1|`` at the seed, contrast to the lung, fraction of the
   segmentation that was removed as attached tubes and fraction touching the
   ball's boundary (leaking into large structures). They enter a hand-set
   logistic (:func:`_score`, weights documented there); the probability is
   that logistic, i.e. a monotone *score* in [0, 1], roughly calibrated on
   held-out synthetic patients (benchmarks/eval_candidates.py), not a
   malignancy probability.
6. **Final mask on the CT's own grid**: the work-grid mask, dilated by one
   work voxel, is mapped back and intersected with the same HU iso-threshold
   on the (lightly smoothed) native image, so edges are at native resolution.
7. **After the classifier** (:mod:`inference.pipeline.detect`), a *reported*
   finding whose segmentation stopped at a part-solid nodule's solid core is
   grown into its ground-glass halo (:func:`grow_halos`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

from inference.pipeline.measure import CALCIFIED_HU
from inference.types import Volume

__all__ = [
    "CandidateResult",
    "detect_nodules_classical",
    "WORK_MM",
    "MIN_PROBABILITY",
    "CANDIDATES_VERSION",
    "HALO_GROWTH",
    "grow_halos",
    "renumber",
]

CANDIDATES_VERSION = "0.7.3"
#: isotropic working voxel (mm): fine enough for 4 mm nodules, coarse enough for speed
WORK_MM = 1.25
#: detections scoring below this are dropped (training phantoms: 0.17-0.5 FP/scan at 0.3-0.4)
MIN_PROBABILITY = 0.35
#: blob-filter scales (mm) per pyramid level (grid factor 1, 2, 4)
SCALES_MM: tuple[tuple[int, tuple[float, ...]], ...] = (
    (1, (1.5, 2.2, 3.2)),
    (2, (4.5, 6.5)),
    (4, (9.5, 14.0, 20.0)),
)
#: seeds need at least this normalised blob response (HU) ...
MIN_BLOB_HU = 60.0
#: ... and this eigenvalue ratio |λ3|/|λ1| (1 = sphere, 0 = tube)
MIN_RATIO = 0.2
MAX_SEEDS = 400
#: seed-source tags carried in the seeds' "response" slot, so :func:`_detect`
#: can tell the sources apart: ground-glass band seeds and mass seeds
BAND_TAG = 5e5
MASS_TAG = 1e6
#: dense-tissue floor for ground glass (HU) and lung background estimate bounds
GGN_FLOOR_HU = -780.0

#: threads for the seed filters (scipy releases the GIL): the cores, at most 4 (memory: one work-grid
#: Laplacian and its temporaries per thread)
FILTER_THREADS = max(1, min(4, os.cpu_count() or 1))

ProgressFn = Callable[[float, str], None]
CancelFn = Callable[[], bool]


@dataclass
class CandidateResult:
    """Detections of one CT.

    Attributes
    ----------
    labels
        uint16 ``(z, y, x)`` on the CT's own grid; ids ``1..n`` by volume, largest first.
    probabilities
        Score in [0, 1] of id ``i`` at index ``i - 1`` (hand-set logistic of
        shape features, see :func:`_score`).
    seconds
        Wall time of the detection.
    warnings
        One-line notes for the user (e.g. empty lung mask).
    features
        Per id (same order) the features that made the score, for review.
    """

    labels: np.ndarray
    probabilities: list[float]
    seconds: float
    warnings: list[str] = field(default_factory=list)
    features: list[dict[str, float]] = field(default_factory=list)


class _Cancelled(Exception):
    pass


def _resample(a: np.ndarray, spacing: tuple[float, float, float], out_shape: tuple[int, int, int], out_mm: float, *, nearest: bool) -> np.ndarray:
    """Resample ``a`` (spacing zyx) onto an isotropic grid sharing voxel 0's corner."""
    img = sitk.GetImageFromArray(a)
    img.SetSpacing((spacing[2], spacing[1], spacing[0]))
    # align the outer corners of both grids (voxel centres shifted by half a voxel)
    img.SetOrigin((spacing[2] / 2, spacing[1] / 2, spacing[0] / 2))
    ref = sitk.Image([int(out_shape[2]), int(out_shape[1]), int(out_shape[0])], img.GetPixelID())
    ref.SetSpacing((out_mm, out_mm, out_mm))
    ref.SetOrigin((out_mm / 2, out_mm / 2, out_mm / 2))
    interp = sitk.sitkNearestNeighbor if nearest else sitk.sitkLinear
    out = sitk.Resample(img, ref, sitk.Transform(), interp, -1000.0 if not nearest else 0.0)
    return sitk.GetArrayFromImage(out)


def _block_mean(a: np.ndarray, f: int) -> np.ndarray:
    if f == 1:
        return a
    z, y, x = (s // f * f for s in a.shape)
    return a[:z, :y, :x].reshape(z // f, f, y // f, f, x // f, f).mean(axis=(1, 3, 5))


def _gf1(a: np.ndarray, s: float, axis: int, order: int) -> np.ndarray:
    return ndi.gaussian_filter1d(a, s, axis=axis, order=order, mode="nearest", truncate=3.0)


def _laplacian(img: np.ndarray, s: float) -> np.ndarray:
    """Gaussian Laplacian ``Dzz + Dyy + Dxx`` at scale ``s`` (voxels).

    Why not the six Hessian images: only the Laplacian is needed on the whole
    grid (for the seeds' local maxima); sharing the separable passes
    (``Gx``, ``D2x``, then ``y``, then ``z``) takes 7 one-dimensional filters
    instead of 18 (the six images took 4.4 of the stage's 15.4 s on the
    real CT).
    """
    gx = _gf1(img, s, 2, 0)
    d2x = _gf1(img, s, 2, 2)
    gygx = _gf1(gx, s, 1, 0)
    yy_xx = _gf1(gx, s, 1, 2)
    yy_xx += _gf1(d2x, s, 1, 0)
    lap = _gf1(gygx, s, 0, 2)
    lap += _gf1(yy_xx, s, 0, 0)
    return lap


def _kernels(s: float) -> np.ndarray:
    """``(3, 2R+1)`` weights of the order-0/1/2 Gaussian filters as applied to a patch.

    Taken from scipy's own filter (its impulse response, mirrored), so the
    point-wise Hessian of :func:`_eig_at` is the one ``gaussian_filter``
    would give at those voxels.
    """
    r = int(3.0 * s + 0.5)
    d = np.zeros(2 * r + 1)
    d[r] = 1.0
    return np.stack([ndi.gaussian_filter1d(d, s, order=o, mode="constant", truncate=3.0)[::-1] for o in (0, 1, 2)])


def _eig_at(img: np.ndarray, s: float, idx: tuple[np.ndarray, ...], chunk: int = 256) -> np.ndarray:
    """Eigenvalues (ascending) of the Gaussian Hessian at scale ``s`` at voxel indices ``idx``.

    Computed only at the seed candidates (a few thousand voxels), from the
    ``(2R+1)³`` patch around each -- the full six-image Hessian was three
    quarters of the blob filter's time. Borders replicate the edge voxel (``nearest``).
    """
    k = _kernels(s)
    r = (k.shape[1] - 1) // 2
    pad = np.pad(img, r, mode="edge")
    win = np.lib.stride_tricks.sliding_window_view(pad, (2 * r + 1,) * 3)
    pts = np.stack(idx, -1)
    out = np.empty((len(pts), 3))
    for a in range(0, len(pts), chunk):
        p = pts[a:a + chunk]
        patch = win[p[:, 0], p[:, 1], p[:, 2]].astype(np.float64)
        t = np.einsum("nabc,oc->nabo", patch, k)
        t = np.einsum("nabo,pb->napo", t, k)
        h = np.einsum("napo,qa->nqpo", t, k)  # [z order, y order, x order]
        zz, yy, xx = h[:, 2, 0, 0], h[:, 0, 2, 0], h[:, 0, 0, 2]
        zy, zx, yx = h[:, 1, 1, 0], h[:, 1, 0, 1], h[:, 0, 1, 1]
        m = np.stack([np.stack([zz, zy, zx], -1), np.stack([zy, yy, yx], -1), np.stack([zx, yx, xx], -1)], -2)
        out[a:a + chunk] = np.linalg.eigvalsh(m)
    return out


def _scale_maxima(img: np.ndarray, reg: np.ndarray, s: float) -> tuple[tuple[np.ndarray, ...], np.ndarray | None]:
    """One scale's seed candidates and their Hessian eigenvalues (ascending: ``ev[:, 0]`` most negative).

    Candidate voxels: bright-blob Laplacian, inside the lung, local maxima of
    ``-LoG`` -- filter, maximum filter and eigenvalues in one job, so the
    scales of a level run side by side (scipy's filters release the GIL). The
    maximum filters took 0.9 s of the real CT's 6.3 s on the main thread (one
    cProfile). Moving them here showed no speed-up on two cores, in one
    comparison on three patients while other jobs were running; not measured
    on an idle machine or on more cores.
    """
    neg = _laplacian(img, s)
    neg *= -s * s
    k = max(3, int(round(s)) | 1)
    mx = ndi.maximum_filter(neg, size=k, mode="nearest")
    idx = np.nonzero(reg & (neg >= mx) & (neg > 3 * MIN_BLOB_HU))
    return idx, (_eig_at(img, s, idx) if idx[0].size else None)


def _seeds(work: np.ndarray, region: np.ndarray, check: Callable[[], None],
           pool: Executor | None = None) -> list[tuple[np.ndarray, float, float, float]]:
    """Blob seeds as ``(zyx work index, sigma_mm, response, ratio)``, strongest first.

    ``pool`` filters a level's scales concurrently (scipy's filters release
    the GIL); the result is the same as serially, bit for bit.
    """
    out = []
    for f, scales in SCALES_MM:
        img = _block_mean(work, f).astype(np.float32)
        reg = _block_mean(region.astype(np.float32), f) > 0.5 if f > 1 else region
        if not reg.any():
            continue
        sig = [s_mm / (WORK_MM * f) for s_mm in scales]
        found = pool.map(lambda s: _scale_maxima(img, reg, s), sig) if pool is not None else (_scale_maxima(img, reg, s) for s in sig)
        for s_mm, s, (idx, ev) in zip(scales, sig, found):
            check()
            if ev is None:
                continue
            allneg = ev[:, 2] < 0
            l1 = np.abs(ev[:, 0])
            l3 = np.abs(ev[:, 2])
            resp = np.where(allneg, s * s * l3, 0.0)
            ratio = np.where(allneg, l3 / np.maximum(l1, 1e-6), 0.0)
            ok = (resp > MIN_BLOB_HU) & (ratio > MIN_RATIO)
            pts = np.stack(idx, -1)[ok]
            for p, r, q in zip(pts, resp[ok], ratio[ok]):
                c = (p + 0.5) * f - 0.5  # centre of the block in work voxels
                out.append((c, float(s_mm), float(r), float(q)))
    out.sort(key=lambda t: -t[2])
    return out[:MAX_SEEDS]


#: masses: dense tissue that survives an opening of this radius (mm) ...
MASS_OPEN_MM = 5.0
#: ... and is at least this large (equivalent diameter, mm)
MASS_MIN_MM = 15.0


def _mass_seeds(work: np.ndarray, region: np.ndarray) -> list[tuple[np.ndarray, float, float, float]]:
    """Seeds for masses (> ~2 cm), found as dense lung tissue thicker than vessels.

    A large tumour abutting the mediastinum or chest wall is not a blob for
    the Hessian (one side merges with soft tissue), but the part of it inside
    the (closed) lung mask is dense tissue far thicker than any peripheral
    vessel: an opening of radius :data:`MASS_OPEN_MM` at a 2.5 mm grid keeps
    it and removes the vessel tree. The seed is the component's deepest
    voxel; its scale is the component's equivalent radius / sqrt(3). The
    blob ratio is unknown for these (set to 0.5, neutral).
    """
    f = 2
    img = _block_mean(work, f)
    reg = _block_mean(region.astype(np.float32), f) > 0.5
    dense = reg & (ndi.gaussian_filter(img, 0.7) > -400.0)
    k = MASS_OPEN_MM / (WORK_MM * f)
    edt = _edt(dense)
    op = _opened(dense, k)
    lab, n = ndi.label(op)
    out = []
    if n == 0:
        return out
    sizes = np.bincount(lab.ravel())
    vox_mm3 = (WORK_MM * f) ** 3
    boxes = ndi.find_objects(lab)
    for i in np.nonzero(sizes[1:] * vox_mm3 >= np.pi / 6 * MASS_MIN_MM**3)[0] + 1:
        sl = boxes[i - 1]
        e = np.where(lab[sl] == i, edt[sl], 0)
        p = np.array(np.unravel_index(int(e.argmax()), e.shape)) + [s.start for s in sl]
        d_eq = (6 * sizes[i] * vox_mm3 / np.pi) ** (1 / 3)
        c = (p + 0.5) * f - 0.5
        # response slot carries MASS_TAG + the component's depth (largest inscribed radius, mm)
        out.append((c, float(min(d_eq / 2, 40.0) / np.sqrt(3.0)), MASS_TAG + float(e.max()) * WORK_MM * f, 0.5))
    return out


#: at most this many re-segmentations of a mass seed from its segmentation's centroid (:func:`_segment_seed`)
MASS_REGROW = 3
#: a mass may extend beyond the lung mask into dense tissue that has the same lung above *and* below it
#: within this distance (mm) along the patient axis ...
ENVELOPE_Z_MM = 60.0
#: ... in parts thicker than an opening of this radius (mm)
ENVELOPE_OPEN_MM = 7.5


def _pleural_envelope(work: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Dense tissue outside the lung mask that the lung covers from above and below: where a mass may extend.

    Why: a large tumour against the chest wall or mediastinum has no density
    edge where it meets them, so the lung mask (closed slice by slice) stops
    at its lung-facing rim, and a mass segmented inside that mask is a rim
    (real CT A0001: 13 % of the annotated boxes' dense pixels in the mask on
    the lower slices). But such a mass bulges into the pleural space: the
    lung lies above and below it in the same column. Tissue with lung within
    :data:`ENVELOPE_Z_MM` on both sides along z, in parts thicker than
    :data:`ENVELOPE_OPEN_MM`, is that bulge. The heart's lateral bulge meets
    the same test (real CT: a 40 mL crescent), so this is used only to grow
    *mass seeds* found inside the lung (:func:`_segment_seed`), never to
    change the lung mask itself. Computed on a 2.5 mm grid; work-grid shape.
    """
    f = 2
    reg = _block_mean(region.astype(np.float32), f) > 0.5
    dense = ndi.gaussian_filter(_block_mean(work, f), 0.7) > -400.0
    dz = int(round(ENVELOPE_Z_MM / (WORK_MM * f)))
    z = np.arange(reg.shape[0], dtype=np.int32)[:, None, None]
    big = np.int32(1 << 20)
    above = np.maximum.accumulate(np.where(reg, z, -big), axis=0)
    below = np.minimum.accumulate(np.where(reg, z, big)[::-1], axis=0)[::-1]
    enc = dense & ~reg & (z - above <= dz) & (below - z <= dz)
    env = _opened(enc | (reg & dense), ENVELOPE_OPEN_MM / (WORK_MM * f)) & enc
    out = np.zeros(work.shape, bool)
    up = np.repeat(np.repeat(np.repeat(env, f, 0), f, 1), f, 2)
    out[: up.shape[0], : up.shape[1], : up.shape[2]] = up
    return out


#: ground-glass band seeds: smoothed HU above this (below every ground-glass
#: nodule's density, above aerated lung) ...
OPEN_SEED_HU = -750.0
#: ... below this (denser is solid tissue, the blob filter's domain) ...
GGN_BAND_MAX_HU = -350.0
#: ... at least this much denser than the mean of the surrounding lung ...
GGN_LOCAL_CONTRAST_HU = 70.0
#: ... and surviving an opening of this radius (mm): vessels thinner than 2× it vanish
OPEN_SEED_MM = 2.0
MAX_OPEN_SEEDS = 150


def _component_seeds(mask: np.ndarray, min_depth: float, tag: float, cap: int) -> list[tuple[np.ndarray, float, float, float]]:
    """One seed per component of ``mask``: its deepest voxel, depth as radius.

    Components shallower than ``min_depth`` give no seed; the deepest
    ``cap`` components are kept. Only voxels at least ``min_depth`` deep are
    visited (per-label reductions over the whole grid cost seconds).
    """
    edt = _edt(mask)
    lab, n = ndi.label(mask)
    if n == 0:
        return []
    deep = np.flatnonzero(edt.ravel() >= min_depth)
    if deep.size == 0:
        return []
    lv = lab.ravel()[deep]
    ev = edt.ravel()[deep]
    # per component: its depth, and among the voxels at that depth (often a
    # ridge of many) the one nearest their mean -- a central seed segments best
    top = np.zeros(n + 1)
    np.maximum.at(top, lv, ev)
    at = ev >= top[lv]
    tl, tf = lv[at], deep[at]
    pos = np.stack(np.unravel_index(tf, mask.shape), -1).astype(float)
    cnt = np.bincount(tl, minlength=n + 1)
    mean = np.stack([np.bincount(tl, weights=pos[:, k], minlength=n + 1) for k in range(3)], -1) / np.maximum(cnt, 1)[:, None]
    dist = ((pos - mean[tl]) ** 2).sum(-1)
    order = np.lexsort((tf, dist, tl))
    first = order[np.r_[True, tl[order][1:] != tl[order][:-1]]]
    depth = top[tl[first]]
    out = []
    for i in np.argsort(-depth, kind="stable")[:cap]:
        r_mm = float(depth[i]) * WORK_MM
        out.append((pos[first[i]], float(min(r_mm, 40.0) / np.sqrt(3.0)), tag + r_mm, 0.5))
    return out


#: masks up to this many voxels get scipy's distance transform, larger ones SimpleITK's (:func:`_edt`)
SMALL_EDT_VOXELS = 32**3


def _edt(mask: np.ndarray) -> np.ndarray:
    """Euclidean distance (voxels) of each ``mask`` voxel to the nearest voxel outside it.

    Same values as ``scipy.ndimage.distance_transform_edt(mask)`` (grid
    borders are not "outside"), from SimpleITK's multi-threaded Maurer
    transform: 3× faster on two cores. Small masks -- each seed's segmentation, a few hundred
    per CT -- go to scipy instead: SimpleITK's per-call set-up (~1.5 ms) outweighs its speed
    below ~32³ voxels (12³: 1.5 vs 0.2 ms, 24³: 1.7 vs 1.3 ms, 40³: 3.1 vs 4.1 ms; this
    machine); both give exact distances.
    """
    if mask.size <= SMALL_EDT_VOXELS:
        return ndi.distance_transform_edt(mask)
    img = sitk.GetImageFromArray((~mask).astype(np.uint8))
    d2 = sitk.SignedMaurerDistanceMap(img, insideIsPositive=False, squaredDistance=True, useImageSpacing=False)
    return np.sqrt(np.maximum(sitk.GetArrayFromImage(d2).astype(np.float64), 0.0))


def _opened(mask: np.ndarray, r_vox: float) -> np.ndarray:
    """Binary opening with a ball of real radius ``r_vox``.

    The union of the balls of that radius that fit inside ``mask`` (the grid
    border counts as inside, as for a distance transform). Erosion and
    dilation with the ball are exact for this and 10× faster than the two
    distance transforms used before.
    """
    b = _ball(r_vox)
    return ndi.binary_dilation(ndi.binary_erosion(mask, b, border_value=1), b) & mask


def _opening_seeds(work: np.ndarray, region: np.ndarray) -> list[tuple[np.ndarray, float, float, float]]:
    """High-recall seeds where the Hessian blob filter is weak.

    The blob filter needs a bright, compact, locally convex profile with a
    strong response, which misses faint or textured ground-glass nodules
    (contrast ~150 HU), cavitary nodules (air at the centre) and nodules
    merged with a vessel at thick slices. This source covers ground glass:
    **the ground-glass band** (:data:`OPEN_SEED_HU` to
    :data:`GGN_BAND_MAX_HU`, and :data:`GGN_LOCAL_CONTRAST_HU` above the
    surrounding lung's mean), opened with a ball of :data:`OPEN_SEED_MM`:
    vessel edges that pass through the band are thin shells and vanish, a
    ground-glass nodule's body survives; one seed per component, at its
    deepest voxel.

    Measured on tuning patients 2000-2011 (72 nodules), candidate recall and
    candidates per CT: without this source 57/72 at 156; with it (and the
    cavity filling added in the same change) 57/72 at 248 -- it found a
    15.8 mm ground-glass nodule the blob filter missed, while a 5.9 mm
    juxtavascular one was lost; its net value for recall is not shown yet.
    A second source, all dense tissue opened the same way, gave 58/72 at 567
    and is not used.

    Precision is not the aim: the learned classifier rescores every
    candidate. The response slot carries ``BAND_TAG + depth_mm`` so the caller can
    tell the source.
    """
    sm = ndi.gaussian_filter(work, 1.0)
    k = OPEN_SEED_MM / WORK_MM
    # local contrast against the mean of the surrounding ~2 cm of lung (removes dependent
    # density gradients and soft-kernel haze that share the band's HU range)
    bg = ndi.uniform_filter(sm[::2, ::2, ::2], size=9)
    idx = np.nonzero(region & (sm > OPEN_SEED_HU) & (sm < GGN_BAND_MAX_HU))
    band = np.zeros(sm.shape, bool)
    band[idx] = sm[idx] - _zoom_at(bg, sm.shape, idx) > GGN_LOCAL_CONTRAST_HU
    return _component_seeds(_opened(band, k), k, BAND_TAG, MAX_OPEN_SEEDS)


def _zoom_at(small: np.ndarray, shape: tuple[int, ...], idx: tuple[np.ndarray, ...]) -> np.ndarray:
    """``scipy.ndimage.zoom(small, shape / small.shape, order=1)`` at the voxels ``idx`` of a ``shape`` grid only.

    Why: the band test needs the background level only where the smoothed CT
    is in the ground-glass band (~7 % of the work grid); zooming the whole
    grid took 0.21-0.36 s of the candidate stage. Same coordinates as
    ``zoom`` (output index × (n_in - 1) / (n_out - 1)) and the same linear
    interpolation: identical values (compared on four CTs).
    """
    coords = [i * ((n_in - 1) / (n_out - 1)) if n_out > 1 else np.zeros(len(i)) for i, n_in, n_out in zip(idx, small.shape, shape)]
    return ndi.map_coordinates(small, coords, order=1)


#: an enclosed air pocket smaller than this (equivalent diameter, mm) in dense lung tissue is a cavity
MAX_CAVITY_MM = 30.0
#: dense tissue, for the cavity walls (HU). Why not -400 (before 0.7.1): on 5 mm slices a thin-walled cavitary
#: nodule's cap is averaged with the lung (-300..-200 HU over its centre, below -400 somewhere around it, where its
#: air joined the lung's at -400), the cavity was not filled and the nodule had no seed
#: (tuning patient 5319's 19.6 mm nodule, --kinds cavitary). -500: that nodule a candidate and found; validation
#: 5000-5035 and held-out 9000-9071 found the same nodules with the same false positives (benchmarks/RESULTS.md)
CAVITY_WALL_HU = -500.0


def _filled_cavities(work: np.ndarray, region: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(filled, cavities)``: ``work`` with small air pockets fully enclosed by dense tissue set to their
    wall's density, and those pockets' voxels (what a seed's ``in_cavity`` is read from).

    A cavitary nodule is a shell: its air-filled centre has no blob response
    of its own, and the Hessian seeds land on the wall or on a vessel beside
    it (held-out patients 9004 and 9033: seeds 8.6-9.1 mm off the centres of
    10.2 and 10.6 mm cavitary nodules, both lost). Filled, it is a solid blob
    for the filter: 9033's nodule becomes a candidate (with the fill and not
    without, same lung mask); 9004's, beside a hilar vessel, still does not. Only for the blob filter's seeds; segmentation sees the
    image as it is (and fills the cavity itself). Enclosed in 3D and smaller
    than :data:`MAX_CAVITY_MM`: the lung, a lumen open to the airway tree and
    the air around nodules are not enclosed.
    """
    dense = work > CAVITY_WALL_HU
    air = ~dense
    lab, n = ndi.label(air)
    if n < 2:
        return work, np.zeros(work.shape, bool)
    sizes = np.bincount(lab.ravel())
    max_vox = np.pi / 6 * (MAX_CAVITY_MM / WORK_MM) ** 3
    # not enclosed: touches the grid border
    border = np.unique(np.concatenate([lab[0].ravel(), lab[-1].ravel(), lab[:, 0].ravel(), lab[:, -1].ravel(),
                                       lab[:, :, 0].ravel(), lab[:, :, -1].ravel()]))
    ok = sizes <= max_vox
    ok[0] = False
    ok[border] = False
    cav = ok[lab] & region
    if not cav.any():
        return work, cav
    out = work.copy()
    clab, _ = ndi.label(cav)
    b = _ball(1.8)
    for i, box in enumerate(ndi.find_objects(clab), start=1):
        # each cavity takes the mean density of the wall around it; a wall voxel between two cavities
        # counts for the higher label (computed per cavity's box: a whole-grid dilation costs ~1 s)
        sl = tuple(slice(max(0, a.start - 4), a.stop + 4) for a in box)
        cl = clab[sl]
        ring = ndi.binary_dilation(cl > 0, b) & dense[sl] & (ndi.grey_dilation(cl, footprint=b) == i)
        if ring.any():
            out[sl][cl == i] = float(work[sl][ring].mean(dtype=np.float64))
        else:
            cav[sl][cl == i] = False  # no wall to take a density from: left as air, not a cavity
    return out, cav


def _shell(seg: np.ndarray) -> np.ndarray:
    """The voxels more than 1 and at most 3 voxels from ``seg``: its dilation by :func:`_ball` (3) less that by (1).

    From one distance transform instead of two dilations (each seed's segmentation takes two such
    rings; the dilations were ~0.8 s of the candidate stage's ~9 s CPU on a synthetic CT). The same
    set exactly: a voxel is in the dilation by the ball of radius r when its squared distance to
    ``seg``, an integer, is at most r², and the distances are exact.
    """
    d = _edt(~seg)
    return (d <= 3.0) & (d > 1.0)


def _ball(r: float) -> np.ndarray:
    """Structuring element: the offsets within real radius ``r`` (voxels)."""
    n = int(np.floor(r))
    z, y, x = np.ogrid[-n : n + 1, -n : n + 1, -n : n + 1]
    return (z * z + y * y + x * x) <= r * r


def _segment_seed(
    work: np.ndarray, region: np.ndarray, c: np.ndarray, sigma_mm: float, envelope: np.ndarray | None = None,
    in_cavity: bool = False,
) -> tuple[np.ndarray, tuple[slice, ...], dict[str, float]] | None:
    """Segment one seed inside a ball; returns (mask crop, slices, features).

    ``envelope`` (mass seeds only, :func:`_pleural_envelope`): tissue outside
    the lung mask the segmentation may also grow into. A mass seed sits in
    the mass's in-lung part, off the centre of a mass that extends into the
    envelope, and its ball is sized from that part, so the first
    segmentation is cut by the ball (real CT A0001: the tumour's lower third
    missing). When it reaches the ball's surface, it is segmented once more
    from its own centroid with a ball sized from its own volume.

    ``in_cavity``: the seed lies in an air pocket :func:`_filled_cavities`
    filled for the blob filter -- a cavitary nodule, whose segmentation may
    have to be cut free of its neighbours (:func:`_recut_cavity_merge`).
    """
    r = _segment_once(work, region, c, sigma_mm, envelope, in_cavity)
    for _ in range(MASS_REGROW):
        if r is None or envelope is None or r[2]["touch"] < 0.05:
            break
        seg, sl, f = r
        c2 = np.argwhere(seg).mean(0) + [s.start for s in sl]
        r2 = _segment_once(work, region, c2, float(min(max(f["diameter_mm"] / 2, f["r_est_mm"]), 40.0) / np.sqrt(3.0)), envelope)
        if r2 is None or r2[0].sum() <= 1.05 * seg.sum():
            break
        r = r2
    if r is not None and envelope is not None:
        seg, sl, f = r
        r = (_complete_by_hull(seg, work[sl], region[sl]), sl, f)
    return r


#: tissue a mass's convex hull may add outside the lung mask (HU): soft tissue, not air, not bone
HULL_HU = (-300.0, 300.0)


def _complete_by_hull(seg: np.ndarray, w: np.ndarray, reg: np.ndarray) -> np.ndarray:
    """A mass segmentation completed by the soft tissue outside the lung mask within its own convex hull.

    Why: where a tumour lies against the chest wall with lung on one side
    only (real CT A0001's posterior paravertebral part: lung below it, none
    above), the pleural envelope does not reach it and the threshold region
    stops at a flat line -- the lung mask's edge -- across the tumour (median
    0.47-0.49 of the annotated boxes' dense pixels covered). A mass is
    roughly convex: the tissue between that line and the tumour's own
    outline on the slices above and below is inside its convex hull, while
    muscle and ribs beyond the pleura are not. Only voxels outside the lung
    mask in :data:`HULL_HU` are added (inside the lung the threshold region
    is already the outline; concavities there are lung or vessels), and only
    those connected to the mass. The shape features stay those of the
    segmentation before completion: the classifier and the mass rule were
    set on them. Returns the completed mask (``seg`` itself when nothing is added).
    """
    from scipy.spatial import ConvexHull, Delaunay, QhullError

    # the hull lies within the mask's bounding box: everything below is computed there
    box = tuple(slice(int(a.min()), int(a.max()) + 1) for a in np.nonzero(seg))
    s, wb = seg[box], w[box]
    cidx = np.argwhere(~reg[box] & (wb > HULL_HU[0]) & (wb < HULL_HU[1]) & ~s)
    if len(cidx) == 0:
        return seg
    pts = np.argwhere(s)
    try:
        tri = Delaunay(pts[ConvexHull(pts).vertices])
    except (QhullError, ValueError):  # flat or tiny: nothing to complete
        return seg
    inside = tri.find_simplex(cidx) >= 0
    if not inside.any():
        return seg
    grown = s.copy()
    grown[tuple(cidx[inside].T)] = True
    lab, _ = ndi.label(grown)
    keep = np.unique(lab[s])
    out = seg.copy()
    out[box] = np.isin(lab, keep[keep > 0])
    return out


def _segment_once(
    work: np.ndarray, region: np.ndarray, c: np.ndarray, sigma_mm: float, envelope: np.ndarray | None,
    in_cavity: bool = False,
) -> tuple[np.ndarray, tuple[slice, ...], dict[str, float]] | None:
    """One segmentation of :func:`_segment_seed` around ``c``."""
    r_est = max(2.0, np.sqrt(3.0) * sigma_mm)
    # limiting ball: ~2 radii for nodules; masses (r_est > 10 mm) get 1.3 radii
    # so a tumour is not merged with the hilar vessels next to it
    rb = int(np.ceil(((2.0 if r_est <= 10.0 else 1.3) * r_est + 4.0) / WORK_MM))
    ci = np.round(c).astype(int)
    lo = np.maximum(ci - rb, 0)
    hi = np.minimum(ci + rb + 1, work.shape)
    sl = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    w = work[sl]
    reg = region[sl]
    zz, yy, xx = np.ogrid[lo[0] - ci[0] : hi[0] - ci[0], lo[1] - ci[1] : hi[1] - ci[1], lo[2] - ci[2] : hi[2] - ci[2]]
    d2 = zz * zz + yy * yy + xx * xx
    ball = d2 <= rb * rb
    shell = ball & (d2 > (rb - 1.5) ** 2)
    inner = d2 <= max(1.0, 0.5 * r_est / WORK_MM) ** 2
    core = float(np.percentile(w[inner], 90))
    if core < GGN_FLOOR_HU:
        # a cavity (air) at the seed: the nodule is the wall around it
        inner = d2 <= max(1.5, r_est / WORK_MM) ** 2
        core = float(np.percentile(w[inner], 90))
    bg = _lung_level(w[ball & reg & (d2 > (1.5 * r_est / WORK_MM) ** 2)])
    contrast = core - bg
    if contrast < 150.0 or core < GGN_FLOOR_HU:
        return None
    thr = bg + 0.5 * contrast
    s0 = tuple(int(v) for v in ci - lo)
    allowed = ball & (reg | envelope[sl]) if envelope is not None else ball & reg
    seg = _grow(w, allowed, thr, s0, inner)
    if seg is None:
        return None
    seg = ndi.binary_fill_holes(seg)  # a cavity belongs to its nodule
    # ground-glass halo (part-solid nodule): the ring just outside the solid
    # contour is clearly denser than the lung -> grow again at the halo's level
    ring = _shell(seg) & reg & ball
    if ring.sum() > 10:
        ring_hu = float(np.median(w[ring]))
        # not for a calcified core (measure's level; its 90th percentile here): its own blur (5 mm slices)
        # fills this ring at 82-136 HU above the lung (one: 398), and growing it at ~-750 HU took the vessels around
        # it -- 6 calcified nodules of validation 5000-5035 came out 0.5-5.5 mm too large, and the
        # benchmark phantom 9100's 12 mm one a 19 mm elongated candidate the classifier rejected. Cores
        # of the soft-tissue kinds reach 118 HU on the same patients; those calcified ones, 354-1008 HU
        if ring_hu - bg > HALO_MIN_CONTRAST_HU and ring_hu < thr and core < CALCIFIED_HU:
            thr = bg + 0.5 * (ring_hu - bg)
            seg2 = _grow(w, allowed, thr, s0, inner)
            if seg2 is not None:
                seg = ndi.binary_fill_holes(seg2)
    v_raw = int(seg.sum())
    # cut attached tubes, keeping the part at the seed
    lab2, n2 = _cut_tubes(seg)
    if n2 == 0:
        return None
    seg = _part_at(lab2, s0, inner)
    if in_cavity:
        seg = _recut_cavity_merge(seg, s0, inner)
    v = int(seg.sum())
    if v < 8:
        return None
    # how much of the nodule's immediate surroundings is aerated lung: ~1 for a
    # free nodule, >= ~0.4 on the pleura, low for mediastinum/bone/chest wall
    ring = _shell(seg)
    air_ring = float((w[ring] < -500.0).mean()) if ring.any() else 0.0
    pts = np.argwhere(seg).astype(np.float64)
    cov = np.cov(pts.T) if v > 3 else np.eye(3)
    ev = np.clip(np.linalg.eigvalsh(cov), 1e-6, None)
    feats = {
        "diameter_mm": float((6.0 * v / np.pi) ** (1 / 3) * WORK_MM),
        "elongation": float(np.sqrt(ev[0] / ev[2])),
        "flatness": float(np.sqrt(ev[1] / ev[2])),
        "touch": float((seg & shell).sum() / max(1, shell.sum())),
        "tube_cut": float(1.0 - v / max(v_raw, 1)),
        "contrast_hu": contrast,
        "core_hu": core,
        "threshold_hu": thr,
        "r_est_mm": float(r_est),
        "air_ring": air_ring,
    }
    return seg, sl, feats


#: a cavity seed's segmentation larger than this many times its largest inscribed ball is a merge ...
CAVITY_MERGE_RATIO = 2.0
#: ... and is opened again with a ball of this fraction of that ball's radius (:func:`_recut_cavity_merge`)
CAVITY_RECUT = 0.85


def _recut_cavity_merge(seg: np.ndarray, s0: tuple[int, ...], inner: np.ndarray) -> np.ndarray:
    """A cavitary nodule's segmentation cut free of the vessels and airway walls merged with it.

    Why: a cavitary nodule is a shell, and where its cavity is open to the
    lung on one slice the 3-D hole filling leaves it a shell; its largest
    inscribed ball is then the wall's, so :func:`_cut_tubes` opens with a
    ball thinner than the hilar vessels and bronchial walls it touches, and
    the candidate is the nodule and its neighbours (tuning patients
    5300-5323, drawn with only cavitary nodules: 10-12 mm nodules segmented
    12.5-17.5 mm, elongated, rejected by the classifier). Closed slice by
    slice (the wall is whole on the axial slices through the cavity), a
    segmentation more than :data:`CAVITY_MERGE_RATIO` times the volume of
    its largest inscribed ball is opened again with :data:`CAVITY_RECUT` of
    that ball's radius -- what is thinner than the nodule falls away -- and
    the part at the seed is kept. Only for seeds in a cavity the blob filter
    saw filled: on every seed it found 3 more cavitary nodules there and
    doubled the false positives (vessel junctions cut into round pieces).
    And only when the closed segmentation holds the seed: where the cavity
    stays open at the seed the inscribed ball is the wall's, and the cut
    kept a piece of wall (validation 5023's 9.3 mm nodule: 19 of its 126
    voxels, measured 3.2 mm small). What is returned is closed slice by
    slice: a cavity belongs to its nodule, as after the 3-D filling.
    """
    closed = seg | np.stack([ndi.binary_fill_holes(x) for x in seg])
    if not closed[s0]:
        return seg
    r = float(_edt(closed).max())
    if r < 2.0 or closed.sum() <= CAVITY_MERGE_RATIO * (4.0 / 3.0) * np.pi * r**3:
        return closed
    lab, n = ndi.label(_opened(closed, CAVITY_RECUT * r))
    if n == 0:
        return closed
    return _part_at(lab, s0, inner)


def _part_at(lab: np.ndarray, s0: tuple[int, ...], inner: np.ndarray) -> np.ndarray:
    """The labelled part a seed is after: the one at the seed voxel, else the one filling most of ``inner``
    (the ball around the seed), else the largest (``lab`` holds at least one label)."""
    if lab[s0]:
        return lab == lab[s0]
    vals = lab[inner & (lab > 0)]
    return lab == (int(np.bincount(vals).argmax()) if vals.size else int(np.bincount(lab[lab > 0]).argmax()))


def _lung_level(values: np.ndarray) -> float:
    """The surrounding lung's level (HU) from ``values`` sampled around an object: their median, at most -600.

    The cap keeps a sample that is mostly vessels or ground glass from being taken for the lung;
    with too few values (<= 20), -850, aerated lung.
    """
    return min(float(np.median(values)) if values.size > 20 else -850.0, -600.0)


def _cut_tubes(seg: np.ndarray) -> tuple[np.ndarray, int]:
    """``seg`` opened with a ball of 0.6 of its own largest inscribed radius (0.8 voxel to MASS_OPEN_MM), labelled.

    Vessels attached to a nodule are thinner than it and vanish; the caller keeps the component it
    is after. Returns ``scipy.ndimage.label``'s (labels, count); count 0 when nothing survives.
    """
    t = max(0.8, min(0.6 * float(_edt(seg).max()), MASS_OPEN_MM / WORK_MM))
    return ndi.label(_opened(seg, t))


def _grow(w: np.ndarray, allowed: np.ndarray, thr: float, s0: tuple[int, ...], inner: np.ndarray) -> np.ndarray | None:
    """Connected region above ``thr`` inside ``allowed`` holding the seed."""
    lab, n = ndi.label(allowed & (w > thr))
    if n == 0:
        return None
    if lab[s0]:
        return lab == lab[s0]
    vals = lab[inner & (lab > 0)]
    if vals.size == 0:
        return None
    return lab == int(np.bincount(vals).argmax())


#: logistic weights of :func:`_score` (raw feature units); fitted by
#: L2-regularised logistic regression on candidates from training phantoms
#: (seeds 200-205, 384² matrix, 8 nodules each, 1524 candidates / 43 hits;
#: never the evaluation seeds 7000-7011), rounded
SCORE_BIAS = -24.50
SCORE_WEIGHTS: dict[str, float] = {
    "elongation": 7.44,
    "flatness": 5.19,
    "ratio": 9.39,
    "touch": -4.87,
    "tube_cut": 0.58,
    "air_ring": 4.38,
    "log_diameter": 1.16,
    "contrast_khu": 2.79,
    "bone": -3.08,
    "blob_hhu": 0.18,
}


def _score(f: dict[str, float]) -> float:
    """Probability-like score in [0, 1] of one candidate.

    Blob candidates (Hessian seeds): ``1 / (1 + exp(-z))`` with
    ``z = SCORE_BIAS + Σ SCORE_WEIGHTS[k]·x_k`` over the features
    elongation and flatness (PCA: round → 1, tube → 0), Hessian ``ratio``,
    ``touch`` (fraction of the limiting ball's surface the segmentation
    reaches: leaks into chest wall, mediastinum, large vessels), ``tube_cut``
    (fraction removed by the vessel-cutting opening), ``air_ring`` (fraction
    of a 1-4 mm ring around it that is aerated lung), log equivalent diameter,
    contrast to the lung (kHU), ``bone`` (core ≥ 300 HU *and* little air
    around: rib/vertebra inside the closed lung mask; calcified nodules are
    surrounded by lung) and the normalised blob response (hHU). Calibrated
    in the sense of a logistic fit on training phantoms (hit vs not), so it
    approximates P(candidate is a true nodule | features) on synthetic data.

    Mass candidates (from :func:`_mass_seeds`, > 15 mm) use a hand-set
    logistic ``z = -6 + 0.15·d_mm + 4·elongation + 3·air_ring - 3·tube_cut``:
    large, compact, lung-surrounded masses score high; hilar vessel/bronchus
    bundles inside the closed lung mask (elongated, heavily cut, little air)
    low. Set by hand on the real A0001 CT (tumour vs hilum) -- one case only.
    """
    if f.get("mass", 0.0) > 0:
        z = -6.0 + 0.15 * f["diameter_mm"] + 4.0 * f["elongation"] + 3.0 * f["air_ring"] - 3.0 * f["tube_cut"]
    else:
        x = {
            "elongation": f["elongation"],
            "flatness": f["flatness"],
            "ratio": f["ratio"],
            "touch": f["touch"],
            "tube_cut": f["tube_cut"],
            "air_ring": f["air_ring"],
            "log_diameter": float(np.log(max(f["diameter_mm"], 0.5))),
            "contrast_khu": f["contrast_hu"] / 1000.0,
            "bone": float(f["core_hu"] > 300.0) * (1.0 - f["air_ring"]),
            "blob_hhu": f["blob_hu"] / 100.0,
        }
        z = SCORE_BIAS + sum(SCORE_WEIGHTS[k] * v for k, v in x.items())
    return float(1.0 / (1.0 + np.exp(-np.clip(z, -50, 50))))


def detect_nodules_classical(
    volume: Volume,
    lung_labels: np.ndarray,
    *,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    masses: bool = True,
    min_probability: float = MIN_PROBABILITY,
) -> CandidateResult:
    """Find and segment lung nodules without a trained model.

    Parameters
    ----------
    volume
        CT in HU (any slice thickness; works on the CT's own grid).
    lung_labels
        uint8 lung mask of the same shape (1 right, 2 left), from
        :func:`inference.pipeline.lungs.segment_lungs` -- it is hole-filled
        and closed, so nodules on the pleura and the tumour lie inside it.
    progress
        Optional ``progress(fraction, message)``.
    cancel
        Optional ``cancel() -> bool``; when it returns True the function stops
        and returns no detections with a warning.
    masses
        Also run the mass path (:func:`_mass_seeds`, > 15 mm dense tissue).
        It is what finds a large tumour abutting the mediastinum, but on
        synthetic patients it also returns hilar vessel bundles and
        atelectasis (≈ 1-2 extra false positives per scan); False for a
        small-nodule screening setting.
    min_probability
        Drop candidates whose hand-set score is below this. 0 keeps every
        candidate, which is what the learned false-positive reduction stage
        (:mod:`inference.pipeline.detect`) wants: it rescores them all.

    Returns
    -------
    CandidateResult
        Labels on the CT grid, ids by volume (largest first), one score per id.
    """
    t0 = time.perf_counter()
    hu = np.asarray(volume.array)
    lung = np.asarray(lung_labels) > 0
    empty = np.zeros(hu.shape, np.uint16)
    if lung.shape != hu.shape:
        return CandidateResult(empty, [], time.perf_counter() - t0, [f"lung mask shape {lung.shape} differs from CT {hu.shape}: no nodule candidates"])
    if not lung.any():
        return CandidateResult(empty, [], time.perf_counter() - t0, ["empty lung mask: no nodule candidates"])

    def check() -> None:
        if cancel is not None and cancel():
            raise _Cancelled

    def report(f: float, msg: str) -> None:
        if progress is not None:
            progress(f, msg)

    try:
        return _detect(hu, lung, tuple(float(v) for v in volume.spacing), check, report, t0, masses, min_probability)  # type: ignore[arg-type]
    except _Cancelled:
        return CandidateResult(empty, [], time.perf_counter() - t0, ["nodule candidate detection cancelled"])


def _detect(
    hu: np.ndarray, lung: np.ndarray, sp: tuple[float, float, float], check: Callable[[], None], report: ProgressFn, t0: float, masses: bool,
    min_probability: float = MIN_PROBABILITY,
) -> CandidateResult:
    warnings: list[str] = []
    if max(sp) > 3.0:
        warnings.append(f"slice spacing {max(sp):.1f} mm: nodules smaller than about {2 * max(sp):.0f} mm may be missed by the classical detector")
    if min(sp[1:]) > 1.2:
        warnings.append(f"pixel spacing {min(sp[1:]):.2f} mm: coarser than the 0.6-1.0 mm the nodule model was built for; "
                        "nodule contours may include the blurred rim (over-segmentation) and small nodules may be missed")
    report(0.0, "nodule candidates: resampling")
    # crop to the lungs + margin
    nz = np.nonzero(lung.any(axis=(1, 2)))[0], np.nonzero(lung.any(axis=(0, 2)))[0], np.nonzero(lung.any(axis=(0, 1)))[0]
    margin = [int(np.ceil(8.0 / s)) for s in sp]
    lo = [max(0, int(a[0]) - m) for a, m in zip(nz, margin)]
    hi = [min(n, int(a[-1]) + m + 1) for a, n, m in zip(nz, hu.shape, margin)]
    csl = tuple(slice(a, b) for a, b in zip(lo, hi))
    crop = hu[csl].astype(np.float32)
    lcrop = lung[csl]
    ext = [(b - a) * s for a, b, s in zip(lo, hi, sp)]
    wshape = tuple(max(1, int(round(e / WORK_MM))) for e in ext)
    work = _resample(crop, sp, wshape, WORK_MM, nearest=False)  # type: ignore[arg-type]
    region = _resample(lcrop.astype(np.uint8), sp, wshape, WORK_MM, nearest=True) > 0  # type: ignore[arg-type]
    check()
    report(0.15, "nodule candidates: blob filter")
    # the three seed sources are independent: run them side by side (same seeds, in the same order)
    with ThreadPoolExecutor(max_workers=FILTER_THREADS) as pool:
        band = pool.submit(_opening_seeds, work, region)
        mass = pool.submit(_mass_seeds, work, region) if masses else None
        env = pool.submit(_pleural_envelope, work, region) if masses else None
        filled, cavities = _filled_cavities(work, region)
        blob = _seeds(filled, region, check, pool)
        seeds = (mass.result() if mass is not None else []) + blob
        check()
        seeds += band.result()
        report(0.6, f"nodule candidates: {len(seeds)} seeds")
        dets = _segment_seeds(work, region, seeds, check, pool, min_probability, env.result() if env is not None else None,
                              cavities)
        report(0.8, f"nodule candidates: {len(dets)} detections")
        labels, probs, feats = _to_native(hu, sp, csl, dets, pool)
    report(1.0, "nodule candidates: done")
    return CandidateResult(labels, probs, time.perf_counter() - t0, warnings, feats)


def _segment_seeds(
    work: np.ndarray, region: np.ndarray, seeds: list[tuple[np.ndarray, float, float, float]], check: Callable[[], None],
    pool: Executor, min_probability: float, envelope: np.ndarray | None = None, cavities: np.ndarray | None = None,
) -> list[tuple[np.ndarray, tuple[slice, ...], dict[str, float]]]:
    """Segment the seeds in order; a seed inside an earlier segmentation is skipped (non-maximum suppression).

    The next few seeds not yet covered are segmented ahead on ``pool``
    (:func:`_segment_seed` only reads the image); the skip decisions stay
    serial, so the result is the serial one, bit for bit. ``covered`` only
    grows, so a seed covered when the look-ahead passed it is still covered
    at its turn; at most ``2 × threads`` segmentations are wasted at a time.
    ``cavities``: the voxels :func:`_filled_cavities` filled for the blob
    filter; a seed there is segmented as a cavitary nodule.
    """
    covered = np.zeros(work.shape, bool)
    last = np.array(work.shape) - 1
    idx = [tuple(int(v) for v in np.clip(np.round(c).astype(int), 0, last)) for c, *_ in seeds]
    in_cav = [cavities is not None and bool(cavities[i]) for i in idx]
    ahead = 2 * FILTER_THREADS
    pending: dict[int, Future[Any]] = {}
    dets: list[tuple[np.ndarray, tuple[slice, ...], dict[str, float]]] = []
    for j, (c, s_mm, resp, ratio) in enumerate(seeds):
        for k in range(j, min(len(seeds), j + ahead)):
            if k not in pending and not covered[idx[k]]:
                pending[k] = pool.submit(_segment_seed, work, region, seeds[k][0], seeds[k][1],
                                         envelope if seeds[k][2] >= MASS_TAG else None, in_cav[k])
        fut = pending.pop(j, None)
        if covered[idx[j]]:
            continue
        check()
        r = fut.result() if fut is not None else _segment_seed(work, region, c, s_mm, envelope if resp >= MASS_TAG else None,
                                                               in_cav[j])
        if r is None:
            continue
        seg, sl, f = r
        # the same object found again from a second seed: keep the first
        dup = (covered[sl] & seg).sum() > 0.3 * seg.sum()
        covered[sl] |= seg
        if dup:
            continue
        f["mass"] = float(resp >= MASS_TAG)
        f["mass_depth_mm"] = resp - MASS_TAG if resp >= MASS_TAG else 0.0
        f["opening"] = float(BAND_TAG <= resp < MASS_TAG)
        f["ratio"] = ratio
        f["blob_hu"] = min(resp, 400.0) if resp < BAND_TAG else 0.0
        f["sigma_mm"] = s_mm
        f["probability"] = _score(f)
        if f["probability"] >= min_probability:
            dets.append((seg, sl, f))
    for fut in pending.values():
        fut.cancel()
    return dets


def _native_mask(hu: np.ndarray, sp: tuple[float, float, float], csl: tuple[slice, ...], seg: np.ndarray,
                 sl: tuple[slice, ...], thr: float) -> tuple[np.ndarray, tuple[slice, ...]] | None:
    """One work-grid detection on the CT grid: its dilated mask, cut at its own HU threshold on the native image."""
    off = np.array([s.start for s in csl], float)
    spa = np.array(sp, float)
    segd = ndi.binary_dilation(seg, structure=_ball(1))
    # native index range covered by this work crop
    w0 = np.array([s.start for s in sl], float)
    w1 = np.array([s.stop for s in sl], float)
    n0 = np.maximum(np.floor(w0 * WORK_MM / spa).astype(int) + off.astype(int), 0)
    n1 = np.minimum(np.ceil(w1 * WORK_MM / spa).astype(int) + off.astype(int), hu.shape)
    nsl = tuple(slice(int(a), int(b)) for a, b in zip(n0, n1))
    # native voxel centres -> work voxel indices (corner-aligned grids)
    axes = [((np.arange(a, b) - o + 0.5) * s / WORK_MM - 0.5 - w) for a, b, o, s, w in zip(n0, n1, off, spa, w0)]
    idx = [np.clip(np.round(a).astype(int), 0, n - 1) for a, n in zip(axes, segd.shape)]
    prior = segd[np.ix_(*idx)]
    sub = hu[nsl].astype(np.float32)
    sm = ndi.gaussian_filter(sub, [max(0.0, 0.5 * WORK_MM / s - 0.3) for s in sp])
    m = ndi.binary_fill_holes(prior & (sm > thr))
    lab, n = ndi.label(m)
    if n == 0:
        return None
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    m = lab == int(sizes.argmax())
    return (m, nsl) if m.sum() >= 4 else None


def _to_native(
    hu: np.ndarray,
    sp: tuple[float, float, float],
    csl: tuple[slice, ...],
    dets: list[tuple[np.ndarray, tuple[slice, ...], dict[str, float]]],
    pool: Executor | None = None,
) -> tuple[np.ndarray, list[float], list[dict[str, float]]]:
    """Map work-grid detections to the CT grid with native-resolution edges.

    The per-detection masks are independent (``pool`` computes them side by
    side); they are painted into one label map serially, largest first, after
    :func:`_carve_held_off_centre`.
    """
    out = np.zeros(hu.shape, np.uint16)
    jobs = [(hu, sp, csl, seg, sl, f["threshold_hu"]) for seg, sl, f in dets]
    done = pool.map(lambda a: _native_mask(*a), jobs) if pool is not None else (_native_mask(*a) for a in jobs)
    masks = [(r[0], r[1], f) for r, (_, _, f) in zip(done, dets) if r is not None]
    _carve_held_off_centre(masks, sp)
    # the largest first: a later, larger segmentation around an earlier one (a part-solid nodule's
    # halo around its solid core) is the same nodule and takes it whole
    masks.sort(key=lambda t: -int(t[0].sum()))
    probs: list[float] = []
    feats: list[dict[str, float]] = []
    painted: list[tuple[tuple[slice, ...], int]] = []  # (box, voxels) per id, for the ordering below
    for m, nsl, f in masks:
        i = len(probs) + 1
        view = out[nsl]
        free = m & (view == 0)
        n_free = int(free.sum())
        # mostly inside a larger detection already painted: the same object (a part-solid nodule's
        # solid core inside its halo; patient 9002 reported the core's 50 leftover voxels as a second finding)
        if n_free < max(4, 0.5 * m.sum()):
            continue
        view[free] = i
        painted.append((nsl, n_free))
        probs.append(round(float(f["probability"]), 3))
        feats.append({k: round(float(v), 3) for k, v in f.items()})
    # ids by painted volume, largest first (the documented order; a painted part can be smaller than its
    # mask, and a later mask never takes an earlier one's voxels, so the counts above are the final ones).
    # Renumbered box by box: a whole-grid bincount and lookup took 4.1 + 1.5 s on a 300-slice CT's map (RESULTS.md).
    order = np.argsort(-np.array([c for _, c in painted], dtype=np.int64), kind="stable")
    return (renumber(out, [(painted[j][0], j + 1) for j in order]),
            [probs[j] for j in order], [feats[j] for j in order])


def renumber(labels: np.ndarray, boxes_ids: list[tuple[tuple[slice, ...] | None, int]]) -> np.ndarray:
    """A new label map where the k-th ``(box, id)`` pair's voxels (``labels[box] == id``) get id ``k + 1``.

    Why box by box: findings fill a few thousandths of a CT, and whole-grid
    passes -- ``np.bincount``, a lookup table applied to every voxel -- cost
    seconds on a 300-slice CT (they convert every voxel to a 64-bit index).
    Voxels not in any listed pair are 0; a pair whose box is None (an id
    without voxels) keeps its number ``k + 1``, unused.
    """
    out = np.zeros(labels.shape, np.uint16)
    for k, (box, i) in enumerate(boxes_ids, start=1):
        if box is not None:
            out[box][labels[box] == i] = k
    return out


def _carve_held_off_centre(masks: list[tuple[np.ndarray, tuple[slice, ...], dict[str, float]]],
                           sp: tuple[float, float, float]) -> None:
    """Remove from each mask the earlier (stronger-seed) detections it holds off its centre (in place).

    A later, larger segmentation that holds most of an earlier one with its
    centre farther than that one's radius is a nodule merged with a
    neighbour (a vessel, reached from a ground-glass-band seed), not a bigger
    view of the same nodule: painted largest first it took the nodule's
    voxels and the nodule was lost (held-out patient 9021: a 7.1 mm
    spiculated nodule, segmented 0.5 mm from its centre, lost to a 9.9 mm
    segmentation centred 7.6 mm away). Painting in detection order instead
    split part-solid nodules into core and halo (patient 9002).
    """
    if len(masks) < 2:
        return
    spa = np.asarray(sp, float)
    size = np.array([int(m.sum()) for m, _, _ in masks])
    cen = np.array([(np.argwhere(m).mean(0) + [s.start for s in nsl]) * spa for m, nsl, _ in masks])
    rad = (6.0 * size * float(np.prod(spa)) / np.pi) ** (1 / 3) / 2
    lo = np.array([[s.start for s in nsl] for _, nsl, _ in masks])
    hi = np.array([[s.stop for s in nsl] for _, nsl, _ in masks])
    for j, (mj, slj, _) in enumerate(masks):  # j: the earlier detection
        # later, larger, centred off j, boxes overlapping (centres and sizes are taken before any carving)
        later = np.arange(j + 1, len(masks))
        ok = (size[later] > size[j]) & (np.linalg.norm(cen[later] - cen[j], axis=1) > rad[j])
        ok &= (np.minimum(hi[later], hi[j]) > np.maximum(lo[later], lo[j])).all(axis=1)
        for b in later[ok]:
            mb, slb, _ = masks[b]
            a = np.maximum(lo[b], lo[j])
            z = np.minimum(hi[b], hi[j])
            wj = tuple(slice(int(u - x.start), int(v - x.start)) for u, v, x in zip(a, z, slj))
            wb = tuple(slice(int(u - x.start), int(v - x.start)) for u, v, x in zip(a, z, slb))
            if (mj[wj] & mb[wb]).sum() >= 0.5 * size[j]:
                mb[wb] &= ~mj[wj]


#: a kept finding's part-solid halo is looked for in the ring 1.5-3.5 work voxels (1.9-4.4 mm) outside it ...
HALO_RING_VOX = (1.5, 3.5)
#: ... within its own equivalent radius + this (mm) of its centre ...
HALO_NEAR_MM = 4.0
#: ... and is there when this percentile of that ring is ground glass (HALO_MIN_CONTRAST_HU above the lung,
#: below GGN_BAND_MAX_HU; the candidate stage's own halo test in :func:`_segment_once` uses the same floor) ...
HALO_PERCENTILE = 75.0
HALO_MIN_CONTRAST_HU = 80.0
#: ... and at least this share of that ring lies above the level grown to (a halo surrounds the finding;
#: a solid nodule's blur and the vessels beside it fill a quarter of the ring, not half of it) ...
HALO_MIN_SHARE = 0.5
#: ... for findings up to this equivalent diameter (mm): masses keep their own contour
HALO_MAX_MM = 30.0
#: the settings above, as findings.json names them (``model.candidates.halo_growth``)
HALO_GROWTH: dict[str, float] = {"ring_vox_from": HALO_RING_VOX[0], "ring_vox_to": HALO_RING_VOX[1], "near_mm": HALO_NEAR_MM,
                                 "percentile": HALO_PERCENTILE, "min_contrast_hu": HALO_MIN_CONTRAST_HU,
                                 "min_share": HALO_MIN_SHARE, "max_diameter_mm": HALO_MAX_MM}


Box = tuple[slice, ...]


def grow_halos(hu: np.ndarray, lung: np.ndarray, spacing: tuple[float, float, float], labels: np.ndarray,
               boxes: list[Box | None] | None = None, cancel: CancelFn | None = None) -> tuple[list[int], list[Box | None]]:
    """Grow findings into the ground-glass halo their segmentation left out, *in* ``labels``; returns
    (grown ids, each id's box after growth).

    Why: a part-solid nodule is segmented at its solid core's level first
    and grown again at the halo's level only when the ring just outside the
    core is ground glass (:func:`_segment_once`). When a vessel runs through
    the core, the solid contour follows the vessel, the ring around core and
    vessel is mostly lung, and the nodule is reported as its core: as a
    smaller nodule, often of the wrong type, which changes its Lung-RADS
    category and Fleischner advice. Doing the wider test in the
    candidate stage itself also grew vessel junctions into round blobs the
    classifier then accepted (validation FP 0.78 -> 1.92 per scan,
    benchmarks/RESULTS.md), so it runs here, on the *kept* findings only:
    what is reported does not change, only how large a kept finding is.

    Per finding (work grid around it, :data:`WORK_MM`): the ring
    :data:`HALO_RING_VOX` outside it and near its centre; when that ring's
    :data:`HALO_PERCENTILE` is ground glass *and* at least
    :data:`HALO_MIN_SHARE` of the ring lies above the halfway level between
    the lung and that value, the lung (not other findings) above that level,
    connected to the finding within a ball of twice its radius + 4 mm, opened
    to cut the vessels that pass through (:func:`_cut_tubes`), is
    added, at the native resolution (:func:`_native_mask`). Ids are unchanged.

    The share test is what keeps solid nodules as they are: a halo surrounds
    the finding, while a solid nodule's own blur and the vessels beside it
    fill only part of the ring. Without it, 7 of the 36 other nodules ≥ 5 mm
    (calcified, cavitary, juxtavascular, juxtapleural) of validation patients
    5000-5011 grew by 2-12 mm; with it none did, and on hard-kind patients
    5200-5211 the 5 nodules whose findings grew went from Dice 0.06-0.52 to
    0.58-0.94 (patient 5202's 25 mm part-solid nodule: 7.4 -> 24.2 mm, solid
    -> part-solid). Numbers and commands: benchmarks/RESULTS.md.

    ``lung``: the lung mask, any non-zero value is lung. ``boxes[i - 1]``: id
    ``i``'s box (``scipy.ndimage.find_objects``), when the caller has them:
    a whole-grid pass costs 0.2 s (find_objects) to 4.1 s (bincount) on a
    300-slice CT (RESULTS.md), so
    the step touches only the crops around the findings, and ``labels`` is
    changed in place instead of copied. Each finding is judged against the
    findings as they were given (a neighbour's grown halo does not count as
    "another finding" for it), as when the map was copied.

    ``cancel`` is asked before each finding (the step takes 0.1-0.4 s on two
    cores, more with many large findings); once it returns True the findings
    not yet visited are left as they are and the caller, which asks too, stops.
    """
    sp = tuple(float(s) for s in spacing)
    grown: list[int] = []
    margin = [int(np.ceil(20.0 / s)) for s in sp]
    boxes = list(ndi.find_objects(labels) if boxes is None else boxes)
    added = np.zeros(labels.shape, bool)  # voxels this step gave a finding (pages touched only where it did)
    for i, box in enumerate(list(boxes), start=1):
        if box is None:
            continue
        if cancel is not None and cancel():
            break
        n_native = int((labels[box] == i).sum())
        d_mm = (6.0 * n_native * float(np.prod(sp)) / np.pi) ** (1 / 3)
        if d_mm > HALO_MAX_MM:
            continue
        lo = [max(0, b.start - m) for b, m in zip(box, margin)]
        hi = [min(n, b.stop + m) for b, n, m in zip(box, labels.shape, margin)]
        csl = tuple(slice(a, b) for a, b in zip(lo, hi))
        wshape = tuple(max(1, int(round((b - a) * s / WORK_MM))) for a, b, s in zip(lo, hi, sp))
        w = _resample(hu[csl].astype(np.float32), sp, wshape, WORK_MM, nearest=False)  # type: ignore[arg-type]
        reg = _resample((lung[csl] > 0).astype(np.uint8), sp, wshape, WORK_MM, nearest=True) > 0  # type: ignore[arg-type]
        given = np.where(added[csl], 0, labels[csl]).astype(np.uint16)  # the findings as given
        lab = _resample(given, sp, wshape, WORK_MM, nearest=True)  # type: ignore[arg-type]
        seg = lab == i
        v = int(seg.sum())
        if v < 8:
            continue
        others = (lab > 0) & ~seg
        r_vox = (3.0 * v / (4.0 * np.pi)) ** (1 / 3)
        c = np.argwhere(seg).mean(0)
        zz, yy, xx = np.ogrid[: w.shape[0], : w.shape[1], : w.shape[2]]
        d2 = (zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2
        d_out = _edt(~seg)
        bg = _lung_level(w[reg & ~others & (d_out > r_vox + 6.0 / WORK_MM)])
        ring = (d_out > HALO_RING_VOX[0]) & (d_out <= HALO_RING_VOX[1]) & reg & (d2 <= (r_vox + HALO_NEAR_MM / WORK_MM) ** 2)
        if ring.sum() <= 10:
            continue
        ring_hu = float(np.percentile(w[ring], HALO_PERCENTILE))
        if ring_hu - bg <= HALO_MIN_CONTRAST_HU or ring_hu >= GGN_BAND_MAX_HU:
            continue
        thr = bg + 0.5 * (ring_hu - bg)
        if float((w[ring] > thr).mean()) < HALO_MIN_SHARE:
            continue
        allowed = (d2 <= (2.0 * r_vox + 4.0 / WORK_MM) ** 2) & reg & ~others
        g = _grow(w, allowed | seg, thr, tuple(int(round(x)) for x in c), seg)
        if g is None:
            continue
        g = ndi.binary_fill_holes(g | seg)
        op, n_op = _cut_tubes(g)
        if n_op == 0:
            continue
        hold = np.bincount(op[seg], minlength=n_op + 1)
        hold[0] = 0
        g = (op == int(hold.argmax())) | seg
        if g.sum() < 1.3 * v:
            continue
        r = _native_mask(hu, sp, csl, g, tuple(slice(0, s) for s in g.shape), thr)
        if r is None:
            continue
        m, nsl = r
        view = labels[nsl]
        add = m & (view == 0) & (lung[nsl] > 0)
        if add.any():
            view[add] = i
            added[nsl] |= add
            grown.append(i)
            boxes[i - 1] = tuple(slice(min(a.start, b.start), max(a.stop, b.stop)) for a, b in zip(box, nsl))
    return grown, boxes
