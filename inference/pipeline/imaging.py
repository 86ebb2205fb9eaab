"""The imaging half of the analysis: lungs, nodules, measurements.

``run_imaging`` is what both ``clinview analyze`` and the viewer's worker
call; it returns plain data (dicts in the findings-contract shape and label
maps on the CT's own grid) so it can be written to findings.json or shown
without further conversion.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from inference.errors import CancelledError
from inference.pipeline.lungs import LUNGS_VERSION, aerated_lungs, emphysema_laa950, lung_volumes_ml, segment_lungs
from inference.pipeline.measure import measure_nodule, measurement_crop
from inference.types import Progress, Volume

if TYPE_CHECKING:  # run_imaging imports the detector where it runs it; here the type only
    from inference.pipeline.detect import DetectionTrace

__all__ = ["ImagingResult", "run_imaging", "nodule_findings", "clear_model_cache", "preload_model", "second_reader_name"]

ProgressFn = Callable[[Progress], None]
CancelFn = Callable[[], bool]


@dataclass
class ImagingResult:
    """Everything the imaging pipeline found on one CT.

    ``lungs`` and ``nodules`` have the findings-contract shape; ``nodules``
    are ordered by volume (id 1 = largest), each with ``review: "pending"``.
    Label maps are ``(z, y, x)`` on the CT's own grid.
    """

    lungs: dict[str, Any]
    nodules: list[dict[str, Any]]
    nodule_labels: np.ndarray
    lung_labels: np.ndarray
    model: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    #: what the detector saw before it chose (``run_imaging(..., trace=True)``; the evaluation's, not a reader's)
    trace: DetectionTrace | None = None


@lru_cache(maxsize=4)
def _cached_model(name: str, device: str, root: str | None) -> tuple[Any, Any]:
    from inference.models.catalogue import load_model

    return load_model(name, device=device, root=Path(root) if root else None)


def clear_model_cache() -> None:
    """Forget loaded networks (tests that alter weights call this)."""
    _cached_model.cache_clear()


def preload_model(model_name: str = "nodules", device: str = "auto") -> str:
    """Load the network :func:`run_imaging` will use into its cache now; returns the device's name.

    Why: a fresh worker process spends seconds importing torch and MONAI and
    reading weights before it looks at the CT. A worker started ahead of the
    request (the viewer's spare, :mod:`inference.worker`) calls this while it
    waits, so that time is not the user's. Same cache key as
    :func:`run_imaging` (model, resolved device, default root): the request
    uses exactly this network -- and the second reader it names, which
    :func:`run_imaging` would otherwise load on the user's first request.
    """
    from inference.models.device import choose_device

    dev, _ = choose_device(device)
    _, info = _cached_model(model_name, str(dev), None)
    # every second reader: which one a CT needs is known only once it is read
    for name in second_reader_names(info.metadata):
        _load_second_reader(name, str(dev), None, [])
    return str(dev)


def second_reader_names(metadata: dict[str, Any]) -> list[str]:
    """Every dense network the nodule model may name as its second reader (:func:`second_reader_name`), thick-slice first."""
    sr = metadata.get("second_reader") or {}
    names = [sr.get("model"), (sr.get("thin_slices") or {}).get("model")]
    return [str(n) for n in names if n]


def second_reader_name(metadata: dict[str, Any], slice_mm: float) -> str | None:
    """The dense network the nodule model names as its second reader for a CT whose slices are ``slice_mm`` apart.

    ``metadata["second_reader"]["model"]``, or its ``thin_slices`` model when
    the slice spacing (the volume's z spacing, what the resampling to the
    network's grid interpolates across; not DICOM SliceThickness) is at most
    ``thin_slices.max_slice_mm``. Why two: the
    1.25 mm network sees 5-10 mm ground glass that the 2 mm one cannot, but
    on 5 mm slices it reads noise between the slices as ground glass
    (validation 5000-5035: 41 of its 44 false positives on the 4 patients
    with 5 mm slices) -- and Fleischner 2017 asks for thin sections to judge
    sub-solid nodules anyway.
    """
    sr = metadata.get("second_reader") or {}
    thin = sr.get("thin_slices") or {}
    if thin.get("model") and slice_mm <= float(thin.get("max_slice_mm", 0.0)):
        return str(thin["model"])
    return str(sr["model"]) if sr.get("model") else None


def _second_reader(info: Any, device: str, model_root: Path | None,
                   warnings: list[str], slice_mm: float) -> tuple[tuple[Any, Any] | None, dict[str, Any]]:
    """The dense network the nodule model names as its second reader for this CT (:func:`second_reader_name`).

    Returns ``((net, info) or None, {"dense_model": {name, version, sha256}})``.
    A second reader that cannot be loaded (weights missing or altered) is
    left out with a warning: the two-stage detector alone still reports, and
    the findings say which models ran.
    """
    name = second_reader_name(info.metadata, slice_mm)
    if not name:
        return None, {}
    return _load_second_reader(name, device, model_root, warnings)


def _load_second_reader(name: str, device: str, model_root: Path | None,
                        warnings: list[str]) -> tuple[tuple[Any, Any] | None, dict[str, Any]]:
    """:func:`_second_reader` for a named network: loaded through the model cache, or left out with a warning."""
    from inference.errors import ModelIntegrityError

    try:
        dnet, dinfo = _cached_model(str(name), device, str(model_root) if model_root else None)
    except (ModelIntegrityError, FileNotFoundError, OSError) as e:
        warnings.append(f"second reader {name!r} not used ({e}): nodules are from the classifier only")
        return None, {}
    return (dnet, dinfo), {"dense_model": {k: v for k, v in dinfo.as_findings(device).items() if k != "device"}}


def _z_up_sign(volume: Volume) -> float:
    dz = float(volume.voxel_to_lps([1, 0, 0])[2] - volume.voxel_to_lps([0, 0, 0])[2])
    return 1.0 if dz >= 0 else -1.0


def _y_back_sign(volume: Volume) -> float:
    dy = float(volume.voxel_to_lps([0, 1, 0])[1] - volume.voxel_to_lps([0, 0, 0])[1])
    return 1.0 if dy >= 0 else -1.0


def nodule_findings(
    volume: Volume,
    labels: np.ndarray,
    probabilities: list[float],
    lung_labels: np.ndarray,
    detected_by: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Per-nodule contract dicts from a label map (ids 1..n) on ``volume``'s grid.

    ``detected_by[i-1]``: what reported id ``i`` (``"classifier"``,
    ``"mass rule"`` -- :func:`inference.pipeline.detect.mass_rule` -- or
    ``"dense network"``, the second reader); the ``probability`` is the
    reporting model's own number (the classifier's for the first two), so a
    number never claims more than the model said.
    """
    out: list[dict[str, Any]] = []
    from scipy import ndimage as ndi

    from inference.pipeline.measure import SPICULATION_SOURCE, lung_extents, side_and_lobe

    objs = ndi.find_objects(labels)
    zsign = _z_up_sign(volume)
    ysign = _y_back_sign(volume)
    extents = lung_extents(lung_labels)  # once: per finding it was a pass over the whole grid
    for i, sl in enumerate(objs, start=1):
        if sl is None:
            continue
        # measure on a padded crop: fast, and the shell for 'juxtapleural' fits
        crop = measurement_crop(sl, volume.spacing, labels.shape)
        lo = [c.start for c in crop]
        m = labels[crop] == i
        meas = measure_nodule(m, volume.array[crop], volume.spacing, lung_labels=lung_labels[crop], z_up_sign=zsign)
        # side/lobe need the whole lung's extent, not the crop's
        c_full = np.array(meas["center_voxel_zyx"]) + lo
        loc = side_and_lobe(c_full, m, lung_labels, zsign, y_back_sign=ysign, box=crop, extents=extents)
        (b0, b1) = meas["bbox_voxel_zyx"]
        nod = {
            "id": i,
            "center_lps_mm": [round(float(v), 2) for v in volume.voxel_to_lps(c_full)],
            "center_voxel_zyx": [round(float(v), 2) for v in c_full],
            "bbox_voxel_zyx": [[int(b + o) for b, o in zip(b0, lo)], [int(b + o) for b, o in zip(b1, lo)]],
            "volume_mm3": meas["volume_mm3"],
            "long_axis_mm": meas["long_axis_mm"],
            "short_axis_mm": meas["short_axis_mm"],
            "mean_diameter_mm": meas["mean_diameter_mm"],
            "type": meas["type"],
            "solid_component_mm": meas["solid_component_mm"],
            "mean_hu": meas["mean_hu"],
            "spiculated": meas["spiculated"],
            "spiculated_source": SPICULATION_SOURCE,
            "juxtapleural": meas["juxtapleural"],
            "location": {"side": loc["side"], "lobe": loc["lobe"], "upper_lobe": loc["upper_lobe"],
                         "lobe_estimated": True},
            "probability": float(probabilities[i - 1]) if i - 1 < len(probabilities) else None,
            "detected_by": detected_by[i - 1] if detected_by and i - 1 < len(detected_by) else "classifier",
            "review": "pending",
            "brock_probability": None,
            "lung_rads": None,
            "growth": None,
        }
        out.append(nod)
    return out


def run_imaging(
    volume: Volume,
    *,
    device: str = "auto",
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    model_name: str = "nodules",
    model_root: Path | None = None,
    trace: bool = False,
) -> ImagingResult:
    """Segment lungs and nodules on a CT and measure every nodule.

    Parameters
    ----------
    volume
        CT in HU with its geometry.
    device
        ``"auto"``, ``"cpu"`` or ``"cuda"``; a missing CUDA falls back to the
        CPU with a warning.
    progress
        Called with fractions 0..1 and stage messages.
    cancel
        Polled between stages and between window batches.
    model_name, model_root
        Which catalogued network to use (tests may point at a retrained one).
    trace
        Keep the candidates, the classifier's scores and the second reader's
        output in ``ImagingResult.trace``
        (:class:`inference.pipeline.detect.DetectionTrace`): the evaluation
        names from it why each missed nodule was missed. Findings are the same.

    Raises
    ------
    CancelledError
        The user cancelled.
    ModelIntegrityError
        The network's weights are missing or fail their checksum.
    """
    from inference.models.device import choose_device

    t_start = time.perf_counter()
    warnings: list[str] = []

    def report(f: float, msg: str) -> None:
        if progress is not None:
            progress(Progress(max(0.0, min(1.0, f)), msg))

    def check() -> None:
        if cancel is not None and cancel():
            raise CancelledError()

    report(0.0, "segmenting lungs")
    check()
    t = time.perf_counter()
    lung_labels = segment_lungs(volume)
    t_lungs = time.perf_counter() - t
    if not lung_labels.any():
        warnings.append("no lungs found on this CT (is it a chest CT?)")
    check()
    report(0.15, "loading the nodule model")
    dev, note = choose_device(device)
    if note and device != "auto":
        warnings.append(note)
    t = time.perf_counter()
    net, info = _cached_model(model_name, str(dev), str(model_root) if model_root else None)
    t_load = time.perf_counter() - t
    check()
    report(0.2, "detecting nodules")

    def sub(p: Progress) -> None:
        report(0.2 + 0.7 * p.fraction, p.message)

    t = time.perf_counter()
    if info.metadata.get("pipeline") == "candidates+classifier":
        from inference.pipeline.candidates import CANDIDATES_VERSION, HALO_GROWTH
        from inference.pipeline.detect import ENCLOSED_MERGE, MASS_RULE, detect_nodules, lung_surrounded_rule

        dense, dense_source = _second_reader(info, str(dev), model_root, warnings, float(volume.spacing[0]))
        free = lung_surrounded_rule(info.metadata)
        if dense is not None and free:  # when the reader's solid marks are reported too (detect.lung_surrounded)
            dense_source["dense_model"]["lung_surrounded"] = free
        seg = detect_nodules(volume, lung_labels, net, info, device=dev, progress=sub, cancel=cancel, dense=dense,
                             trace=trace)
        stage_seconds = dict(seg.seconds)
        # the classifier rescored these candidates; a finding may come from the mass rule or the dense network instead
        from inference.pipeline.measure import VESSEL_CUT

        stage_source = {"candidates": {"version": CANDIDATES_VERSION, "mass_rule": dict(MASS_RULE),
                                       "halo_growth": dict(HALO_GROWTH), "vessel_cut": dict(VESSEL_CUT),
                                       "enclosed_merge": dict(ENCLOSED_MERGE)}, **dense_source}
    else:  # a dense segmentation network (configs/nodules_unet.yaml)
        from inference.pipeline.nodules import segment_nodules

        seg = segment_nodules(volume, lung_labels, net, info, device=dev, progress=sub, cancel=cancel)
        stage_seconds = {}
        stage_source = {}
    t_nod = time.perf_counter() - t
    warnings.extend(seg.warnings)
    check()
    report(0.92, "measuring nodules")
    nodules = nodule_findings(volume, seg.labels, seg.probabilities, lung_labels, getattr(seg, "detected_by", None))
    # What is reported is the aerated lung and what it encloses, not the search map's closing (hilum,
    # strips of mediastinum and chest wall); the nodules were searched and measured on the search map.
    lung_labels = aerated_lungs(volume.array, lung_labels)
    # A nodule belongs to its lung: fill its voxels into the lung map when the
    # aerated lung leaves them out (a juxtapleural nodule, a mass against the mediastinum).
    for n in nodules:
        side = {"right": 1, "left": 2}.get(n["location"]["side"] or "")
        if side:
            (z0, y0, x0), (z1, y1, x1) = n["bbox_voxel_zyx"]
            box = (slice(z0, z1 + 1), slice(y0, y1 + 1), slice(x0, x1 + 1))
            view = lung_labels[box]
            view[(seg.labels[box] == n["id"]) & (view == 0)] = side
    right, left = lung_volumes_ml(lung_labels, volume.spacing)
    lungs = {
        "right_ml": round(right, 1),
        "left_ml": round(left, 1),
        "emphysema_laa950_percent": round(emphysema_laa950(volume.array, lung_labels), 2),
    }
    total = time.perf_counter() - t_start
    model = {
        **info.as_findings(seg.device),
        "lungs_model": {"name": "lungs", "version": LUNGS_VERSION, "method": "classical threshold + components"},
        **stage_source,
        "seconds": {"load": round(t_load, 3), "lungs": round(t_lungs, 3), "nodules": round(t_nod, 3), **stage_seconds,
                    "total": round(total, 3)},
    }
    report(1.0, f"{len(nodules)} nodule(s) found")
    return ImagingResult(lungs, nodules, seg.labels, lung_labels, model, warnings, getattr(seg, "trace", None))
