"""Halo growth of reported findings (candidates 0.6.0): each finding before and after, one run.

    .venv/bin/python -m benchmarks.eval_halos --seeds 9200 9212 --kinds ground-glass part-solid [--json OUT]
    .venv/bin/python -m benchmarks.eval_halos --seeds 5000 5012          # every nodule kind

Each synthetic patient (``fpr_data.draw_patient(seed, kinds=...)``) runs
through the product's :func:`inference.pipeline.detect.detect_nodules` once;
the label maps that go into and come out of
:func:`inference.pipeline.candidates.grow_halos` are both kept (the growth runs
on the *reported* findings, so the two maps hold the same findings). Per true
nodule >= 5 mm that a finding matches (its centre inside the nodule or within
its radius, :func:`inference.models.fpr_data.hit_distance`): Dice, the
Lung-RADS mean diameter (long + short axis on the axial slice of largest
area) and the HU-composition type (:mod:`inference.pipeline.measure`), before
and after. Grouped by the truth's type: part-solid, ground glass, the rest.
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


def _patient(args: tuple[int, list[str] | None]) -> dict[str, Any]:
    import torch
    from scipy import ndimage as ndi

    import inference.pipeline.candidates as C
    from inference.models.catalogue import load_model
    from inference.models.fpr_data import draw_patient, hit_distance
    from inference.pipeline.detect import detect_nodules
    from inference.pipeline.lungs import segment_lungs
    from inference.pipeline.measure import axes_on_largest_slice, nodule_type

    torch.set_num_threads(1)
    seed, kinds = args
    net, info = load_model("nodules")
    maps: dict[str, Any] = {}
    grow = C.grow_halos

    def spy(hu: np.ndarray, lung: np.ndarray, sp: Any, labels: np.ndarray, *args: Any) -> Any:
        before = labels.copy()
        grown, boxes = grow(hu, lung, sp, labels, *args)  # grows `labels` in place
        maps.update(before=before, after=labels.copy(), grown=list(grown))
        return grown, boxes

    C.grow_halos = spy  # detect_nodules imports it at call time; this worker process only
    try:
        ph = draw_patient(seed, kinds=kinds)
        vol = ph.to_volume()
        hu, sp = np.asarray(vol.array), vol.spacing
        t = time.perf_counter()
        det = detect_nodules(vol, segment_lungs(vol), net, info, device="cpu")
        seconds = time.perf_counter() - t
    finally:
        C.grow_halos = grow
    truth = np.asarray(ph.nodules)
    ids = [int(i) for i in np.unique(maps["before"]) if i]
    rows = []
    for r in ph.records:
        if r.mean_diameter_mm < 5:
            continue
        tm = truth == r.id
        tc = np.array(ndi.center_of_mass(tm))
        row: dict[str, Any] = {"seed": seed, "kind": r.subtype, "type": r.type, "diameter_mm": r.mean_diameter_mm}
        for key in ("before", "after"):
            lab = maps[key]
            hit = next((lab == i for i in ids
                        if hit_distance(np.array(ndi.center_of_mass(lab == i)), tm, tc, r.mean_diameter_mm, sp) is not None), None)
            if hit is None:
                row[key] = None
                continue
            la, sa, _ = axes_on_largest_slice(hit, sp)
            row[key] = {"diameter_mm": round((la + sa) / 2, 2), "dice": round(float(2 * (hit & tm).sum() / (hit.sum() + tm.sum())), 4),
                        "type": nodule_type(hit, hu, sp)[0]}
        rows.append(row)
    return {"seed": seed, "findings": len(ids), "grown": len(maps["grown"]), "halo_seconds": det.seconds.get("halos"),
            "detect_seconds": round(seconds, 2), "rows": rows}


def summarise(patients: list[dict[str, Any]]) -> dict[str, Any]:
    """Per truth type (part-solid, ground-glass, other): diameter error, Dice and type, before -> after."""
    rows = [r for p in patients for r in p["rows"] if r["before"]]
    out: dict[str, Any] = {"findings": sum(p["findings"] for p in patients), "grown": sum(p["grown"] for p in patients)}
    for grp in ("part-solid", "ground-glass", "other"):
        sel = [r for r in rows if (r["type"] if r["type"] in ("part-solid", "ground-glass") else "other") == grp]
        if not sel:
            continue
        s: dict[str, Any] = {"n": len(sel)}
        for key in ("before", "after"):
            err = np.array([abs(r[key]["diameter_mm"] - r["diameter_mm"]) for r in sel])
            dice = np.array([r[key]["dice"] for r in sel])
            s[key] = {"median_abs_diameter_error_mm": round(float(np.median(err)), 2), "mean_abs_diameter_error_mm": round(float(err.mean()), 2),
                      "off_by_more_than_3mm": int((err > 3).sum()), "median_dice": round(float(np.median(dice)), 3),
                      "mean_dice": round(float(dice.mean()), 3), "type_right": sum(r[key]["type"] == r["type"] for r in sel)}
        out[grp] = s
    out["changed"] = [r for r in rows if abs(r["after"]["diameter_mm"] - r["before"]["diameter_mm"]) > 0.5]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs=2, required=True, metavar=("START", "STOP"))
    ap.add_argument("--kinds", nargs="+", default=None, help="nodule kinds to draw from (default: all)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    with ProcessPoolExecutor(a.jobs) as ex:
        patients = list(ex.map(_patient, [(s, a.kinds) for s in range(*a.seeds)]))
    res = {"command": "python -m benchmarks.eval_halos " + " ".join(sys.argv[1:] if argv is None else argv), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "summary": summarise(patients), "patients": patients}
    print(json.dumps(res["summary"], indent=1))
    if a.json:
        a.json.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
