"""Training samples for the nodule classifier: every candidate of a synthetic patient.

Usage::

    .venv/bin/python -m inference.models.fpr_data --seeds START STOP [--n-nodules 6 | --masses] [--kinds K ...] [--jobs 2] [--out .cache/fpr]

(the seed ranges of the shipped model are in configs/nodules.yaml)

Each patient is drawn by :func:`inference.synth.phantom.make_phantom` the way the
evaluation draws its held-out patients (384² matrix, 0.75-1.0 mm pixels -- less
where the phantom clips the field of view --, 1.25-5 mm slices, the phantom's own
kernel and dose), its lungs are segmented by the
product's :func:`inference.pipeline.lungs.segment_lungs`, and the product's
candidate stage runs with no score cut. A candidate is a nodule (label 1) when
its centre of mass lies inside a true nodule's mask or within that nodule's
radius (at least 3 mm) of its centre -- the same rule as
:mod:`inference.models.nodule_eval`. One ``.npz`` per patient holds the patches
(uint8, 0-255 over [-1000, 400] HU; the mask channel 0/255), features, labels,
and, per true nodule, whether any candidate found it (the recall ceiling of the
candidate stage).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi

__all__ = ["draw_patient", "hit_distance", "match_candidates", "build_patient", "main"]

REPO = Path(__file__).resolve().parents[2]


def draw_patient(seed: int, *, n_nodules: int | None = 4, masses: bool = False, kinds: list[str] | None = None) -> Any:
    """The synthetic patient of ``seed`` (evaluation-style acquisition drawn from the seed).

    ``masses`` draws two large nodules (20-60 mm) instead: the real tumour
    class, which the default 3-30 mm size range rarely reaches. ``kinds``
    restricts the nodule kinds (``inference.synth.nodules.NODULE_KINDS``):
    the kinds the classifier misses most are over-sampled this way.
    """
    from inference.synth.phantom import make_phantom

    r = np.random.default_rng(seed)
    kw: dict[str, Any] = {"n_nodules": 2, "nodule_size_mm": (20.0, 60.0)} if masses else {"n_nodules": n_nodules}
    if kinds:
        kw["nodule_types"] = list(kinds)
    return make_phantom(seed, shape=(384, 384), pixel_mm=float(r.uniform(0.75, 1.0)),
                        slice_mm=float(r.choice([1.25, 2.0, 2.5, 3.0, 5.0])), **kw)


def hit_distance(centre_zyx: np.ndarray, truth_mask: np.ndarray, truth_centre_zyx: np.ndarray, diameter_mm: float,
                 spacing: tuple[float, float, float]) -> float | None:
    """Distance (mm) between a finding's and a true nodule's centres when the finding *is* that nodule, else None.

    The one hit rule of every nodule evaluation here (classifier labels, held-out
    sensitivity, the candidate benchmark): the finding's centre lies in the
    nodule's mask, or within the nodule's radius -- at least 3 mm -- of its centre.
    """
    c = np.asarray(centre_zyx, float)
    ci = tuple(int(v) for v in np.clip(np.round(c), 0, np.array(truth_mask.shape) - 1))
    d = float(np.linalg.norm((c - truth_centre_zyx) * np.asarray(spacing, float)))
    return d if truth_mask[ci] or d <= max(diameter_mm / 2, 3.0) else None


def match_candidates(centres: np.ndarray, truth: np.ndarray, spacing: tuple[float, float, float],
                     diameters: dict[int, float]) -> tuple[np.ndarray, dict[int, bool]]:
    """Per candidate the matched true id (0 = none); per true id whether it was found."""
    ids = [int(i) for i in np.unique(truth) if i > 0]
    tc = {i: np.array(ndi.center_of_mass(truth == i)) for i in ids}
    masks = {i: truth == i for i in ids}
    match = np.zeros(len(centres), int)
    for j, c in enumerate(centres):
        best = None
        for i in ids:
            d = hit_distance(c, masks[i], tc[i], diameters.get(i, 0.0), spacing)
            if d is not None and (best is None or d < best[0]):
                best = (d, i)
        match[j] = best[1] if best else 0
    return match, {i: bool((match == i).any()) for i in ids}


def build_patient(seed: int, out_dir: Path, n_nodules: int | None = 4, masses: bool = False,
                  kinds: list[str] | None = None) -> dict[str, Any]:
    """Generate, detect, match and save one patient; returns a summary."""
    from inference.pipeline.candidates import detect_nodules_classical
    from inference.pipeline.detect import candidate_centres, candidate_features, candidate_patches
    from inference.pipeline.lungs import segment_lungs

    t = time.perf_counter()
    ph = draw_patient(seed, n_nodules=n_nodules, masses=masses, kinds=kinds)
    vol = ph.to_volume()
    lungs = segment_lungs(vol)
    cand = detect_nodules_classical(vol, lungs, masses=True, min_probability=0.0)
    n = len(cand.probabilities)
    centres = candidate_centres(cand.labels, n)
    diam = {r.id: r.mean_diameter_mm for r in ph.records}
    match, found = match_candidates(centres, np.asarray(ph.nodules), vol.spacing, diam)
    patches = candidate_patches(np.asarray(vol.array), cand.labels, vol.spacing, centres)
    feats = candidate_features(cand.features)
    truth = [{"id": r.id, "subtype": r.subtype, "diameter_mm": r.mean_diameter_mm, "found": found.get(r.id, False)}
             for r in ph.records]
    np.savez_compressed(
        out_dir / f"fpr_{seed}.npz",
        patches=np.round(patches * 255).astype(np.uint8),
        features=feats,
        label=(match > 0).astype(np.uint8),
        match=match.astype(np.int16),
        truth=json.dumps(truth),
        spacing=np.asarray(vol.spacing, float),
    )
    return {"seed": seed, "candidates": n, "positives": int((match > 0).sum()), "truth": len(truth),
            "found": sum(t["found"] for t in truth), "missed": [t for t in truth if not t["found"]],
            "seconds": round(time.perf_counter() - t, 1)}


def _one(args: tuple[int, str, int | None, bool, list[str] | None]) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    seed, out, k, masses, kinds = args
    return build_patient(seed, Path(out), k, masses, kinds)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; see module docstring."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs=2, required=True, metavar=("START", "STOP"))
    ap.add_argument("--out", type=Path, default=REPO / ".cache" / "fpr")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--n-nodules", type=int, default=4)
    ap.add_argument("--masses", action="store_true", help="two 20-60 mm nodules per patient")
    ap.add_argument("--kinds", nargs="+", default=None, help="nodule kinds to draw from (default: all)")
    a = ap.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    todo = [(s, str(a.out), a.n_nodules, a.masses, a.kinds) for s in range(*a.seeds) if not (a.out / f"fpr_{s}.npz").is_file()]
    with ProcessPoolExecutor(max_workers=a.jobs) as ex:
        for r in ex.map(_one, todo):
            print(json.dumps(r), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
