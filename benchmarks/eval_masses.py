"""Masses on held-out synthetic patients and the real CT: mass convex-hull completion on and off, one run.

    .venv/bin/python -m benchmarks.eval_masses [--seeds 9100 9106] [--json OUT]

Each synthetic patient (``fpr_data.draw_patient(seed, masses=True,
kinds=["mass"])``: two 20-60 mm masses, free in the lung, against the costal
pleura or against the mediastinum) is drawn once and analysed twice by the
product's :func:`inference.pipeline.imaging.run_imaging`, with the mass hull
completion (``candidates._complete_by_hull``) on (0.5.0) and, for this
benchmark only, replaced by "add nothing" (candidates 0.4.0). Per
mass: found (a finding's centre inside it or within its radius), Dice of the
matched finding against the truth, and the mean-diameter error; per scan the
false findings. The real CT A0001 (both kernels) gives the tumour's
coverage of the annotated boxes' dense pixels (median over boxes, as
``tests/integration/test_real_ct_ai.py`` measures it) and its volume.

Note: a synthetic mass is drawn in its lung part only, so tissue the hull adds
beyond the pleura counts against it here, while on the real CT it is tumour.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared" / "data" / "lung-pet-ct-dx" / "A0001"


def _run(vol: Any, hull: bool) -> tuple[Any, float]:
    """``run_imaging`` with the mass hull completion on, or off (restored afterwards).

    Off = the completion replaced by one that adds nothing, in this process only: the product has
    no switch for it, and the comparison needs both in one run on the same drawn patients.
    """
    import inference.pipeline.candidates as cand
    from inference.pipeline.imaging import run_imaging

    def add_nothing(seg: np.ndarray, w: np.ndarray, reg: np.ndarray) -> np.ndarray:
        return seg

    before = cand._complete_by_hull
    if not hull:
        cand._complete_by_hull = add_nothing  # type: ignore[assignment]
    try:
        t = time.perf_counter()
        res = run_imaging(vol, device="cpu")
        return res, time.perf_counter() - t
    finally:
        cand._complete_by_hull = before  # type: ignore[assignment]


def synthetic(seeds: range) -> list[dict[str, Any]]:
    """One row per (patient, mode): masses found, Dice, diameter error, false findings."""
    from inference.models.fpr_data import draw_patient
    from inference.models.nodule_eval import match_findings

    rows = []
    for seed in seeds:
        ph = draw_patient(seed, masses=True, kinds=["mass"])
        vol = ph.to_volume()
        truth = np.asarray(ph.nodules)
        where = {r.id: ",".join(r.attachments) or "free" for r in ph.records}
        for hull in (False, True):
            res, dt = _run(vol, hull)
            matches, fp = match_findings(res.nodules, res.nodule_labels, truth, vol.spacing)
            masses = []
            for m in matches:
                n = m["finding"]
                row = {"id": m["id"], "where": where.get(m["id"], ""), "diameter_mm": round(m["diameter_mm"], 1),
                       "found": n is not None}
                if n is not None:
                    row.update(dice=round(m["dice"], 3), diameter_error_mm=round(n["mean_diameter_mm"] - m["diameter_mm"], 1),
                               by=n["detected_by"])
                masses.append(row)
            r = {"seed": seed, "hull": hull, "seconds": round(dt, 2), "masses": masses,
                 "false_findings": [round(n["mean_diameter_mm"], 1) for n in fp]}
            print(json.dumps(r), flush=True)
            rows.append(r)
    return rows


def real() -> list[dict[str, Any]]:
    """Tumour coverage of the annotated boxes and volume, both kernels, hull off and on."""
    from inference.models.nodule_eval import _in_boxes, dense_box_coverage, read_voc_boxes
    from inference.pipeline.analyze import _scan_and_load

    out = []
    for kern in ("ct-lung-kernel", "ct-soft-kernel"):
        d = REAL / kern
        if not d.is_dir():
            continue
        vol, _, _ = _scan_and_load(d, None, None, None)
        boxes = read_voc_boxes(REAL / "annotations", sorted(p for p in d.iterdir() if p.is_file()), vol)
        zs = {b[0] for b in boxes}
        for hull in (False, True):
            res, dt = _run(vol, hull)
            t = next((n for n in res.nodules if _in_boxes(n["center_voxel_zyx"], boxes)), None)
            r: dict[str, Any] = {"kernel": kern, "hull": hull, "seconds": round(dt, 2), "findings": len(res.nodules)}
            if t is not None:
                m = res.nodule_labels == t["id"]
                r.update(coverage_median=round(statistics.median(dense_box_coverage(m, vol.array, boxes)), 3),
                         volume_ml=round(t["volume_mm3"] / 1000, 1), mean_diameter_mm=t["mean_diameter_mm"],
                         probability=t["probability"], by=t["detected_by"],
                         outside_box_slices=round(float(m[[z for z in range(m.shape[0]) if z not in zs]].sum() / m.sum()), 3))
            print(json.dumps(r), flush=True)
            out.append(r)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs=2, default=[9100, 9106])
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    import torch

    torch.set_num_threads(2)
    res = {"real": real(), "synthetic": synthetic(range(*a.seeds))}
    for hull in (False, True):
        rows = [r for r in res["synthetic"] if r["hull"] == hull]
        ms = [m for r in rows for m in r["masses"]]
        found = [m for m in ms if m["found"]]
        print(json.dumps({"hull": hull, "masses_found": f"{len(found)}/{len(ms)}",
                          "median_dice": round(statistics.median([m["dice"] for m in found]), 3) if found else None,
                          "fp_per_scan": round(sum(len(r["false_findings"]) for r in rows) / max(1, len(rows)), 2),
                          "median_seconds": statistics.median([r["seconds"] for r in rows]) if rows else None}))
    if a.json:
        a.json.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
