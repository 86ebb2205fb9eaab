"""The evaluation's Lung-RADS agreement: what a measurement error does to the category the reader sees."""

from __future__ import annotations

from inference.models.nodule_eval import _lung_rads_agreement, baseline_lung_rads


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
