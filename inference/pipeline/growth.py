"""Growth against a prior CT: register, match nodules, measure change and VDT.

Steps, and why each is done this way:

1. **Rigid registration prior -> current** (SimpleITK ``Euler3DTransform``,
   Mattes mutual information). Between two CTs of the same patient the
   chest moves as a near-rigid body at the scale that matters for matching
   (a few mm and a few degrees); rigid keeps nodule size untouched, which an
   affine or deformable transform would partly absorb into the transform.
   Images are clipped to a lung window (-1000..200 HU, so contrast and bone do
   not dominate the metric), resampled to >= 2 mm voxels and registered in a
   two-level pyramid; that is cheap on a CPU and robust to noise. If the
   optimiser fails, we fall back to the scanners' world coordinates
   (identity) and say so.
2. **Prior nodule centres mapped into the current scan** with the inverse
   of the fitted transform (ITK's transform maps fixed=current points to
   moving=prior points).
3. **Matching**: Hungarian assignment (``scipy.optimize.linear_sum_assignment``)
   on centre distance, with a gate (default 15 mm, or the sum of both
   nodules' radii when larger) beyond which a pair is not the same nodule.
4. **Change**: volumes from ``volume_mm3`` (or voxel counts of the label
   maps), mean diameters from the findings; VDT by
   :func:`inference.clinical.vdt.volume_doubling_time`, reported only when the
   volume grew by >= 25 % (``None`` otherwise, with a ``vdt_note``).
   ``status``: ``grown`` when the mean diameter rose by > 1.5 mm (Lung-RADS
   v2022) *or* the volume by >= 25 % (NELSON/BTS; small nodules' diameters
   can miss a doubling that the volume shows, and the error towards an
   earlier follow-up is the safer one); ``shrunk`` for the same decreases;
   else ``stable``; the criterion used is written in ``growth_criterion``;
   unmatched current nodules are ``new``; unmatched prior nodules go to
   ``findings["resolved_nodules"]`` with status ``resolved`` -- or
   ``not-confirmed`` when a blob of dense tissue the size of the prior nodule
   remains at its registered place (:func:`_dense_blob_mm3`): a nodule the
   detector missed on the current CT must not be reported as gone.

Registration parameters and residual are written to ``findings["prior"]`` so
the reader can check them.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Any

import numpy as np

from inference.clinical.vdt import VDT_SOURCE, vdt_band, volume_doubling_time
from inference.types import Volume

__all__ = [
    "GROWTH_SOURCE",
    "GROWTH_DIAMETER_MM",
    "VDT_MIN_VOLUME_CHANGE",
    "volume_to_sitk",
    "register_rigid",
    "match_nodules",
    "compare_with_prior",
]

GROWTH_SOURCE = (
    "growth: rigid SimpleITK registration + Hungarian matching; status by Lung-RADS v2022 "
    "(> 1.5 mm mean-diameter change); " + VDT_SOURCE
)
GROWTH_DIAMETER_MM = 1.5
#: Below this relative volume increase a VDT is not reported: segmentation
#: repeatability is of this order, and a 2 % change would print a "VDT" of
#: decades. 25 % is the NELSON/BTS significant-growth criterion (UNVERIFIED in
#: clinical-facts.md §5: one secondary source).
VDT_MIN_VOLUME_CHANGE = 0.25


def volume_to_sitk(vol: Volume, array: np.ndarray | None = None) -> Any:
    """A SimpleITK image with the volume's geometry (array (z, y, x) -> ITK (x, y, z))."""
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.ascontiguousarray(vol.array if array is None else array))
    sz, sy, sx = vol.spacing
    img.SetSpacing((float(sx), float(sy), float(sz)))
    img.SetOrigin(tuple(float(o) for o in vol.origin))
    img.SetDirection(tuple(float(v) for v in np.asarray(vol.direction, float).reshape(-1)))
    return img


def _block_mean(arr: np.ndarray, f: tuple[int, int, int]) -> np.ndarray:
    """Mean over ``f``-sized blocks of a float32 array whose shape ``f`` divides.

    The same values as ``arr.reshape(...).mean(axis=(1, 3, 5))``, 3× faster:
    the blocks' strided views are added one by one (a numpy reduction over
    interleaved axes is slow), then divided as ``mean`` divides. Bit for bit
    the same for clipped integer HU, whose sums are exact in float32.
    """
    acc = np.zeros(tuple(n // k for n, k in zip(arr.shape, f)), np.float32)
    for i in range(f[0]):
        for j in range(f[1]):
            for k in range(f[2]):
                acc += arr[i :: f[0], j :: f[1], k :: f[2]]
    np.true_divide(acc, np.intp(f[0] * f[1] * f[2]), out=acc, casting="unsafe")
    return acc


def _prepare(vol: Volume, min_spacing_mm: float) -> Any:
    import SimpleITK as sitk

    src = np.asarray(vol.array)
    # clipped where the CT is stored (int16: half the memory traffic), then float: the same values
    arr = (np.clip(src, -1000, 200) if np.issubdtype(src.dtype, np.integer) else np.clip(src, -1000.0, 200.0)).astype(np.float32)
    # Block-average by integer factors first: cheap anti-aliasing, and the
    # Gaussian/resample below then work on a few million voxels instead of ~50 M.
    sp_zyx = np.asarray(vol.spacing, float)
    f = np.maximum(1, np.floor(min_spacing_mm / sp_zyx).astype(int))
    if (f > 1).any():
        n = (np.asarray(arr.shape) // f) * f
        arr = _block_mean(arr[: n[0], : n[1], : n[2]], tuple(int(v) for v in f))
        shift_zyx = (f - 1) / 2.0  # new voxel 0 sits at the centre of the first block
        origin = vol.voxel_to_lps(shift_zyx)
        vol = Volume(
            array=arr.astype(np.float32),
            spacing=tuple(float(v) for v in sp_zyx * f),  # type: ignore[arg-type]
            origin=tuple(float(v) for v in origin),  # type: ignore[arg-type]
            direction=np.asarray(vol.direction, float),
        )
    img = volume_to_sitk(vol, np.asarray(vol.array, np.float32))
    sp = np.array(img.GetSpacing(), float)
    new_sp = np.maximum(sp, min_spacing_mm)
    if np.allclose(new_sp, sp):
        return img
    size = [max(1, int(round(n * s / t))) for n, s, t in zip(img.GetSize(), sp, new_sp)]
    smooth = sitk.SmoothingRecursiveGaussian(img, [float(max(0.0, (t - s) / 2.0)) + 1e-3 for s, t in zip(sp, new_sp)])
    return sitk.Resample(
        smooth, size, sitk.Transform(), sitk.sitkLinear, img.GetOrigin(), tuple(new_sp), img.GetDirection(), -1000.0
    )


def _best_start(fixed: Any, moving: Any, reg: Any) -> tuple[Any, str]:
    """Pick the starting pose with the best metric among three guesses.

    Scanner coordinates (identity) are right when both studies come from the
    same scanner and table set-up; aligning the image centres (geometry) when
    the coordinate origin moved; aligning the body's centres of mass (moments,
    air shifted to 0) when the field of view differs too. Trying all three is
    cheap and avoids a local optimum far from the truth.

    The guesses are compared on the images shrunk by 2 (block means): ``MetricEvaluate``
    uses every voxel, whatever the sampling set for the optimiser, and took
    0.9 s per guess at 2 mm on the demo's CTs; the optimiser's own first level
    sees the images shrunk by 2 as well.
    """
    import SimpleITK as sitk

    fixed_s, moving_s = sitk.BinShrink(fixed, [2, 2, 2]), sitk.BinShrink(moving, [2, 2, 2])

    centre = fixed.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2.0 for n in fixed.GetSize()])
    ident = sitk.Euler3DTransform()
    ident.SetCenter(centre)
    cands = [(ident, "identity (scanner coordinates)")]
    cands.append((sitk.CenteredTransformInitializer(
        fixed, moving, sitk.Euler3DTransform(), sitk.CenteredTransformInitializerFilter.GEOMETRY), "image centres"))
    try:
        cands.append((sitk.CenteredTransformInitializer(
            sitk.ShiftScale(fixed, 1000.0), sitk.ShiftScale(moving, 1000.0), sitk.Euler3DTransform(),
            sitk.CenteredTransformInitializerFilter.MOMENTS), "centres of mass"))
    except RuntimeError:  # e.g. an all-air image: no centre of mass
        pass
    best, best_v = cands[0], float("inf")
    for tx, name in cands:
        reg.SetInitialTransform(tx, inPlace=False)
        try:
            v = float(reg.MetricEvaluate(fixed_s, moving_s))
        except RuntimeError:  # too little overlap for this guess
            continue
        if v < best_v:
            best, best_v = (tx, name), v
    return best


def register_rigid(
    current: Volume, prior: Volume, *, min_spacing_mm: float = 2.0, seed: int = 7
) -> tuple[Any, dict[str, Any]]:
    """Fit a rigid transform mapping **current** physical points to **prior** points.

    Returns
    -------
    (transform, info)
        ``transform`` is a ``SimpleITK.Euler3DTransform`` (fixed = current,
        moving = prior); ``info`` holds the angles (degrees), translation (mm),
        final metric value and the optimiser's stop condition.

    Raises
    ------
    RuntimeError
        SimpleITK failed (the caller falls back to identity and warns).
    """
    import SimpleITK as sitk

    fixed = _prepare(current, min_spacing_mm)
    moving = _prepare(prior, min_spacing_mm)
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=48)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    # ~60k random samples per level whatever the scan size: enough for a
    # 6-parameter fit, and keeps a 512x512x300 CT to seconds on two cores.
    n_vox = float(np.prod(fixed.GetSize()))
    reg.SetMetricSamplingPercentage(float(min(0.3, max(0.005, 6.0e4 / n_vox))), seed)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(
        learningRate=2.0, minStep=1e-3, numberOfIterations=200, relaxationFactor=0.6, gradientMagnitudeTolerance=1e-6
    )
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel([2, 1])
    reg.SetSmoothingSigmasPerLevel([1.0, 0.0])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    init, init_name = _best_start(fixed, moving, reg)
    reg.SetInitialTransform(init, inPlace=False)
    try:
        out = reg.Execute(fixed, moving)
    except RuntimeError as exc:  # SimpleITK raises RuntimeError for ITK exceptions
        raise RuntimeError(f"registration failed: {exc}".splitlines()[0]) from exc
    # Execute returns a CompositeTransform wrapping the Euler3D; unwrap for a stable API.
    comp = sitk.CompositeTransform(out)
    euler = sitk.Euler3DTransform(comp.GetNthTransform(comp.GetNumberOfTransforms() - 1))
    p = euler.GetParameters()
    info = {
        "transform": "Euler3D (rigid), fixed=current, moving=prior",
        "metric": "Mattes mutual information, lung window -1000..200 HU",
        "rotation_deg": [round(math.degrees(a), 3) for a in p[:3]],
        "translation_mm": [round(t, 3) for t in p[3:]],
        "center_lps_mm": [round(c, 3) for c in euler.GetCenter()],
        "initialisation": init_name,
        "final_metric": round(float(reg.GetMetricValue()), 5),
        "stop": reg.GetOptimizerStopConditionDescription().splitlines()[0][:200],
    }
    return euler, info


def match_nodules(
    current_xyz: np.ndarray,
    prior_xyz: np.ndarray,
    *,
    gate_mm: float | np.ndarray = 15.0,
) -> list[tuple[int, int, float]]:
    """Hungarian matching of current to (mapped) prior centres, LPS mm.

    Parameters
    ----------
    current_xyz, prior_xyz : (N, 3) and (M, 3) arrays.
    gate_mm : scalar, or an (N, M) array of per-pair gates.

    Returns
    -------
    list of (current_index, prior_index, distance_mm) for pairs within the gate.
    """
    from scipy.optimize import linear_sum_assignment

    c = np.asarray(current_xyz, float).reshape(-1, 3)
    p = np.asarray(prior_xyz, float).reshape(-1, 3)
    if len(c) == 0 or len(p) == 0:
        return []
    dist = np.linalg.norm(c[:, None, :] - p[None, :, :], axis=-1)
    gate = np.broadcast_to(np.asarray(gate_mm, float), dist.shape)
    cost = np.where(dist <= gate, dist, 1e6)
    rows, cols = linear_sum_assignment(cost)
    return [(int(r), int(q), float(dist[r, q])) for r, q in zip(rows, cols) if dist[r, q] <= gate[r, q]]


def _as_date(d: Any) -> date | None:
    if d is None or d == "":
        return None
    if isinstance(d, datetime):
        return d.date()
    if isinstance(d, date):
        return d
    try:
        return date.fromisoformat(str(d)[:10])
    except ValueError:
        return None


def _centre(n: dict[str, Any], vol: Volume, labels: np.ndarray | None) -> np.ndarray | None:
    if n.get("center_lps_mm") is not None:
        return np.asarray(n["center_lps_mm"], float)
    if labels is not None and n.get("id") is not None:
        idx = np.argwhere(labels == int(n["id"]))
        if len(idx):
            return vol.voxel_to_lps(idx.mean(axis=0))
    if n.get("center_voxel_zyx") is not None:
        return vol.voxel_to_lps(n["center_voxel_zyx"])
    return None


def _volume_mm3(n: dict[str, Any], vol: Volume, labels: np.ndarray | None) -> float | None:
    if n.get("volume_mm3"):
        return float(n["volume_mm3"])
    if labels is not None and n.get("id") is not None:
        k = int(np.count_nonzero(labels == int(n["id"])))
        if k:
            return k * vol.voxel_volume_mm3
    return None


def _mean_d(n: dict[str, Any], v: float | None) -> float | None:
    if n.get("mean_diameter_mm"):
        return float(n["mean_diameter_mm"])
    if n.get("long_axis_mm") and n.get("short_axis_mm"):
        return (float(n["long_axis_mm"]) + float(n["short_axis_mm"])) / 2.0
    if v:
        return (6.0 * v / math.pi) ** (1.0 / 3.0)  # equivalent-sphere diameter
    return None


#: a prior nodule with no current match is called "resolved" only when the
#: current CT at its registered place holds less dense tissue (> PERSIST_HU,
#: see :func:`_dense_blob_mm3`) than PERSIST_FRACTION of the prior nodule's volume
PERSIST_HU = -400.0
PERSIST_MARGIN_MM = 2.5
PERSIST_FRACTION = 0.5


def _dense_blob_mm3(volume: Volume, lps: np.ndarray, radius_mm: float, margin_mm: float = PERSIST_MARGIN_MM) -> float:
    """Volume (mm³) of dense tissue at a prior nodule's place on ``volume``.

    Why: the detector misses some nodules on one CT and finds them on the
    other; "resolved" must not be claimed for a nodule that is still there.
    Dense voxels within ``radius_mm + margin_mm`` (the margin absorbs
    registration error) are grouped into components. A component inside
    that sphere is a blob at the prior nodule's place and counts whole; one
    reaching the sphere's surface is a vessel, the pleura or a nodule
    attached to either, and counts only within ``radius_mm`` of the centre.
    """
    from scipy import ndimage as ndi

    outer = radius_mm + margin_mm
    c = volume.lps_to_voxel(lps)
    sp = np.asarray(volume.spacing, float)
    r = np.ceil(outer / sp).astype(int) + 1
    lo = np.maximum(np.floor(c).astype(int) - r, 0)
    hi = np.minimum(np.ceil(c).astype(int) + r + 1, volume.shape)
    if np.any(hi <= lo):
        return 0.0
    box = np.asarray(volume.array)[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    zz, yy, xx = np.meshgrid(*[(np.arange(a, b) - cc) * s for a, b, cc, s in zip(lo, hi, c, sp)], indexing="ij")
    d = np.sqrt(zz * zz + yy * yy + xx * xx)
    inside = d <= outer
    lab, n = ndi.label((box > PERSIST_HU) & inside)
    if n == 0:
        return 0.0
    shell = inside & (d > outer - float(sp.max()))
    through = np.zeros(n + 1, bool)
    through[np.unique(lab[shell & (lab > 0)])] = True
    through[0] = False
    counted = (lab > 0) & (~through[lab] | (d <= radius_mm))
    return float(counted.sum()) * volume.voxel_volume_mm3


def compare_with_prior(
    volume: Volume,
    nodule_labels: np.ndarray | None,
    findings: dict[str, Any],
    prior_volume: Volume,
    prior_labels: np.ndarray | None,
    prior_findings: dict[str, Any],
    *,
    current_date: Any,
    prior_date: Any,
    gate_mm: float = 15.0,
) -> list[str]:
    """Fill each current nodule's ``growth`` and ``findings["resolved_nodules"]``.

    Parameters
    ----------
    volume, nodule_labels, findings : the current CT, its (z, y, x) label map
        (voxel value = nodule id) and findings dict (edited in place).
    prior_volume, prior_labels, prior_findings : the same for the prior CT.
    current_date, prior_date : ``date``/``datetime`` or ISO strings; the interval
        in days drives VDT. Missing dates: change is reported without VDT.
    gate_mm : largest centre distance (after registration) for a match; the sum of
        the two nodules' radii is used when larger.

    Returns
    -------
    list[str]
        One-line warnings (registration fallback, missing dates or volumes).
    """
    warnings: list[str] = []
    d1, d2 = _as_date(prior_date), _as_date(current_date)
    days: int | None = None
    if d1 is None or d2 is None:
        warnings.append(
            f"Growth: study date missing (prior {prior_date!r}, current {current_date!r}): no VDT computed"
        )
    else:
        days = (d2 - d1).days
        if days <= 0:
            warnings.append(f"Growth: prior study date {d1} is not before the current {d2}: no VDT computed")
            days = None

    try:
        tx, info = register_rigid(volume, prior_volume)
        inv = tx.GetInverse()
        to_current = inv.TransformPoint
        rot = max(abs(a) for a in info["rotation_deg"])
        if rot > 15.0:  # large shifts are normal (table position, scanner origin); large tilts are not
            warnings.append(
                f"Growth: registration rotated the prior by {rot:.0f}° (implausible for two chest CTs "
                "of one patient): check the matches"
            )
    except RuntimeError as exc:
        warnings.append(f"Growth: {exc}; prior nodules compared in scanner coordinates (no registration)")
        info = {"transform": "identity (registration failed)"}

        def to_current(p: Any) -> Any:
            return p

    cur = [n for n in findings.get("nodules", []) or [] if n.get("review") != "rejected"]
    pri = [n for n in prior_findings.get("nodules", []) or [] if n.get("review") != "rejected"]
    cur_xyz, cur_ok = [], []
    for n in cur:
        c = _centre(n, volume, nodule_labels)
        if c is None:
            warnings.append(f"Growth: current nodule {n.get('id')} has no centre, not compared")
            continue
        cur_xyz.append(c)
        cur_ok.append(n)
    pri_raw, pri_xyz, pri_ok = [], [], []
    for n in pri:
        c = _centre(n, prior_volume, prior_labels)
        if c is None:
            warnings.append(f"Growth: prior nodule {n.get('id')} has no centre, not compared")
            continue
        pri_raw.append(c)
        pri_xyz.append(np.asarray(to_current(tuple(float(v) for v in c)), float))
        pri_ok.append(n)

    cur_v = [_volume_mm3(n, volume, nodule_labels) for n in cur_ok]
    pri_v = [_volume_mm3(n, prior_volume, prior_labels) for n in pri_ok]
    cur_d = [_mean_d(n, v) for n, v in zip(cur_ok, cur_v)]
    pri_d = [_mean_d(n, v) for n, v in zip(pri_ok, pri_v)]
    gates = np.full((len(cur_ok), len(pri_ok)), float(gate_mm))
    for i, a in enumerate(cur_d):
        for j, b in enumerate(pri_d):
            if a and b:
                gates[i, j] = max(gate_mm, (a + b) / 2.0)
    pairs = match_nodules(np.array(cur_xyz).reshape(-1, 3), np.array(pri_xyz).reshape(-1, 3), gate_mm=gates)
    matched_cur = {i: (j, dist) for i, j, dist in pairs}
    matched_pri = {j for _, j, _ in pairs}

    for i, n in enumerate(cur_ok):
        if i not in matched_cur:
            n["growth"] = {"prior_id": None, "status": "new", "days": days, "source": GROWTH_SOURCE}
            continue
        j, dist = matched_cur[i]
        p = pri_ok[j]
        v1, v2, dd1, dd2 = pri_v[j], cur_v[i], pri_d[j], cur_d[i]
        g: dict[str, Any] = {
            "prior_id": p.get("id"),
            "match_distance_mm": round(dist, 2),
            "prior_volume_mm3": None if v1 is None else round(v1, 1),
            "prior_mean_diameter_mm": None if dd1 is None else round(dd1, 1),
            "days": days,
            "volume_change_percent": None,
            "diameter_change_mm": None,
            "volume_doubling_time_days": None,
            "status": "stable",
            "source": GROWTH_SOURCE,
        }
        if v1 and v2:
            g["volume_change_percent"] = round(100.0 * (v2 - v1) / v1, 1)
            if days and v2 >= v1 * (1.0 + VDT_MIN_VOLUME_CHANGE):
                vdt = volume_doubling_time(v1, v2, days)
                g["volume_doubling_time_days"] = None if vdt is None else round(vdt, 1)
                g["vdt_interpretation"] = vdt_band(vdt, str(n.get("type") or "solid"))
            elif days and v2 > v1:
                g["vdt_note"] = (
                    f"volume change < {100 * VDT_MIN_VOLUME_CHANGE:.0f} % (within measurement variability): "
                    "no VDT reported"
                )
        else:
            warnings.append(f"Growth: nodule {n.get('id')}: volume missing, no volume change or VDT")
        change = None if dd1 is None or dd2 is None else dd2 - dd1
        if change is not None:
            g["diameter_change_mm"] = round(change, 2)
        vrel = None if not (v1 and v2) else (v2 - v1) / v1
        # Either criterion counts: diameters of small nodules move in 0.5 mm steps
        # and can miss a doubling that the voxel count shows; calling it growth
        # errs towards the earlier follow-up.
        if change is not None and change > GROWTH_DIAMETER_MM:
            g["status"] = "grown"
            g["growth_criterion"] = f"mean diameter +{change:.1f} mm > {GROWTH_DIAMETER_MM} mm (Lung-RADS v2022)"
        elif vrel is not None and vrel >= VDT_MIN_VOLUME_CHANGE:
            g["status"] = "grown"
            g["growth_criterion"] = (
                f"volume +{100 * vrel:.0f} % >= {100 * VDT_MIN_VOLUME_CHANGE:.0f} % (NELSON/BTS volumetric "
                "criterion, UNVERIFIED in the fact sheet)"
            )
        elif (change is not None and change < -GROWTH_DIAMETER_MM) or (vrel is not None and vrel <= -VDT_MIN_VOLUME_CHANGE):
            g["status"] = "shrunk"
        n["growth"] = g

    resolved = []
    for j, p in enumerate(pri_ok):
        if j in matched_pri:
            continue
        r: dict[str, Any] = {
            "prior_id": p.get("id"),
            "prior_center_lps_mm": [round(float(v), 2) for v in pri_raw[j]],
            "center_lps_mm_in_current": [round(float(v), 2) for v in pri_xyz[j]],
            "prior_volume_mm3": None if pri_v[j] is None else round(pri_v[j], 1),
            "prior_mean_diameter_mm": None if pri_d[j] is None else round(pri_d[j], 1),
            "prior_type": p.get("type"),
            "status": "resolved",
        }
        if pri_v[j] and pri_d[j]:
            blob = _dense_blob_mm3(volume, pri_xyz[j], pri_d[j] / 2.0)
            r["dense_tissue_at_prior_site_mm3"] = round(blob, 1)
            if blob >= PERSIST_FRACTION * pri_v[j]:
                r["status"] = "not-confirmed"
                r["note"] = (f"no current finding matches, but {blob:.0f} mm³ of dense tissue remains at its registered "
                             f"place (prior nodule {pri_v[j]:.0f} mm³): possibly missed by the detector on this CT -- check")
        resolved.append(r)
    findings["resolved_nodules"] = resolved
    findings["prior"] = {
        "study_date": None if d1 is None else d1.isoformat(),
        "days": days,
        "study_instance_uid": (prior_findings.get("study") or {}).get("study_instance_uid"),
        "registration": info,
        "matched": len(pairs),
        "new": len(cur_ok) - len(pairs),
        "resolved": sum(r["status"] == "resolved" for r in resolved),
        "not_confirmed": sum(r["status"] == "not-confirmed" for r in resolved),
    }
    return warnings
