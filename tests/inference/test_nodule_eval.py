"""The evaluation's Lung-RADS agreement (what a measurement error does to the category the reader sees) and how sure its numbers are."""

from __future__ import annotations

import numpy as np
import pytest

from inference.models.nodule_eval import _lung_rads_agreement, baseline_lung_rads, compare_runs, paired_difference, proportion_ci95


def test_baseline_category_follows_the_guideline_for_truth_and_finding_alike() -> None:
    # Lung-RADS v2022 baseline: solid 6-8 mm -> 3, 8-15 mm -> 4A; a solid juxtapleural nodule
    # under 10 mm without spiculation -> 2; part-solid >= 6 mm by its solid component
    assert baseline_lung_rads("solid", 7.0, 7.0, False, False) == "3"
    assert baseline_lung_rads("solid", 9.0, 9.0, True, False) == "2"
    assert baseline_lung_rads("solid", 9.0, 9.0, True, True) == "4A"
    assert baseline_lung_rads("part-solid", 12.0, 6.5, False, False) == "4A"
    assert baseline_lung_rads("part-solid", 12.0, 5.0, False, False) == "3"
    assert baseline_lung_rads("ground-glass", 25.0, 0.0, False, False) == "2"
    assert baseline_lung_rads("calcified", 12.0, 12.0, False, False) == "1"
    assert baseline_lung_rads(None, 9.0, None, False, False) is None


def test_agreement_counts_over_and_under_calls_and_the_solid_component_error() -> None:
    rows = [
        {"lung_rads": ["3", "3"]},
        {"lung_rads": ["3", "4A"], "solid_component_mm": [5.0, 6.5]},  # solid part over-measured
        {"lung_rads": ["4A", "2"], "solid_component_mm": [6.5, 0.0]},  # part-solid typed ground glass
        {"lung_rads": [None, "2"]},  # unknown truth type: not counted
    ]
    a = _lung_rads_agreement(rows)
    assert a["agree"] == [1, 3]
    assert a["finding_higher"] == 1 and a["finding_lower"] == 1
    assert a["errors"] == {"3 -> 4A": 1, "4A -> 2": 1}
    assert a["part_solid_n"] == 2 and a["median_abs_solid_component_error_mm"] == 4.0  # of 1.5 and 6.5


def test_sensitivity_interval_holds_the_estimate_and_narrows_with_more_nodules() -> None:
    lo, hi = proportion_ci95(107, 123)
    assert lo < 107 / 123 < hi
    # the held-out set's size: a detector two nodules better lies well inside this interval
    assert hi - lo > 0.1 and lo < 109 / 123 < hi
    lo10, hi10 = proportion_ci95(1070, 1230)
    assert lo < lo10 < hi10 < hi
    assert proportion_ci95(20, 20)[1] == 1.0 and proportion_ci95(20, 20)[0] < 1.0
    assert proportion_ci95(0, 0) is None


def test_paired_difference_counts_only_the_nodules_one_detector_finds_and_the_other_misses() -> None:
    a = [True] * 100 + [False] * 20
    b = [True] * 100 + [True] * 2 + [False] * 18  # two more found, none lost
    r = paired_difference(a, b)
    assert (r["found_a"], r["found_b"], r["only_a"], r["only_b"]) == (100, 102, 0, 2)
    assert r["p_mcnemar_exact"] == 0.5  # 2:0 is chance
    many = paired_difference([False] * 12 + [True] * 50, [True] * 12 + [True] * 50)
    assert many["only_b"] == 12 and many["p_mcnemar_exact"] < 0.001
    assert paired_difference(a, a)["p_mcnemar_exact"] == 1.0
    with pytest.raises(ValueError, match="same nodules"):
        paired_difference(a, b[:-1])


def test_truth_solid_component_is_measured_with_the_products_ruler() -> None:
    """The phantom's record measures a core corner to corner; the evaluation re-measures it as the product does."""
    pytest.importorskip("inference.synth.phantom")
    from inference.models.fpr_data import draw_patient
    from inference.models.nodule_eval import _truth_solid_component_mm
    from inference.pipeline.measure import axes_on_largest_slice

    ph = draw_patient(9601, n_nodules=4, kinds=["part-solid"])
    cores = [r for r in ph.records if r.type == "part-solid" and r.solid_component_mm > 3.0]
    assert cores, "seed 9601 draws part-solid nodules with a solid core"
    for r in cores:
        la, sa, _ = axes_on_largest_slice(ph.cores[r.id]["core"], ph.spacing)
        assert _truth_solid_component_mm(ph, r) == round(0.5 * (la + sa), 1)
        # corner to corner adds about a pixel (0.75-1.0 mm here): the gap the old comparison read as an error
        assert 0.3 < r.solid_component_mm - _truth_solid_component_mm(ph, r) < 1.5
    solid = next((r for r in draw_patient(9000, n_nodules=4).records if r.type == "solid"), None)
    if solid is not None:
        assert _truth_solid_component_mm(ph, solid) == solid.solid_component_mm


def test_two_runs_are_compared_nodule_by_nodule() -> None:
    """A change's before and after: which nodules it found or lost, and whose category a reader would see move."""
    def run(rows, fp):
        return {"synthetic": {"seeds": [1, 2], "fp_per_scan": fp, "rows": rows}}

    def row(seed, nid, found, d=8.0, lr=None):
        return {"seed": seed, "id": nid, "kind": "solid", "diameter_mm": d, "found": found, **({"lung_rads": lr} if lr else {})}

    before = run([row(1, 1, True, lr=["3", "3"]), row(1, 2, False), row(2, 1, True, lr=["4A", "3"]), row(2, 2, True, 3.0)], 0.5)
    after = run([row(1, 1, True, lr=["3", "3"]), row(1, 2, True, lr=["3", "3"]), row(2, 1, True, lr=["4A", "4A"]),
                 row(2, 2, False, 3.0)], 1.0)
    r = compare_runs(before, after)
    # the 3 mm nodule does not count; one nodule gained, none lost
    assert (r["n"], r["only_a"], r["only_b"]) == (3, 0, 1)
    assert r["fp_per_scan"] == [0.5, 1.0]
    assert r["lung_rads_changed"] == [{"seed": 2, "id": 1, "kind": "solid", "truth": ["4A", "4A"], "finding": ["3", "4A"]}]
    # agreement over the nodules found in both runs with a category: 1 of 2 before, 2 of 2 after
    assert r["lung_rads_agree"] == [1, 2, 2]
    with pytest.raises(ValueError, match="different nodules"):
        compare_runs(before, run(after["synthetic"]["rows"][:-1], 1.0))


def _ball(shape: tuple[int, int, int], centre: tuple[float, float, float], r_mm: float,
          sp: tuple[float, float, float]) -> np.ndarray:
    z, y, x = np.indices(shape).astype(float)
    return ((z - centre[0]) * sp[0]) ** 2 + ((y - centre[1]) * sp[1]) ** 2 + ((x - centre[2]) * sp[2]) ** 2 <= r_mm**2


def test_each_miss_is_named_by_what_the_detector_saw_there() -> None:
    """A missed nodule is explained by the first thing that applies: a finding centred elsewhere holding it, a
    candidate the classifier scored under the operating point, a second-reader mark the report policy left out
    (with its density and the aerated lung around it), the reader seeing it under its own operating point, or
    nothing seen at all -- each calls for different work."""
    from inference.models.nodule_eval import MISS_CAUSES, explain_miss
    from inference.pipeline.detect import DetectionTrace

    sp = (1.25, 1.0, 1.0)
    shape = (24, 40, 40)
    truth = _ball(shape, (12, 20, 20), 5.0, sp)
    hu = np.where(truth, 30.0, -850.0)
    empty = np.zeros(shape, np.uint16)

    def trace(cand: np.ndarray = empty, dense: np.ndarray | None = None, pmap: float = 0.0) -> DetectionTrace:
        return DetectionTrace(cand, np.array([0.04]), 0.1, dense, [0.99],
                              np.where(truth, pmap, 0.0).astype(np.float16), (slice(None),) * 3, -300.0)

    nothing = explain_miss(truth, empty, trace(), hu, sp)
    assert nothing["cause"] == MISS_CAUSES[-1] and nothing["candidate"] is None and nothing["reader_mark"] is None
    assert nothing["reader_max_probability"] == 0.0

    faint = explain_miss(truth, empty, trace(pmap=0.7), hu, sp)
    assert faint["cause"] == "second reader under its operating point" and abs(faint["reader_max_probability"] - 0.7) < 1e-3

    # the reader's solid mark, free in aerated lung, that the policy left out: its density and the ring are given
    mark = explain_miss(truth, empty, trace(dense=truth.astype(np.uint16)), hu, sp,
                        {"min_ring_air": 0.65, "ring_mm": 2.0, "min_diameter_mm": 7.0})
    assert mark["cause"] == "second-reader mark not reported"
    assert mark["reader_mark"]["mean_hu"] == 30.0 and mark["reader_mark"]["lung_ring_air"] == 1.0
    assert 9.0 < mark["reader_mark"]["diameter_mm"] < 11.0

    # a piece of its wall (all on the nodule, a tenth of it) is a candidate on it: the classifier's miss
    piece = (truth & (np.indices(shape)[2] < 17)).astype(np.uint16)
    cand = explain_miss(truth, empty, trace(cand=piece, dense=truth.astype(np.uint16)), hu, sp)
    assert cand["cause"] == "candidate under the operating point"
    assert cand["candidate"]["probability"] == 0.04 and cand["candidate"]["purity"] == 1.0 and cand["candidate"]["cover"] < 0.3
    assert cand["reader_mark"] is not None  # what else was seen is kept

    # a large finding centred elsewhere that holds it: merged with a neighbour
    big = np.zeros(shape, np.uint16)
    big[:, :, 10:] = 3
    merged = explain_miss(truth, big, trace(cand=piece), hu, sp)
    assert merged["cause"] == "inside a finding centred elsewhere" and merged["finding"] == {"id": 3, "cover": 1.0}
