"""Evaluate the nodule AI: held-out synthetic patients + the real CT.

Usage::

    .venv/bin/python -m inference.models.nodule_eval --seeds 9000 9010 [--real DIR] [--json OUT]
    .venv/bin/python -m inference.models.nodule_eval --paired BEFORE.json AFTER.json   # a change, nodule by nodule

Synthetic: every patient runs through :func:`inference.pipeline.imaging.run_imaging`
(the product's code path) on its own grid; a finding matches a true nodule
when its centre lies inside the true mask or within the true radius of its
centre. Reported per size bin (true mean diameter): sensitivity, false
positives per scan, Dice of matched nodules (on the CT grid) and the error of
the measured mean diameter against the truth; how often a found nodule's
type, side, upper-lobe flag and juxtapleural flag (Brock's and Lung-RADS'
inputs) equal the phantom's; and how often its Lung-RADS category -- what the
reader acts on -- equals the one its truth gets (:func:`baseline_lung_rads`
on both), why each missed nodule of 5 mm or more was missed (:func:`explain_miss`: a finding
centred elsewhere swallowed it, its candidate scored under the operating point, the second reader's mark was
not reported, or nothing was seen there), with the part-solid solid component's error (the truth's core measured with the product's
ruler, :func:`_truth_solid_component_mm`). Every sensitivity carries its Wilson 95 % interval
(:func:`proportion_ci95`): on ~120 nodules it is about ±6 points wide. ``--kinds`` draws
only some nodule kinds (the sub-solid ones, say), ``--no-real`` skips the real CT. (How often the findings' ``spiculated`` flag was
set, which the analysis no longer does, was reported until 2026-12-03:
benchmarks/RESULTS.md.)

Real CT (Lung-PET-CT-Dx A0001, both kernels): the annotated tumour is found
when a finding's centre lies inside an annotated box (Pascal-VOC XML, one per
slice, named by SOPInstanceUID); every other finding is counted as a false
positive; the two kernels are compared finding by finding.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from inference.pipeline.detect import DetectionTrace

__all__ = ["read_voc_boxes", "match_findings", "explain_miss", "MISS_CAUSES", "baseline_lung_rads", "dense_box_coverage", "evaluate_synthetic", "evaluate_real",
           "proportion_ci95", "paired_difference", "compare_runs", "main", "SIZE_BINS"]

SIZE_BINS = [(0.0, 5.0), (5.0, 6.0), (6.0, 10.0), (10.0, 20.0), (20.0, 1e9)]


def proportion_ci95(k: int, n: int) -> list[float] | None:
    """Wilson 95 % interval of ``k / n`` (``scipy.stats.binomtest``); ``None`` when ``n`` is 0.

    Why: a sensitivity over ~120 nodules is uncertain by about ±6 points
    (107 of 123: 0.80-0.92), so two detectors a nodule or two apart are not
    told apart by their point estimates -- the interval says how far a
    number can be trusted, and it is printed next to every sensitivity.
    """
    if n <= 0:
        return None
    from scipy.stats import binomtest

    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=0.95, method="wilson")
    return [round(float(ci.low), 3), round(float(ci.high), 3)]


def paired_difference(found_a: list[bool], found_b: list[bool]) -> dict[str, Any]:
    """Two detectors on the *same* nodules: counts, discordant pairs and McNemar's exact p-value.

    Why paired: both see the same nodules, so only the nodules one finds and
    the other misses carry information about which is better; the exact
    McNemar test is the two-sided binomial test of those discordant counts
    against 1:1 (``scipy.stats.binomtest``). p < 0.05 is the bar for calling
    a variant better than the shipped detector.
    """
    if len(found_a) != len(found_b):
        raise ValueError(f"paired comparison needs the same nodules: {len(found_a)} against {len(found_b)}")
    from scipy.stats import binomtest

    only_a = sum(a and not b for a, b in zip(found_a, found_b))
    only_b = sum(b and not a for a, b in zip(found_a, found_b))
    p = binomtest(only_a, only_a + only_b, 0.5).pvalue if only_a + only_b else 1.0
    return {"n": len(found_a), "found_a": int(sum(found_a)), "found_b": int(sum(found_b)),
            "only_a": int(only_a), "only_b": int(only_b), "p_mcnemar_exact": round(float(p), 4)}


def compare_runs(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Two ``--json`` results of the same patients (a change's before and after), paired nodule by nodule.

    Why: a change to the candidates, the classifier or a measurement moves a
    few nodules; whether it helped is read from those nodules, not from two
    totals (:func:`paired_difference`). Reported: detection of nodules ≥ 5 mm
    (McNemar), false positives per scan, and every found nodule whose
    Lung-RADS category changed, with the truth's -- the change a reader would see.
    Raises ``ValueError`` when the runs are not of the same nodules.
    """
    ra = {(r["seed"], r["id"]): r for r in before["synthetic"]["rows"]}
    rb = {(r["seed"], r["id"]): r for r in after["synthetic"]["rows"]}
    if set(ra) != set(rb):
        raise ValueError(f"the runs hold different nodules ({len(ra)} and {len(rb)}; seeds "
                         f"{before['synthetic']['seeds'][:1]}... and {after['synthetic']['seeds'][:1]}...)")
    keys = sorted(k for k in ra if ra[k]["diameter_mm"] >= 5)
    out = paired_difference([bool(ra[k]["found"]) for k in keys], [bool(rb[k]["found"]) for k in keys])
    out["fp_per_scan"] = [before["synthetic"]["fp_per_scan"], after["synthetic"]["fp_per_scan"]]
    changed = []
    both = [k for k in keys if ra[k].get("lung_rads") and rb[k].get("lung_rads")]
    for k in both:
        (ta, fa), (tb, fb) = ra[k]["lung_rads"], rb[k]["lung_rads"]
        if (ta, fa) != (tb, fb):  # the finding's category, or the truth's (an evaluation change), moved
            changed.append({"seed": k[0], "id": k[1], "kind": ra[k]["kind"], "truth": [ta, tb], "finding": [fa, fb]})
    out["lung_rads_changed"] = changed
    # over the nodules found in both runs, so that a change in what is found does not move it
    out["lung_rads_agree"] = [sum(ra[k]["lung_rads"][0] == ra[k]["lung_rads"][1] for k in both),
                              sum(rb[k]["lung_rads"][0] == rb[k]["lung_rads"][1] for k in both), len(both)]
    return out


def read_voc_boxes(annotations: Path, series_files: list[Path], volume: Any) -> list[tuple[int, int, int, int, int]]:
    """Annotated boxes of one series as ``(z, y0, x0, y1, x1)`` voxel indices.

    The XML files are named by SOPInstanceUID; the slice index comes from the
    file's ImagePositionPatient projected through ``volume`` (never from file
    names or InstanceNumber).
    """
    import pydicom

    by_uid = {}
    for f in series_files:
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        by_uid[str(ds.SOPInstanceUID)] = np.array(ds.ImagePositionPatient, float)
    out = []
    for x in sorted(Path(annotations).glob("*.xml")):
        uid = x.stem
        if uid not in by_uid:
            continue
        k = int(round(float(volume.lps_to_voxel(by_uid[uid])[0])))
        for obj in ET.parse(x).getroot().iter("object"):
            b = obj.find("bndbox")
            if b is None:
                continue
            v = {t: int(float(b.findtext(t, "0"))) for t in ("xmin", "ymin", "xmax", "ymax")}
            out.append((k, v["ymin"], v["xmin"], v["ymax"], v["xmax"]))
    return out


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    s = a.sum() + b.sum()
    return float(2 * (a & b).sum() / s) if s else 1.0


def match_findings(nodules: list[dict[str, Any]], labels: np.ndarray, truth_lab: np.ndarray,
                   spacing: tuple[float, float, float]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Each true nodule of ``truth_lab`` (ids > 0) with the finding that matches it, and the findings none matched.

    A finding matches a true nodule when its centre lies inside the true mask
    or within the true radius of its centre (:func:`inference.models.fpr_data.hit_distance`);
    the nearest matching finding wins. Per true nodule: ``id``, ``diameter_mm``
    (mean of the axial long and short axes, measured as the product measures
    findings), ``volume_mm3``, ``finding`` (the contract dict or None) and
    ``dice`` of the finding's label against the true mask (None when missed).
    """
    from scipy import ndimage as ndi

    from inference.models.fpr_data import hit_distance
    from inference.pipeline.measure import axes_on_largest_slice

    out = []
    matched: set[int] = set()
    for tid in (int(i) for i in np.unique(truth_lab) if i > 0):
        tm = truth_lab == tid
        la, sa, _ = axes_on_largest_slice(tm, spacing)
        tdiam = (la + sa) / 2
        tc = np.array(ndi.center_of_mass(tm))
        best = None
        for n in nodules:
            dist = hit_distance(np.array(n["center_voxel_zyx"]), tm, tc, tdiam, spacing)
            if dist is not None and (best is None or dist < best[0]):
                best = (dist, n)
        n = best[1] if best is not None else None
        if n is not None:
            matched.add(n["id"])
        out.append({"id": tid, "diameter_mm": tdiam, "volume_mm3": float(tm.sum() * np.prod(spacing)), "finding": n,
                    "dice": _dice(labels == n["id"], tm) if n is not None else None})
    return out, [n for n in nodules if n["id"] not in matched]


#: a structure lies *on* a true nodule when it holds at least this share of the nodule's voxels, or at least
#: half of its own voxels lie in the nodule (a piece of a cavity's wall, a core cut from its halo)
ON_NODULE = {"cover": 0.3, "purity": 0.5}

#: why a nodule was missed, in the order :func:`explain_miss` tests them
MISS_CAUSES = (
    "inside a finding centred elsewhere",
    "candidate under the operating point",
    "second-reader mark not reported",
    "second reader under its operating point",
    "no candidate, no second-reader mark",
)


def _best_overlap(labels: np.ndarray, truth: np.ndarray) -> tuple[int, float, float, tuple[slice, ...] | None]:
    """The label of ``labels`` sharing most voxels with ``truth``: ``(id, cover, purity, its box)``; id 0 when none touches it."""
    from scipy import ndimage as ndi

    ids, counts = np.unique(labels[truth], return_counts=True)
    counts, ids = counts[ids > 0], ids[ids > 0]
    if not ids.size:
        return 0, 0.0, 0.0, None
    k = int(np.argmax(counts))
    i = int(ids[k])
    box = ndi.find_objects(labels, max_label=i)[i - 1]
    return i, float(counts[k] / truth.sum()), float(counts[k] / np.count_nonzero(labels[box] == i)), box


def _on_nodule(cover: float, purity: float) -> bool:
    return cover >= ON_NODULE["cover"] or purity >= ON_NODULE["purity"]


def explain_miss(truth: np.ndarray, labels: np.ndarray, trace: DetectionTrace, hu: np.ndarray,
                 spacing: tuple[float, float, float], lung_surrounded: dict[str, float] | None = None) -> dict[str, Any]:
    """Why the true nodule ``truth`` (a mask) that no finding matched was missed, from the detector's trace.

    Why: each reason needs different work -- a finding that swallowed the
    nodule (segmentation), a candidate scored too low (the classifier), a
    second-reader mark the report policy leaves out (the policy), or nothing
    at all where the nodule is (a detector that sees it). Earlier sessions
    answered this per run with scratch scripts; here it is part of every run.
    ``labels``: the reported findings; ``trace``: the
    :class:`inference.pipeline.detect.DetectionTrace` of the same run;
    ``lung_surrounded``: the nodule model's rule when it ran (for the
    aerated ring of a solid mark). Returns ``cause`` (one of
    :data:`MISS_CAUSES`, the first that applies) with what was seen:
    ``finding`` (id and share of the nodule it holds), ``candidate``
    (classifier probability, share of the nodule, share of the candidate on
    it, the operating point), ``reader_max_probability`` and
    ``reader_mark`` (the second reader's component on it: probability, mean
    HU, equivalent diameter, aerated share of the ring around it).
    """
    from inference.pipeline.detect import ring_air_share
    from inference.pipeline.measure import equivalent_diameter_mm

    out: dict[str, Any] = {}
    fid, fcover, _, _ = _best_overlap(labels, truth)
    out["finding"] = {"id": fid, "cover": round(fcover, 3)} if fid else None
    cid, ccover, cpurity, _ = _best_overlap(trace.candidate_labels, truth)
    out["candidate"] = ({"probability": round(float(trace.candidate_probabilities[cid - 1]), 4), "cover": round(ccover, 3),
                         "purity": round(cpurity, 3), "operating_point": trace.operating_point} if cid else None)
    out["reader_max_probability"] = None
    out["reader_mark"] = None
    if trace.dense_probability_map is not None and trace.dense_crop is not None:
        inside = truth[trace.dense_crop]
        out["reader_max_probability"] = round(float(trace.dense_probability_map[inside].max()), 4) if inside.any() else 0.0
    if trace.dense_labels is not None:
        did, dcover, dpurity, box = _best_overlap(trace.dense_labels, truth)
        if did and box is not None:
            comp = trace.dense_labels[box] == did
            ring = ring_air_share(trace.dense_labels, did, box, hu, spacing,
                                  float((lung_surrounded or {}).get("ring_mm", 2.0)))
            out["reader_mark"] = {"probability": round(float(trace.dense_probabilities[did - 1]), 4),
                                  "cover": round(dcover, 3), "purity": round(dpurity, 3),
                                  "mean_hu": round(float(hu[box][comp].mean()), 1),
                                  "diameter_mm": round(equivalent_diameter_mm(int(comp.sum()), spacing), 2),
                                  "lung_ring_air": None if ring is None else round(ring, 3),
                                  "max_mean_hu": trace.dense_max_mean_hu}
    if fid and fcover >= ON_NODULE["cover"]:
        cause = MISS_CAUSES[0]
    elif cid and _on_nodule(ccover, cpurity):
        cause = MISS_CAUSES[1]
    elif out["reader_mark"] is not None and _on_nodule(out["reader_mark"]["cover"], out["reader_mark"]["purity"]):
        cause = MISS_CAUSES[2]
    elif (out["reader_max_probability"] or 0.0) >= 0.5:
        cause = MISS_CAUSES[3]
    else:
        cause = MISS_CAUSES[4]
    return {"cause": cause, **out}


def dense_box_coverage(mask: np.ndarray, hu: np.ndarray, boxes: list[tuple[int, int, int, int, int]]) -> list[float]:
    """Per annotated box, the share of its dense (> -300 HU) pixels inside ``mask`` -- how much of a tumour is segmented."""
    return [float(mask[k, y0:y1 + 1, x0:x1 + 1][hu[k, y0:y1 + 1, x0:x1 + 1] > -300].mean()) for k, y0, x0, y1, x1 in boxes]


def _attribute_agreement(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """How often each reported attribute of a found nodule equals the phantom's (Brock and Lung-RADS use them)."""
    out: dict[str, Any] = {}
    for key in ("type", "side", "upper_lobe", "juxtapleural"):
        pairs = [r["attributes"][key] for r in rows]
        out[key] = [sum(a == b for a, b in pairs), len(pairs)]
    conf: dict[str, int] = {}
    for r in rows:
        t, f = r["attributes"]["type"]
        if t != f:
            conf[f"{t} -> {f}"] = conf.get(f"{t} -> {f}", 0) + 1
    out["type_errors"] = conf
    return out


def baseline_lung_rads(kind: str | None, mean_diameter_mm: float, solid_component_mm: float | None,
                       juxtapleural: bool, spiculated: bool) -> str | None:
    """Lung-RADS v2022 category of a nodule on a baseline exam (no prior), or None for an unknown type.

    Applied alike to the phantom's truth and to a finding, so that the evaluation
    counts how often the measurement errors (type, size, solid component,
    juxtapleural flag) change the category the reader is shown.
    """
    from inference.clinical.lungrads import LungRadsNodule, nodule_category

    if kind not in ("solid", "part-solid", "ground-glass", "calcified"):
        return None
    return nodule_category(LungRadsNodule(
        mean_diameter_mm=float(mean_diameter_mm), kind=kind,  # type: ignore[arg-type]
        solid_component_mm=None if kind != "part-solid" else float(solid_component_mm or 0.0),
        juxtapleural=juxtapleural, spiculated=spiculated))


def _lung_rads_agreement(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Found nodules whose reported Lung-RADS category equals the truth's: ``[agree, n]``, how many the
    finding rates higher and lower, the confusion ``"truth -> finding": count``, and for nodules that are
    or are reported part-solid the median absolute error of the solid component (mm)."""
    from inference.clinical.lungrads import CATEGORY_ORDER

    pairs = [r["lung_rads"] for r in rows if r.get("lung_rads") and None not in r["lung_rads"]]
    conf: dict[str, int] = {}
    for t, f in pairs:
        if t != f:
            conf[f"{t} -> {f}"] = conf.get(f"{t} -> {f}", 0) + 1
    solid = [abs(f - t) for t, f in (r["solid_component_mm"] for r in rows if r.get("solid_component_mm"))
             if t is not None and f is not None]
    return {
        "agree": [sum(t == f for t, f in pairs), len(pairs)],
        "finding_higher": sum(CATEGORY_ORDER.index(f) > CATEGORY_ORDER.index(t) for t, f in pairs),
        "finding_lower": sum(CATEGORY_ORDER.index(f) < CATEGORY_ORDER.index(t) for t, f in pairs),
        "errors": conf,
        "part_solid_n": len(solid),
        "median_abs_solid_component_error_mm": round(float(np.median(solid)), 2) if solid else None,
    }


def _truth_solid_component_mm(ph: Any, record: Any) -> float:
    """A part-solid nodule's true solid component measured with the product's ruler (other types: the record's).

    Why: the phantom's record measures the core corner to corner
    (:func:`inference.synth.nodules.measure_axial`), the product from pixel
    centres plus half a pixel (:func:`inference.pipeline.measure.axes_2d`,
    unbiased on analytic discs); on 0.75-1.0 mm pixels the record comes out
    0.7-0.9 mm larger, which read as the product measuring cores a median
    0.4-0.5 mm small (against the same ruler: 0.05-0.3 mm large) and moved
    cores across Lung-RADS' 6 and 8 mm lines. The whole nodule's diameter is
    compared the same way (its truth mask re-measured).
    """
    from inference.pipeline.measure import axes_on_largest_slice

    core = getattr(ph, "cores", {}).get(record.id)
    if record.type != "part-solid" or core is None or not core["core"].any():
        return float(record.solid_component_mm)
    la, sa, _ = axes_on_largest_slice(core["core"], ph.spacing)
    return round(0.5 * (la + sa), 1)


def evaluate_synthetic(seeds: list[int], *, device: str = "cpu", kinds: list[str] | None = None,
                       log: Any = print) -> dict[str, Any]:
    """Per-size-bin metrics on synthetic patients (see module docstring); ``kinds`` draws only those nodule kinds."""
    from inference.models.nodule_data import phantom_available
    from inference.pipeline.imaging import run_imaging
    from inference.types import Volume

    rows = []  # per true nodule
    fps: list[int] = []
    fp_rows: list[dict[str, Any]] = []  # per false-positive finding: what reported it, at which probability
    secs: list[float] = []
    for seed in seeds:
        if phantom_available():
            from inference.models.fpr_data import draw_patient

            # the phantom's own random anatomy/nodules/kernel/dose; slice
            # thickness and pixel size drawn from clinical values, matrix 384²
            # to keep the 2-core evaluation within minutes (the same draw as
            # the classifier's training patients, on seeds never used there)
            ph = draw_patient(seed, n_nodules=4, kinds=kinds)
            kind_of = {r.id: r.subtype for r in ph.records}
            truth_attr = {r.id: {"type": r.type, "side": r.side, "upper_lobe": r.lobe in ("RUL", "LUL"),
                                 "juxtapleural": bool({"pleura", "mediastinum"} & set(r.attachments)),
                                 "solid_component_mm": _truth_solid_component_mm(ph, r),
                                 "spiculated": bool(r.features.get("spiculated"))}
                          for r in ph.records}
            vol = ph.to_volume()
            truth_lab = np.asarray(ph.nodules)
            source = "inference.synth.phantom"
        else:
            from inference.models.nodule_data import augment, simple_chest

            c = simple_chest(seed, spacing=(1.25, 0.75, 0.75))
            hu = augment(c.hu, c.spacing, np.random.default_rng(seed)).round().astype(np.int16)
            vol = Volume(array=hu, spacing=c.spacing, origin=(0.0, 0.0, 0.0), direction=np.eye(3))
            truth_lab = c.nodules
            kind_of = {t.label: t.type for t in c.truth}
            truth_attr = {}
            source = "simple_chest (fallback)"
        t = time.perf_counter()
        res = run_imaging(vol, device=device, trace=True)
        dt = time.perf_counter() - t
        secs.append(dt)
        matches, fp = match_findings(res.nodules, res.nodule_labels, truth_lab, vol.spacing)
        ids = [m["id"] for m in matches]
        for m in matches:
            n = m["finding"]
            row = {"seed": seed, "id": m["id"], "kind": kind_of.get(m["id"], ""), "diameter_mm": round(m["diameter_mm"], 2),
                   "volume_mm3": round(m["volume_mm3"], 1), "found": n is not None}
            if n is None and m["diameter_mm"] >= 5.0 and res.trace is not None:
                row["why"] = explain_miss(truth_lab == m["id"], res.nodule_labels, res.trace, np.asarray(vol.array),
                                          vol.spacing, (res.model.get("dense_model") or {}).get("lung_surrounded"))
            if n is not None:
                t = truth_attr.get(m["id"])
                if t is not None:  # what the finding says against what the phantom is
                    loc = n.get("location") or {}
                    row["attributes"] = {"type": [t["type"], n.get("type")], "side": [t["side"], loc.get("side")],
                                         "upper_lobe": [t["upper_lobe"], bool(loc.get("upper_lobe"))],
                                         "juxtapleural": [t["juxtapleural"], bool(n.get("juxtapleural"))]}
                    # the truth's diameter as the product measures (the record's own axes differ by up to a
                    # few tenths of a mm, which moved nodules across 6, 8 and 15 mm on their own)
                    row["lung_rads"] = [baseline_lung_rads(t["type"], m["diameter_mm"], t["solid_component_mm"],
                                                           t["juxtapleural"], t["spiculated"]),
                                        baseline_lung_rads(n.get("type"), n["mean_diameter_mm"],
                                                           n.get("solid_component_mm"), bool(n.get("juxtapleural")),
                                                           bool(n.get("spiculated")))]
                    if "part-solid" in (t["type"], n.get("type")):
                        row["solid_component_mm"] = [t["solid_component_mm"], n.get("solid_component_mm")]
                row["dice"] = round(m["dice"], 4)
                row["diameter_error_mm"] = round(n["mean_diameter_mm"] - m["diameter_mm"], 2)
                row["probability"] = n["probability"]
                row["detected_by"] = n.get("detected_by", "")
                row["mean_hu"] = n.get("mean_hu")
            rows.append(row)
        fps.append(len(fp))
        fp_rows += [{"seed": seed, "mean_diameter_mm": n["mean_diameter_mm"], "probability": n.get("probability"),
                     "detected_by": n.get("detected_by", ""), "type": n.get("type"), "mean_hu": n.get("mean_hu")} for n in fp]
        log(json.dumps({"seed": seed, "truth": len(ids), "found": sum(r["found"] for r in rows if r["seed"] == seed),
                        "fp": len(fp), "fp_diameters": [n["mean_diameter_mm"] for n in fp], "seconds": round(dt, 1)}))
    bins = []
    for lo, hi in SIZE_BINS:
        rs = [r for r in rows if lo <= r["diameter_mm"] < hi]
        found = [r for r in rs if r["found"]]
        bins.append({
            "bin_mm": f"{lo:g}-{hi:g}" if hi < 1e8 else f">={lo:g}",
            "n": len(rs),
            "sensitivity": round(len(found) / len(rs), 3) if rs else None,
            "sensitivity_ci95": proportion_ci95(len(found), len(rs)),
            "median_dice": round(float(np.median([r["dice"] for r in found])), 3) if found else None,
            "median_abs_diameter_error_mm": round(float(np.median([abs(r["diameter_error_mm"]) for r in found])), 2) if found else None,
        })
    ge5 = [r for r in rows if r["diameter_mm"] >= 5]
    ge6 = [r for r in rows if r["diameter_mm"] >= 6 and r["found"]]
    return {
        "source": source if seeds else None,
        "seeds": seeds,
        "patients": len(seeds),
        "nodules": len(rows),
        "fp_per_scan": round(float(np.mean(fps)), 2) if fps else None,
        "sensitivity_ge5mm": round(sum(r["found"] for r in ge5) / len(ge5), 3) if ge5 else None,
        "sensitivity_ge5mm_ci95": proportion_ci95(sum(r["found"] for r in ge5), len(ge5)),
        "median_dice_ge6mm": round(float(np.median([r["dice"] for r in ge6])), 3) if ge6 else None,
        "mean_dice_ge6mm": round(float(np.mean([r["dice"] for r in ge6])), 3) if ge6 else None,
        "median_abs_diameter_error_mm_ge5": round(float(np.median([abs(r["diameter_error_mm"]) for r in ge5 if r["found"]])), 2)
        if any(r["found"] for r in ge5) else None,
        "bins": bins,
        "missed_ge5mm": [{**{k: r[k] for k in ("seed", "kind", "diameter_mm")}, "why": r.get("why")}
                         for r in ge5 if not r["found"]],
        # why they were missed (explain_miss): which part of the detector to work on
        "missed_by_cause_ge5mm": {c: sum((r.get("why") or {}).get("cause") == c for r in ge5 if not r["found"])
                                  for c in MISS_CAUSES},
        # found / drawn per nodule kind (>= 5 mm): where the detector is weak (the model card quotes these)
        "found_by_kind_ge5mm": {k: f"{sum(r['found'] for r in ge5 if r['kind'] == k)}/{sum(r['kind'] == k for r in ge5)}"
                                for k in sorted({r["kind"] for r in ge5})},
        # per attribute of found nodules >= 5 mm: [agree, n] (type, side, upper lobe, juxtapleural), and the
        # type confusion "truth -> finding": count
        "attributes": _attribute_agreement([r for r in ge5 if r.get("attributes")]),
        # Lung-RADS (baseline exam) of each found nodule >= 5 mm: the finding's against the truth's,
        # spiculation the phantom's on the truth side (the analysis leaves the margin to the reader)
        "lung_rads": _lung_rads_agreement([r for r in ge5 if r.get("lung_rads")]),
        "seconds_median": round(float(np.median(secs)), 1) if secs else None,
        # false positives per scan by what reported them (classifier, mass rule, dense network)
        "fp_per_scan_by_source": {k: round(sum(f["detected_by"] == k for f in fp_rows) / len(seeds), 2)
                                  for k in sorted({f["detected_by"] for f in fp_rows})} if seeds else {},
        "rows": rows,
        "false_positives": fp_rows,
    }


def _in_boxes(zyx: Any, boxes: list[tuple[int, int, int, int, int]]) -> bool:
    """Voxel centre inside an annotated box (its slice ± 1, because boxes are drawn per slice)."""
    z, y, x = zyx
    return any(abs(z - k) <= 1 and y0 <= y <= y1 and x0 <= x <= x1 for k, y0, x0, y1, x1 in boxes)


def _largest_candidate_in_boxes(vol: Any, lung_labels: np.ndarray, boxes: list[tuple[int, int, int, int, int]],
                                device: str) -> dict[str, Any] | None:
    """The tumour's own candidate: the largest one centred in an annotated box, with its score.

    Why: when the tumour is reported only in parts, this says whether the
    candidate stage found the whole mass and the classifier turned it down
    (its probability against the operating point) or the mass was never a
    candidate. Runs :func:`inference.pipeline.detect.detect_nodules` with no
    probability cut, so every candidate is scored exactly as the product does.
    """
    import copy

    from inference.models.catalogue import load_model
    from inference.pipeline.detect import candidate_centres, detect_nodules

    net, info = load_model("nodules", device=device)
    allinfo = copy.deepcopy(info)
    allinfo.metadata.setdefault("postprocess", {})["min_probability"] = 0.0
    det = detect_nodules(vol, lung_labels, net, allinfo, device=device)
    n = len(det.probabilities)
    sizes = np.bincount(det.labels.ravel(), minlength=n + 1)[1:]
    best = None
    for i, (z, y, x) in enumerate(candidate_centres(det.labels, n)):
        if _in_boxes((z, y, x), boxes):
            if best is None or sizes[i] > sizes[best]:
                best = i
    if best is None:
        return None
    v_mm3 = float(sizes[best]) * float(np.prod(vol.spacing))
    return {"equivalent_diameter_mm": round((6 * v_mm3 / np.pi) ** (1 / 3), 1), "probability": round(float(det.probabilities[best]), 4),
            "operating_threshold": float(info.metadata["postprocess"]["min_probability"]), "candidates": n}


def evaluate_real(study: Path, *, device: str = "cpu", log: Any = print) -> dict[str, Any]:
    """The real CT, both kernels (see module docstring)."""
    from inference.pipeline.analyze import _scan_and_load
    from inference.pipeline.imaging import run_imaging
    from inference.pipeline.lungs import segment_lungs

    out: dict[str, Any] = {}
    per_kernel = {}
    for sub in ("ct-lung-kernel", "ct-soft-kernel"):
        d = study / sub
        vol, _, _ = _scan_and_load(d, None, None, None)
        files = sorted(p for p in d.iterdir() if p.is_file())
        boxes = read_voc_boxes(study / "annotations", files, vol)
        t = time.perf_counter()
        res = run_imaging(vol, device=device)
        dt = time.perf_counter() - t
        hits = []
        for n in res.nodules:
            z, y, x = n["center_voxel_zyx"]
            inside = _in_boxes((z, y, x), boxes)
            hits.append(inside)
        # segmented: fraction of annotated-box pixels (on annotated slices) covered by the tumour finding
        tum = [n for n, h in zip(res.nodules, hits) if h]
        cover = None
        if tum:
            m = res.nodule_labels == tum[0]["id"]
            cov = [m[k, y0 : y1 + 1, x0 : x1 + 1].mean() for k, y0, x0, y1, x1 in boxes if 0 <= k < m.shape[0]]
            cover = round(float(np.mean(cov)), 3) if cov else None
        r = {
            # the candidates as the analysis searched them: on the search map, not the reported lungs
            "largest_candidate_in_boxes": _largest_candidate_in_boxes(vol, segment_lungs(vol), boxes, device),
            "annotated_slices": len(boxes),
            "tumour_found": bool(tum),
            "tumour": {k: tum[0][k] for k in ("id", "center_lps_mm", "mean_diameter_mm", "volume_mm3", "type", "location", "probability")} if tum else None,
            "tumour_box_coverage": cover,
            "false_positives": int(sum(not h for h in hits)),
            "fp_findings": [{"center_lps_mm": n["center_lps_mm"], "mean_diameter_mm": n["mean_diameter_mm"], "probability": n["probability"]}
                            for n, h in zip(res.nodules, hits) if not h],
            "lungs": res.lungs,
            "seconds": round(dt, 1),
        }
        log(json.dumps({sub: {k: r[k] for k in ("tumour_found", "false_positives", "tumour_box_coverage", "seconds")}}))
        per_kernel[sub] = (r, res)
        out[sub] = r
    # kernel agreement: findings matched by LPS centre within 10 mm
    (ra, a), (rb, b) = per_kernel["ct-lung-kernel"], per_kernel["ct-soft-kernel"]
    pairs = 0
    for n in a.nodules:
        ca = np.array(n["center_lps_mm"])
        if any(np.linalg.norm(ca - np.array(m["center_lps_mm"])) <= 10 for m in b.nodules):
            pairs += 1
    out["kernel_agreement"] = {"lung_kernel_findings": len(a.nodules), "soft_kernel_findings": len(b.nodules),
                               "matched_within_10mm": pairs}
    if ra["tumour"] and rb["tumour"]:
        out["kernel_agreement"]["tumour_mean_diameter_mm"] = [ra["tumour"]["mean_diameter_mm"], rb["tumour"]["mean_diameter_mm"]]
        out["kernel_agreement"]["tumour_volume_mm3"] = [ra["tumour"]["volume_mm3"], rb["tumour"]["volume_mm3"]]
    return out


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; see module docstring."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs=2, metavar=("START", "STOP"), default=[9000, 9010],
                    help="held-out synthetic patient seeds [START, STOP) -- never used in training")
    ap.add_argument("--real", type=Path, default=Path(__file__).resolve().parents[3] / "shared" / "data" / "lung-pet-ct-dx" / "A0001")
    ap.add_argument("--no-real", action="store_true", help="skip the real CT")
    ap.add_argument("--kinds", nargs="+", help="draw only these nodule kinds (e.g. ground-glass part-solid)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--paired", type=Path, nargs=2, metavar=("BEFORE", "AFTER"),
                    help="compare two --json results of the same patients nodule by nodule (runs nothing)")
    a = ap.parse_args(argv)
    if a.paired:
        runs = [json.loads(f.read_text(encoding="utf-8")) for f in a.paired]
        print(json.dumps(compare_runs(*runs), indent=1))
        return 0
    import torch

    torch.set_num_threads(2)
    res: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"), "command": " ".join(["python -m inference.models.nodule_eval", *(argv or sys.argv[1:])])}
    res["synthetic"] = evaluate_synthetic(list(range(a.seeds[0], a.seeds[1])), device=a.device, kinds=a.kinds,
                                          log=lambda s: print(s, flush=True))
    if not a.no_real and (a.real / "ct-lung-kernel").is_dir():
        res["real"] = evaluate_real(a.real, device=a.device, log=lambda s: print(s, flush=True))
    summary = {k: v for k, v in res["synthetic"].items() if k != "rows"}
    print(json.dumps(summary, indent=1))
    if "real" in res:
        print(json.dumps(res["real"], indent=1, default=str))
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(res, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
