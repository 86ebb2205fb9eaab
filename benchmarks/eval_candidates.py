"""Evaluate the training-free nodule detector (inference.pipeline.candidates).

Usage::

    .venv/bin/python -m benchmarks.eval_candidates [--seeds 7000 7012] [--real DIR] [--png /tmp]

Synthetic: held-out phantoms (``make_phantom(seed, n_nodules=4)``, realistic
vessel density, 512² matrix, slice thickness cycling 1.0/1.25/2.0/2.5 mm);
the lung mask comes from :func:`inference.pipeline.lungs.segment_lungs` as in
the product. A detection hits a true nodule when its centre lies inside the
true mask or within the true radius (≥ 3 mm) of the true centre. Per size bin
of the true mean diameter: sensitivity, Dice of the hit's mask, absolute error
of the mean diameter measured by
:func:`inference.pipeline.measure.axes_on_largest_slice` (the product's
measurement) against the truth record. Unmatched detections are false
positives.

Real CT (Lung-PET-CT-Dx A0001, both kernels): the annotated tumour is found
when a detection's centre lies inside an annotated Pascal-VOC box (files named
by SOPInstanceUID, slice from that file's ImagePositionPatient) within ±1
slice; other detections are false positives; both kernels are compared.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi

__all__ = ["evaluate_synthetic", "evaluate_real", "main", "SIZE_BINS"]

SIZE_BINS = [(0.0, 5.0), (5.0, 10.0), (10.0, 20.0), (20.0, 1e9)]
SLICES_MM = (1.0, 1.25, 2.0, 2.5)
REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "lung-pet-ct-dx" / "A0001"


def evaluate_synthetic(seeds: list[int], *, png_dir: Path | None = None, log: Any = print, masses: bool = True) -> dict[str, Any]:
    """Per-size-bin sensitivity, FP/scan, Dice and diameter error (module docstring)."""
    from inference.models.fpr_data import hit_distance
    from inference.pipeline.candidates import detect_nodules_classical
    from inference.pipeline.detect import candidate_centres
    from inference.pipeline.lungs import segment_lungs
    from inference.pipeline.measure import axes_on_largest_slice
    from inference.synth.phantom import make_phantom

    rows: list[dict[str, Any]] = []
    fps: list[int] = []
    secs: list[float] = []
    for i, seed in enumerate(seeds):
        slice_mm = SLICES_MM[i % len(SLICES_MM)]
        ph = make_phantom(seed, slice_mm=slice_mm, n_nodules=4)
        vol = ph.to_volume()
        lab = segment_lungs(vol)
        res = detect_nodules_classical(vol, lab, masses=masses)
        secs.append(res.seconds)
        sp = vol.spacing
        cents = candidate_centres(res.labels, len(res.probabilities))
        used: set[int] = set()
        for rec in ph.records:
            tm = ph.nodules == rec.id
            tc = np.array(ndi.center_of_mass(tm))
            best = None
            for j, c in enumerate(cents, 1):
                dist = hit_distance(c, tm, tc, rec.mean_diameter_mm, sp)
                if dist is not None and (best is None or dist < best[0]):
                    best = (dist, j)
            row: dict[str, Any] = {"seed": seed, "slice_mm": slice_mm, "id": rec.id, "type": rec.subtype,
                                   "diameter_mm": rec.mean_diameter_mm, "found": best is not None}
            if best is not None:
                j = best[1]
                used.add(j)
                m = res.labels == j
                row["dice"] = round(float(2 * (m & tm).sum() / (m.sum() + tm.sum())), 3)
                la, sa, _ = axes_on_largest_slice(m, sp)
                row["diameter_error_mm"] = round((la + sa) / 2 - rec.mean_diameter_mm, 2)
                row["probability"] = res.probabilities[j - 1]
            rows.append(row)
        fp = [j for j in range(1, len(cents) + 1) if j not in used]
        fps.append(len(fp))
        log(json.dumps({"seed": seed, "slice_mm": slice_mm, "truth": [(r.subtype, r.mean_diameter_mm) for r in ph.records],
                        "found": sum(r["found"] for r in rows if r["seed"] == seed), "fp": len(fp),
                        "fp_prob": [res.probabilities[j - 1] for j in fp], "seconds": round(res.seconds, 1)}))
        if png_dir is not None and i < 3:
            _png(vol.array, res.labels, ph.nodules, [r.center_voxel_zyx[0] for r in ph.records], png_dir / f"cand_synth_{seed}.png")
    bins = []
    for lo, hi in SIZE_BINS:
        rs = [r for r in rows if lo <= r["diameter_mm"] < hi]
        f = [r for r in rs if r["found"]]
        bins.append({"bin_mm": f"{lo:g}-{hi:g}" if hi < 1e8 else f">={lo:g}", "n": len(rs),
                     "sensitivity": round(len(f) / len(rs), 3) if rs else None,
                     "median_dice": round(float(np.median([r["dice"] for r in f])), 3) if f else None,
                     "median_abs_diam_err_mm": round(float(np.median([abs(r["diameter_error_mm"]) for r in f])), 2) if f else None})
    ge5 = [r for r in rows if r["diameter_mm"] >= 5]
    ge6f = [r for r in rows if r["diameter_mm"] >= 6 and r["found"]]
    return {
        "patients": len(seeds), "nodules": len(rows), "seeds": seeds,
        "fp_per_scan": round(float(np.mean(fps)), 2) if fps else None,
        "sensitivity_ge5mm": round(sum(r["found"] for r in ge5) / len(ge5), 3) if ge5 else None,
        "median_dice_ge6mm": round(float(np.median([r["dice"] for r in ge6f])), 3) if ge6f else None,
        "median_abs_diam_err_ge5mm": round(float(np.median([abs(r["diameter_error_mm"]) for r in ge5 if r["found"]])), 2)
        if any(r["found"] for r in ge5) else None,
        "seconds_median": round(float(np.median(secs)), 2) if secs else None,
        "bins": bins, "missed": [r for r in rows if not r["found"]],
    }


def evaluate_real(study: Path, *, png_dir: Path | None = None, log: Any = print, masses: bool = True) -> dict[str, Any]:
    """Tumour found, FPs and kernel agreement on the real CT (module docstring)."""
    from inference.api import load_series
    from inference.models.nodule_eval import read_voc_boxes
    from inference.pipeline.candidates import detect_nodules_classical
    from inference.pipeline.detect import candidate_centres
    from inference.pipeline.lungs import segment_lungs

    out: dict[str, Any] = {}
    lps: dict[str, list[np.ndarray]] = {}
    for sub in ("ct-lung-kernel", "ct-soft-kernel"):
        d = study / sub
        vol = load_series(d)
        boxes = read_voc_boxes(study / "annotations", sorted(p for p in d.iterdir() if p.is_file()), vol)
        lab = segment_lungs(vol)
        res = detect_nodules_classical(vol, lab, masses=masses)
        cents = candidate_centres(res.labels, len(res.probabilities))
        hits = [any(abs(c[0] - k) <= 1 and y0 <= c[1] <= y1 and x0 <= c[2] <= x1 for k, y0, x0, y1, x1 in boxes) for c in cents]
        lps[sub] = [np.asarray(vol.voxel_to_lps(c)) for c in cents]
        out[sub] = {"boxes": len(boxes), "tumour_found": any(hits), "false_positives": int(sum(not h for h in hits)),
                    "detections": [{"center_zyx": [round(float(v), 1) for v in c], "probability": p, "in_box": h,
                                    "voxels": int((res.labels == j).sum())}
                                   for j, (c, p, h) in enumerate(zip(cents, res.probabilities, hits), 1)],
                    "seconds": round(res.seconds, 2)}
        log(json.dumps({sub: out[sub]}))
        if png_dir is not None and boxes:
            _png(vol.array, res.labels, None, [int(np.median([b[0] for b in boxes]))], png_dir / f"cand_real_{sub}.png", boxes)
    a, b = lps["ct-lung-kernel"], lps["ct-soft-kernel"]
    same = sum(any(np.linalg.norm(p - q) < 10 for q in b) for p in a)
    out["kernels_agree"] = bool(same == len(a) == len(b))
    out["matched_across_kernels"] = f"{same}/{len(a)} lung-kernel detections within 10 mm of a soft-kernel one ({len(b)})"
    return out


def _png(hu: np.ndarray, labels: np.ndarray, truth: np.ndarray | None, zs: list[int], path: Path,
         boxes: list[tuple[int, int, int, int, int]] | None = None) -> None:
    """Slices with detections (red) and truth (green outline) for a visual check."""
    try:
        from PIL import Image
    except ImportError:  # pillow is optional here
        return
    tiles = []
    for z in zs[:4]:
        g = np.clip((hu[z].astype(float) + 1000) / 1400, 0, 1)
        rgb = np.stack([g, g, g], -1)
        m = labels[z] > 0
        rgb[m] = 0.5 * rgb[m] + 0.5 * np.array([1.0, 0, 0])
        if truth is not None:
            t = truth[z] > 0
            edge = t & ~ndi.binary_erosion(t)
            rgb[edge] = [0, 1, 0]
        for k, y0, x0, y1, x1 in boxes or []:
            if k == z:
                rgb[y0:y1 + 1, [x0, x1]] = [0, 1, 0]
                rgb[[y0, y1], x0:x1 + 1] = [0, 1, 0]
        tiles.append((rgb * 255).astype(np.uint8))
    Image.fromarray(np.concatenate(tiles, 1)).save(path)


def main(argv: list[str] | None = None) -> int:
    """Run both evaluations and print a table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", nargs=2, type=int, default=[7000, 7012], help="half-open seed range")
    ap.add_argument("--real", type=Path, default=REAL)
    ap.add_argument("--png", type=Path, default=None, help="folder for PNGs of detections")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--no-masses", action="store_true", help="detector without the mass path")
    a = ap.parse_args(argv)
    t = time.perf_counter()
    syn = evaluate_synthetic(list(range(*a.seeds)), png_dir=a.png, masses=not a.no_masses)
    real = evaluate_real(a.real, png_dir=a.png, masses=not a.no_masses) if (a.real / "ct-lung-kernel").is_dir() else None
    print(f"\nclassical candidates (mass path {'off' if a.no_masses else 'on'}), {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {time.perf_counter() - t:.0f} s")
    print(f"synthetic: {syn['patients']} patients, {syn['nodules']} nodules, FP/scan {syn['fp_per_scan']}, "
          f"sens>=5mm {syn['sensitivity_ge5mm']}, median Dice>=6mm {syn['median_dice_ge6mm']}, "
          f"median |diam err|>=5mm {syn['median_abs_diam_err_ge5mm']} mm, median {syn['seconds_median']} s/scan")
    print(f"{'bin mm':>8} {'n':>4} {'sens':>6} {'Dice':>6} {'|err| mm':>9}")
    for b in syn["bins"]:
        print(f"{b['bin_mm']:>8} {b['n']:>4} {b['sensitivity']!s:>6} {b['median_dice']!s:>6} {b['median_abs_diam_err_mm']!s:>9}")
    print("missed:", [(m["seed"], m["type"], m["diameter_mm"]) for m in syn["missed"]])
    if real:
        for k in ("ct-lung-kernel", "ct-soft-kernel"):
            r = real[k]
            print(f"real {k}: tumour found {r['tumour_found']}, FPs {r['false_positives']}, {r['seconds']} s")
        print("kernels:", real["matched_across_kernels"])
    if a.json:
        a.json.write_text(json.dumps({"synthetic": syn, "real": real}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
