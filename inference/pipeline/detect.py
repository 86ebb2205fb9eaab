"""Nodule detection = classical candidates + learned false-positive reduction.

Why two stages (the LUNA16 recipe): on a chest CT almost every voxel is not a
nodule, and the hard negatives -- vessel crossings, bronchial walls, pleural
bumps -- are few hundred *places*, not millions of voxels. The training-free
candidate stage (:mod:`inference.pipeline.candidates`: Hessian blob seeds,
mass seeds, per-seed half-contrast segmentation with vessel cutting) finds
those places with high recall and segments each one on the CT's own grid; a
small 3-D CNN (a MONAI ``ResNet`` on three 32³ channels, plus the
candidate's shape features) then decides which of them are nodules. Training
the classifier needs tens of thousands of 32³ patches rather than whole
volumes, which is what makes it trainable on two CPU cores
(:mod:`inference.models.fpr_train`).

The patch channels, all centred on the candidate's centre of mass:

0. HU at 1.25 mm isotropic (40 mm field): the nodule and its margin;
1. HU at 2.5 mm isotropic (80 mm field): context -- pleura, hilum, vessels;
2. the candidate's own mask at 1.25 mm: *which* object is being classified
   (two blobs may share a patch).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from scipy import ndimage as ndi

from inference.errors import CancelledError
from inference.types import Progress, Volume

__all__ = [
    "PATCH",
    "PATCH_MM",
    "FEATURES",
    "Detection",
    "candidate_centres",
    "candidate_patches",
    "candidate_features",
    "calibrate",
    "classify",
    "detect_nodules",
    "add_dense_findings",
    "mass_rule",
    "MASS_RULE",
    "ENCLOSED_MERGE",
]

#: patch edge (voxels) and the voxel size (mm) of each HU channel
PATCH = 32
PATCH_MM = (1.25, 2.5)
#: candidate shape features fed to the classifier, with the scale each is divided by
FEATURES: dict[str, float] = {
    "diameter_mm": 20.0,
    "elongation": 1.0,
    "flatness": 1.0,
    "touch": 1.0,
    "tube_cut": 1.0,
    "contrast_hu": 1000.0,
    "core_hu": 1000.0,
    "threshold_hu": 1000.0,
    "air_ring": 1.0,
    "ratio": 1.0,
    "blob_hu": 400.0,
    "mass": 1.0,
    "opening": 1.0,
    "probability": 1.0,
}

ProgressFn = Callable[[Progress], None]
CancelFn = Callable[[], bool]


@dataclass
class Detection:
    """Kept nodules of one CT (same shape as the segmentation-network output).

    ``labels`` are ids ``1..n`` on the CT grid, largest first;
    ``probabilities[i-1]`` is the classifier's calibrated probability that id
    ``i`` is a nodule -- for a ``"dense network"`` finding, that network's
    highest voxel probability in it, uncalibrated; ``detected_by[i-1]`` says
    what reported it (``"classifier"``: probability at or above the operating
    point; ``"mass rule"``: :func:`mass_rule`; ``"dense network"``:
    :func:`add_dense_findings`); ``candidates`` is how many places were scored.
    """

    labels: np.ndarray
    probabilities: list[float]
    detected_by: list[str] = field(default_factory=list)
    candidates: int = 0
    device: str = "cpu"
    warnings: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    trace: DetectionTrace | None = None


@dataclass
class DetectionTrace:
    """What the detector saw before it chose what to report (``detect_nodules(..., trace=True)``).

    Why: a missed nodule is missed for a reason -- no candidate, a candidate
    the classifier scored under the operating point, a second-reader mark the
    report policy left out, or a finding that swallowed it -- and each reason
    needs different work. The evaluation (:mod:`inference.models.nodule_eval`)
    names it per miss from this; the product never shows it. Label maps are
    on the CT grid: ``candidate_labels`` as the candidate stage segmented them
    (before halos and vessel cuts), ``dense_labels`` the second reader's
    components at or above its ``min_probability`` (None when no reader ran),
    ``dense_probability_map`` its probabilities (float16) on ``dense_crop``.
    """

    candidate_labels: np.ndarray
    candidate_probabilities: np.ndarray
    operating_point: float
    dense_labels: np.ndarray | None = None
    dense_probabilities: list[float] = field(default_factory=list)
    dense_probability_map: np.ndarray | None = None
    dense_crop: tuple[slice, ...] | None = None
    dense_max_mean_hu: float | None = None


#: a mass-path candidate is reported whatever the classifier says when it is large enough to fill the
#: classifier's 40 mm fine patch (equivalent-sphere diameter), compact (PCA elongation: 1 round, 0 a
#: tube) and mostly surrounded by aerated lung (fraction of a 1-4 mm ring around it); see :func:`mass_rule`
MASS_RULE: dict[str, float] = {"min_diameter_mm": 40.0, "min_elongation": 0.5, "min_air_ring": 0.5}

#: a kept finding is reported as part of another when at least ``min_share`` of its voxels lie in the
#: other's holes, slice by slice: the solid core of a part-solid nodule that the candidate stage segmented
#: apart from the ground glass around it (:func:`_merge_enclosed`)
ENCLOSED_MERGE: dict[str, float] = {"min_share": 0.5}


def mass_rule(features: list[dict[str, float]]) -> np.ndarray:
    """Which candidates are reported as masses regardless of the classifier (bool per candidate).

    Why a rule: the classifier sees a candidate through 40-80 mm patches and
    was trained on synthetic masses drawn in their lung part only, so a real
    tumour that fills the patch scores low (real CT A0001: its 65-70 mm mass
    candidate 0.05 on the lung kernel, 0.12 on the soft kernel, operating
    point 0.10), while every mass-path candidate this large, this round and
    this much surrounded by lung was a true nodule in the synthetic patients
    measured (36 validation, 36 held-out, 6 held-out with two 50-74 mm
    masses each: the rule added no false finding; benchmarks/RESULTS.md).
    Hilar vessel bundles are elongated (< 0.5) or smaller (a 30 mm, 0.53
    elongated, 0.74 air-ringed bundle on the nodule-free test phantom, which
    a 30 mm floor reported), and the mediastinum or heart reached through the
    envelope has little air around it (0.25-0.47 there).
    """
    r = MASS_RULE
    return np.array([f.get("mass", 0.0) > 0 and f.get("diameter_mm", 0.0) >= r["min_diameter_mm"]
                     and f.get("elongation", 0.0) >= r["min_elongation"] and f.get("air_ring", 0.0) >= r["min_air_ring"]
                     for f in features], bool).reshape(len(features))


def candidate_centres(labels: np.ndarray, n: int) -> np.ndarray:
    """``(n, 3)`` centre of mass (voxel z, y, x) of ids ``1..n`` in ``labels``."""
    if n == 0:
        return np.zeros((0, 3))
    # over the labelled voxels only (a few thousand), not n passes over the grid
    flat = np.flatnonzero(labels)
    lab = labels.ravel()[flat].astype(np.intp)
    count = np.bincount(lab, minlength=n + 1)[1:n + 1].astype(float)
    out = np.full((n, 3), np.nan)
    ok = count > 0
    for k, coord in enumerate(np.unravel_index(flat, labels.shape)):
        out[ok, k] = np.bincount(lab, weights=coord, minlength=n + 1)[1:n + 1][ok] / count[ok]
    return out


def _axis_weights(x: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(len(x), n)`` linear-interpolation weights of the positions ``x`` on an axis of ``n`` samples, and which lie on it.

    The weights ``scipy.ndimage.map_coordinates(order=1, mode="constant")`` applies along one axis;
    a position off ``[0, n - 1]`` takes the constant instead (the second array is False there).
    """
    w = np.zeros((len(x), n))
    ok = (x >= 0) & (x <= n - 1)
    i0 = np.clip(np.floor(x).astype(np.intp), 0, n - 1)
    r = np.arange(len(x))
    f = x - i0
    w[r[ok], i0[ok]] += 1.0 - f[ok]
    nxt = ok & (i0 + 1 < n)
    w[r[nxt], i0[nxt] + 1] += f[nxt]
    return w, ok


def candidate_patches(hu: np.ndarray, labels: np.ndarray, spacing: tuple[float, float, float], centres: np.ndarray) -> np.ndarray:
    """``(n, 3, PATCH, PATCH, PATCH)`` float32 patches (see module docstring).

    HU channels are clipped to [-1000, 400] and scaled to [0, 1] (the same
    normalisation as the model metadata records); outside the CT is air.

    Why separable: a patch samples a regular grid, so trilinear interpolation
    is three small matrix products (one per axis) on the CT box that holds it,
    instead of ``map_coordinates`` gathering eight neighbours for each of the
    32³ points -- the same float32 values (a test compares them), 0.45 -> 0.23 s
    for the real CT's 169 candidates and 0.57 -> 0.43 s for a synthetic CT's
    204 on two cores (one thread; the old sampler used two). The mask channel
    takes the nearest voxel, as ``map_coordinates(order=0)`` did.
    """
    n = len(centres)
    out = np.zeros((n, 3, PATCH, PATCH, PATCH), np.float32)
    if n == 0:
        return out
    sp = np.asarray(spacing, float)
    g = np.arange(PATCH) - (PATCH - 1) / 2.0
    for i, c in enumerate(centres):
        for ch, mm in enumerate(PATCH_MM):
            ax = [c[k] + g * mm / sp[k] for k in range(3)]
            # the smallest CT box holding the patch; beyond the CT is air
            lo = [max(0, int(np.floor(a[0]))) for a in ax]
            hi = [min(hu.shape[k], int(np.ceil(ax[k][-1])) + 2) for k in range(3)]
            if any(h <= l for l, h in zip(lo, hi)):
                continue
            rel = [a - l for a, l in zip(ax, lo)]
            (wz, okz), (wy, oky), (wx, okx) = (_axis_weights(a, h - l) for a, l, h in zip(rel, lo, hi))
            box = hu[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
            nz, ny, nx = box.shape
            v = box.reshape(nz * ny, nx).astype(np.float64) @ wx.T  # (z*y, X)
            v = v.reshape(nz, ny, PATCH).transpose(0, 2, 1).reshape(nz * PATCH, ny) @ wy.T  # (z*X, Y)
            v = (wz @ v.reshape(nz, PATCH * PATCH)).reshape(PATCH, PATCH, PATCH).transpose(0, 2, 1)  # (Z, Y, X)
            inside = okz[:, None, None] & oky[None, :, None] & okx[None, None, :]
            v = np.where(inside, v, -1000.0).astype(np.float32)
            out[i, ch] = (np.clip(v, -1000.0, 400.0) + 1000.0) / 1400.0
            if ch == 0:
                near = [np.clip(np.floor(a + 0.5).astype(np.intp), 0, h - l - 1) for a, l, h in zip(rel, lo, hi)]
                out[i, 2] = (labels[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]][np.ix_(*near)] == i + 1) & inside
    return out


def candidate_features(features: list[dict[str, float]]) -> np.ndarray:
    """``(n, len(FEATURES))`` float32, each feature divided by its scale."""
    rows = [[float(f.get(k, 0.0)) / s for k, s in FEATURES.items()] for f in features]
    return np.asarray(rows, np.float32).reshape(len(features), len(FEATURES))


def calibrate(logits: np.ndarray, temperature: float = 1.0, bias: float = 0.0) -> np.ndarray:
    """``sigmoid(logit / temperature + bias)``: the classifier's calibrated probability.

    The one place the calibration formula lives -- the product (:func:`classify`),
    the training's validation and the held-out evaluation all call it.
    """
    z = np.asarray(logits, np.float64) / float(temperature) + float(bias)
    return (1.0 / (1.0 + np.exp(-np.clip(z, -50.0, 50.0)))).astype(np.float32)


def classify(net: Any, patches: np.ndarray, feats: np.ndarray, *, device: Any, temperature: float = 1.0,
             bias: float = 0.0, batch: int = 64, cancel: CancelFn | None = None) -> np.ndarray:
    """Calibrated nodule probability per candidate: ``sigmoid(logit / temperature + bias)``.

    Temperature and bias are fitted on validation candidates (the network is
    trained on balanced batches, so its raw logit over-states how often a
    candidate is a nodule).
    """
    import torch

    from inference.models.device import autocast

    if len(patches) == 0:
        return np.zeros(0, np.float32)
    out = []
    net.eval()
    dev = torch.device(device)
    # mixed precision on CUDA; fp32 on the CPU, where the classifier is the smaller stage
    amp = autocast(dev)
    with torch.inference_mode(), amp:
        for a in range(0, len(patches), batch):
            if cancel is not None and cancel():
                raise CancelledError()
            x = torch.from_numpy(patches[a:a + batch]).to(dev)
            f = torch.from_numpy(feats[a:a + batch]).to(dev)
            out.append(net(x, f).float().reshape(-1).cpu().numpy())
    return calibrate(np.concatenate(out), temperature, bias)


def _cut_vessel_stubs(hu: np.ndarray, spacing: tuple[float, float, float], kept_map: np.ndarray, kept: list[int],
                      boxes: list[Any], lung_labels: np.ndarray | None = None) -> None:
    """Cut attached vessel stubs off the kept findings that measure solid, *in* ``kept_map``
    (:func:`inference.pipeline.measure.cut_attached_vessels`).

    Here, before the ids are ordered by volume, so that the reported mask, its
    volume and its axes are of the same voxels. Only solid findings: a
    ground-glass or part-solid finding's halo is not a vessel, and its solid
    component is measured without its vessels already. Nor masses
    (:data:`~inference.pipeline.measure.VESSEL_CUT_MAX_MM` and more across): no
    category depends on a stub there, and the cut and the type on the real
    CT's tumour took 0.2 s (0.06 and 0.14 s, one cProfile). Box by box.
    """
    from inference.pipeline.measure import (VESSEL_CUT_MAX_MM, cut_attached_vessels, equivalent_diameter_mm,
                                            measurement_crop, nodule_type)

    for i in kept:
        if boxes[i] is None:
            continue
        box = measurement_crop(boxes[i], spacing, kept_map.shape)
        m = kept_map[box] == i + 1
        if equivalent_diameter_mm(int(m.sum()), spacing) >= VESSEL_CUT_MAX_MM:
            continue
        outside = None if lung_labels is None else lung_labels[box] == 0
        keep = cut_attached_vessels(m, spacing, outside)
        # typed only when something would be cut (the type takes 10-140 ms a finding; most lose nothing)
        if keep is not m and nodule_type(m, hu[box], spacing, outside)[0] == "solid":
            kept_map[box][m & ~keep] = 0


def _merge_enclosed(kept_map: np.ndarray, kept: list[int], boxes: list[Any], sizes: dict[int, int],
                    probs: dict[int, float], source: dict[int, str]) -> list[int]:
    """Merge, *in* ``kept_map``, each kept finding that lies in another's holes into that one; returns the kept left.

    Why: the candidate stage segments a part-solid nodule's solid core and the
    ground glass around it from separate seeds, and when the classifier keeps
    both, one nodule was reported two or three times -- a 7.6 mm "solid"
    nodule inside a 24.5 mm ground-glass ring (held-out patient 9002, read as
    Lung-RADS 3 instead of 4A, and the ring counted as a false positive).
    A finding at least :data:`ENCLOSED_MERGE` ``min_share`` inside another's
    holes (filled slice by slice: the core is surrounded in the axial plane
    even where a 5 mm slice caps it) is that nodule; the union is measured and
    typed afresh, and keeps the higher probability and what reported it.
    Findings that merely touch (a vessel beside a nodule) stay apart. Larger
    findings absorb first; box by box, as the rest of the detector.
    ``boxes``, ``sizes`` (voxels per finding), ``probs`` and ``source`` are
    updated for the findings that absorb others.
    """
    in_plane = np.zeros((3, 3, 3), bool)
    in_plane[1] = ndi.generate_binary_structure(2, 1)
    live = set(kept)
    for i in sorted(kept, key=lambda k: -sizes[k]):
        if i not in live or boxes[i] is None:
            continue
        sub = kept_map[boxes[i]]
        m = sub == i + 1
        holes = ndi.binary_fill_holes(m, in_plane) & ~m
        if not holes.any():
            continue
        ids, counts = np.unique(sub[holes], return_counts=True)
        for j1, c in zip(ids.tolist(), counts.tolist()):
            j = j1 - 1
            if j1 == 0 or j not in live or j == i or c < ENCLOSED_MERGE["min_share"] * sizes[j]:
                continue
            part = kept_map[boxes[j]]
            part[part == j1] = i + 1
            boxes[i] = tuple(slice(min(a.start, b.start), max(a.stop, b.stop)) for a, b in zip(boxes[i], boxes[j]))
            if probs[j] > probs[i]:
                probs[i], source[i] = probs[j], source[j]
            sizes[i] += sizes[j]
            live.discard(j)
    return [i for i in kept if i in live]


def detect_nodules(
    volume: Volume,
    lung_labels: np.ndarray,
    net: Any,
    info: Any,
    *,
    device: Any,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    dense: tuple[Any, Any] | None = None,
    trace: bool = False,
) -> Detection:
    """Candidates → patches → classifier → kept nodules on the CT grid, their halos grown.

    ``dense`` -- ``(net, info)`` of a dense segmentation network
    (``configs/nodules_dense.yaml``), or None -- adds its components that no
    kept finding touches, each with the network's own mask and probability
    (``detected_by`` ``"dense network"``): the second reader for the nodules
    whose classical segmentation is too poor for the classifier (ground
    glass beside a vessel, :func:`add_dense_findings`).

    The halo growth (:func:`inference.pipeline.candidates.grow_halos`) runs on
    the kept nodules only: it may change a finding's mask, never which
    findings are reported.

    ``info.metadata["postprocess"]["min_probability"]`` is the operating point
    chosen on validation patients (see the model's metadata); the candidate
    stage runs with no score cut so the classifier sees every candidate.
    ``trace`` keeps what was seen before the choice (:class:`DetectionTrace`,
    for the evaluation; two more label maps held).
    """
    from inference.models.device import run_with_oom_fallback
    from inference.pipeline.candidates import detect_nodules_classical, grow_halos, renumber

    t0 = time.perf_counter()
    post = dict(info.metadata.get("postprocess", {}))
    thr = float(post.get("min_probability", 0.5))
    cal = dict(info.metadata.get("calibration", {}))

    def rep(f: float, msg: str) -> None:
        if progress is not None:
            progress(Progress(f, msg))

    cand = detect_nodules_classical(
        volume, lung_labels, masses=True, min_probability=0.0,
        progress=lambda f, m: rep(0.8 * f, m), cancel=cancel,
    )
    if cancel is not None and cancel():
        raise CancelledError()
    t1 = time.perf_counter()
    n = len(cand.probabilities)
    rep(0.8, f"scoring {n} candidates")
    centres = candidate_centres(cand.labels, n)
    patches = candidate_patches(np.asarray(volume.array), cand.labels, volume.spacing, centres)
    feats = candidate_features(cand.features)
    warnings = list(cand.warnings)

    def run(dev: Any, batch: int) -> np.ndarray:
        return classify(net.to(dev), patches, feats, device=dev, temperature=float(cal.get("temperature", 1.0)),
                        bias=float(cal.get("bias", 0.0)), batch=batch, cancel=cancel)

    p, dev = run_with_oom_fallback(run, device, 64, warnings, "candidate")
    t2 = time.perf_counter()
    by_rule = mass_rule(cand.features) & (p < thr)
    kept = [i for i in range(n) if p[i] >= thr or by_rule[i]]
    # only the kept candidates, their halos grown (grow_halos: what is reported stays, its size may not).
    # Box by box, never a pass over the whole grid per step: the whole-grid lookups and bincount this
    # replaced took 5.5-7 s on a 300-slice CT (benchmarks/bench_large_ct.py, RESULTS.md).
    boxes: list[Any] = list(ndi.find_objects(cand.labels, max_label=n))
    kept_map = np.zeros(cand.labels.shape, np.uint16)
    for i in kept:
        if boxes[i] is not None:
            kept_map[boxes[i]][cand.labels[boxes[i]] == i + 1] = i + 1
    kept_set = set(kept)
    _, boxes = grow_halos(np.asarray(volume.array), lung_labels, volume.spacing, kept_map,
                          [b if i in kept_set else None for i, b in enumerate(boxes)], cancel)
    if cancel is not None and cancel():
        raise CancelledError()
    _cut_vessel_stubs(np.asarray(volume.array), volume.spacing, kept_map, kept, boxes, np.asarray(lung_labels))
    t3 = time.perf_counter()
    probs = {i: float(p[i]) for i in kept}
    source = {i: "mass rule" if by_rule[i] else "classifier" for i in kept}
    seconds = {"candidates": round(t1 - t0, 3), "classifier": round(t2 - t1, 3), "halos": round(t3 - t2, 3)}
    seen = DetectionTrace(cand.labels, np.asarray(p, np.float64), thr) if trace else None
    if dense is not None:
        rep(0.9, "dense nodule network")
        added = add_dense_findings(volume, lung_labels, kept_map, boxes, dense, first_id=n + 1, device=device,
                                   warnings=warnings, cancel=cancel,
                                   free=lung_surrounded_rule(info.metadata), trace=seen)
        for i, prob in added.items():
            kept.append(i)
            probs[i] = prob
            source[i] = "dense network"
        seconds["dense"] = round(time.perf_counter() - t3, 3)
    sizes = {i: int((kept_map[boxes[i]] == i + 1).sum()) if boxes[i] is not None else 0 for i in kept}
    kept = _merge_enclosed(kept_map, kept, boxes, sizes, probs, source)
    # ids 1..n by volume, largest first (the contract)
    keep = sorted(kept, key=lambda i: -sizes[i])
    labels = renumber(kept_map, [(boxes[i], i + 1) for i in keep])
    rep(1.0, f"{len(keep)} nodule(s) kept of {n} candidates")
    return Detection(
        labels=labels,
        probabilities=[round(probs[i], 3) for i in keep],
        detected_by=[source[i] for i in keep],
        candidates=n,
        device=str(getattr(dev, "type", dev)),
        warnings=warnings,
        seconds=seconds,
        trace=seen,
    )


def lung_surrounded_rule(metadata: dict[str, Any]) -> dict[str, float] | None:
    """The nodule model's ``second_reader.lung_surrounded`` thresholds (:func:`lung_surrounded`), or None.

    One reader for the detector, which applies them, and the findings' model
    block, which records them.
    """
    rule = (metadata.get("second_reader") or {}).get("lung_surrounded")
    return {k: float(v) for k, v in rule.items() if isinstance(v, (int, float))} if rule else None


def lung_surrounded(labels: np.ndarray, label: int, box: tuple[slice, ...], hu: np.ndarray,
                    spacing: tuple[float, float, float], rule: dict[str, float]) -> bool:
    """Whether a dense second-reader component of ``labels`` (id ``label``, box ``box``) lies free in aerated lung.

    Why: the second reader's components denser than ground glass are not
    reported (the reader's ``postprocess.max_mean_hu``): most are hilar
    vessels and mediastinal structures (on cavitary tuning draw 8100-8123,
    20 of them on 14 of 24 CTs, 5-17 mm at p >= 0.997), with little lung
    around them (the aerated share of the ring just outside them
    at most 0.6 for those of 7 mm or more, on 107 validation and tuning
    patients). A nodule the classifier rejects because its candidate merged
    with its neighbours (a 27 mm spiculated one; cavitary ones cut to a piece
    of their wall) is marked by the reader on its own and has lung around
    it. Reported when at least ``rule["min_ring_air"]`` of the voxels up to
    ``rule["ring_mm"]`` outside it are below -500 HU and its equivalent
    diameter is at least ``rule["min_diameter_mm"]``. ``rule``: the nodule
    model's ``second_reader.lung_surrounded``; measured in benchmarks/RESULTS.md.
    """
    from inference.pipeline.measure import equivalent_diameter_mm

    sp = tuple(float(s) for s in spacing)
    if equivalent_diameter_mm(int(np.count_nonzero(labels[box] == label)), sp) < float(rule["min_diameter_mm"]):  # type: ignore[arg-type]
        return False
    share = ring_air_share(labels, label, box, hu, sp, float(rule["ring_mm"]))
    return share is not None and share >= float(rule["min_ring_air"])


def ring_air_share(labels: np.ndarray, label: int, box: tuple[slice, ...], hu: np.ndarray,
                   spacing: tuple[float, float, float], ring_mm: float) -> float | None:
    """Share of the voxels up to ``ring_mm`` outside component ``label`` that are aerated lung (below -500 HU).

    None when the ring is empty (the component fills its grid). What
    :func:`lung_surrounded` tests, and what the evaluation reports for a
    second-reader mark left unreported.
    """
    sp = tuple(float(s) for s in spacing)
    grow = [int(np.ceil(2.0 * ring_mm / s)) for s in sp]
    big = tuple(slice(max(0, b.start - g), min(n, b.stop + g)) for b, g, n in zip(box, grow, labels.shape))
    out = ndi.distance_transform_edt(labels[big] != label, sampling=sp)
    ring = (out > 0) & (out <= ring_mm)
    return float((hu[big][ring] < -500.0).mean()) if ring.any() else None


def add_dense_findings(volume: Volume, lung_labels: np.ndarray, kept_map: np.ndarray, boxes: list[Any],
                       dense: tuple[Any, Any], *, first_id: int, device: Any, warnings: list[str],
                       cancel: CancelFn | None = None, free: dict[str, float] | None = None,
                       trace: DetectionTrace | None = None) -> dict[int, float]:
    """Write the dense network's new findings into ``kept_map`` (ids from ``first_id``); returns ``{index: probability}``.

    A component is new when none of its voxels is already a kept finding: the
    classifier's findings keep their own masks and probabilities (they were
    measured against the validation patients), and the network only adds
    what the two-stage detector did not report. Components denser than the
    reader's ``postprocess.max_mean_hu`` are left to the classifier unless
    ``free`` (the nodule model's ``second_reader.lung_surrounded``) is given
    and they lie free in aerated lung (:func:`lung_surrounded`). ``boxes``
    gets each new finding's bounding box at index ``id - 1``. ``trace`` gets
    the reader's components and probability map.
    """
    from inference.pipeline.nodules import segment_nodules

    dnet, dinfo = dense
    max_hu = dinfo.metadata.get("postprocess", {}).get("max_mean_hu")
    seg = segment_nodules(volume, lung_labels, dnet, dinfo, device=device, cancel=cancel,
                          keep_probability_map=trace is not None)
    warnings.extend(seg.warnings)
    if trace is not None:
        trace.dense_labels, trace.dense_probabilities = seg.labels, list(seg.probabilities)
        trace.dense_probability_map, trace.dense_crop = seg.probability_map, seg.crop
        trace.dense_max_mean_hu = float(max_hu) if max_hu is not None else None
    out: dict[int, float] = {}
    m = len(seg.probabilities)
    hu = np.asarray(volume.array)
    for j, box in enumerate(ndi.find_objects(seg.labels, max_label=m)):
        if box is None:
            continue
        comp = seg.labels[box] == j + 1
        if (kept_map[box][comp] > 0).any():
            continue
        if max_hu is not None and float(hu[box][comp].mean()) > float(max_hu):
            # solid: the classifier's to report (the reader's postprocess.max_mean_hu), unless free in the lung
            if not (free and lung_surrounded(seg.labels, j + 1, box, hu, volume.spacing, free)):
                continue
        i = first_id - 1 + len(out)
        kept_map[box][comp] = i + 1
        while len(boxes) <= i:
            boxes.append(None)
        boxes[i] = box
        out[i] = float(seg.probabilities[j])
    return out
