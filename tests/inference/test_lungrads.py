"""Lung-RADS v2022: one row per criterion of the category table (clinical-facts.md §3.2)."""

from __future__ import annotations

import pytest

from inference.clinical.lungrads import (
    LungRadsNodule as N,
    exam_category,
    management_text,
    nodule_category,
)
from inference.clinical.scoring import apply_guidelines
from inference.types import ClinicalFacts

ROWS = [
    # --- category 1: benign calcification / fat
    ("calcified any size", N(20.0, "calcified"), "1"),
    ("fat-containing", N(9.0, "solid", fat=True), "1"),
    # --- solid, baseline
    ("solid B <6", N(5.9, "solid"), "2"),
    ("solid B 6", N(6.0, "solid"), "3"),
    ("solid B 7.9", N(7.9, "solid"), "3"),
    ("solid B 8", N(8.0, "solid"), "4A"),
    ("solid B 14.9", N(14.9, "solid"), "4A"),
    ("solid B 15", N(15.0, "solid"), "4B"),
    # --- solid, new
    ("solid N <4", N(3.9, "solid", "new"), "2"),
    ("solid N 4", N(4.0, "solid", "new"), "3"),
    ("solid N 5.9", N(5.9, "solid", "new"), "3"),
    ("solid N 6", N(6.0, "solid", "new"), "4A"),
    ("solid N 7.9", N(7.9, "solid", "new"), "4A"),
    ("solid N 8", N(8.0, "solid", "new"), "4B"),
    # --- solid, growing
    ("solid G <8", N(7.9, "solid", "growing"), "4A"),
    ("solid G 8", N(8.0, "solid", "growing"), "4B"),
    ("solid slow grower", N(5.0, "solid", "growing", slow_growing=True), "4B"),
    # --- solid, juxtapleural (v2022)
    ("juxtapleural B 9.9", N(9.9, "solid", juxtapleural=True), "2"),
    ("juxtapleural N 9.9", N(9.9, "solid", "new", juxtapleural=True), "2"),
    ("juxtapleural B 10", N(10.0, "solid", juxtapleural=True), "4A"),
    ("juxtapleural spiculated", N(9.0, "solid", juxtapleural=True, spiculated=True), "4A"),
    ("juxtapleural growing", N(7.0, "solid", "growing", juxtapleural=True), "4A"),
    # --- part-solid, baseline
    ("part-solid B <6 total", N(5.9, "part-solid", solid_component_mm=3.0), "2"),
    ("part-solid B >=6, solid <6", N(10.0, "part-solid", solid_component_mm=5.9), "3"),
    ("part-solid B solid 6", N(10.0, "part-solid", solid_component_mm=6.0), "4A"),
    ("part-solid B solid 7.9", N(12.0, "part-solid", solid_component_mm=7.9), "4A"),
    ("part-solid B solid 8", N(12.0, "part-solid", solid_component_mm=8.0), "4B"),
    # --- part-solid, new / growing
    ("part-solid N <6 total", N(5.9, "part-solid", "new", solid_component_mm=2.0), "3"),
    ("part-solid N solid <4", N(9.0, "part-solid", "new", solid_component_mm=3.9), "4A"),
    ("part-solid N solid 4", N(9.0, "part-solid", "new", solid_component_mm=4.0), "4B"),
    ("part-solid G solid <4", N(9.0, "part-solid", "growing", solid_component_mm=3.0), "4A"),
    ("part-solid G solid 4", N(9.0, "part-solid", "growing", solid_component_mm=4.0), "4B"),
    # --- ground glass
    ("GGN B <30", N(29.9, "ground-glass"), "2"),
    ("GGN N <30", N(20.0, "ground-glass", "new"), "2"),
    ("GGN G <30", N(20.0, "ground-glass", "growing"), "2"),
    ("GGN B 30", N(30.0, "ground-glass"), "3"),
    ("GGN N 30", N(31.0, "ground-glass", "new"), "3"),
    ("GGN stable >=30", N(32.0, "ground-glass", "stable"), "2"),
    ("GGN slowly growing >=30", N(32.0, "ground-glass", "growing"), "2"),
    # --- stepped management at follow-up
    ("stable cat-3 size -> 2", N(7.0, "solid", "stable"), "2"),
    ("stable cat-4A size -> 3", N(10.0, "solid", "stable"), "3"),
    ("stable cat-4B size stays", N(16.0, "solid", "stable"), "4B"),
    ("stable, was 3 already -> 2", N(7.0, "solid", "stable", prior_mean_diameter_mm=6.5), "2"),
    ("stable but crossed 6 mm -> by size 3", N(6.9, "solid", "stable", prior_mean_diameter_mm=5.5), "3"),
    ("stable but crossed 8 mm -> by size 4A", N(8.4, "solid", "stable", prior_mean_diameter_mm=7.2), "4A"),
    # --- 4X: extra suspicious features on a 3/4 nodule
    ("4X", N(7.0, "solid", suspicious_features=True), "4X"),
    ("4X not for cat 2", N(5.0, "solid", suspicious_features=True), "2"),
    # --- one-decimal rounding of the mean diameter (v2022)
    ("5.96 rounds to 6.0", N(5.96, "solid"), "3"),
    ("5.94 rounds to 5.9", N(5.94, "solid"), "2"),
]


@pytest.mark.parametrize("label,nodule,expected", ROWS, ids=[r[0] for r in ROWS])
def test_category_table(label: str, nodule: N, expected: str) -> None:
    assert nodule_category(nodule) == expected


def test_part_solid_needs_solid_component() -> None:
    with pytest.raises(ValueError):
        nodule_category(N(10.0, "part-solid"))


def test_exam_is_most_suspicious_and_management() -> None:
    assert exam_category([]) == "1"
    assert exam_category(["2", "4A", "3"]) == "4A"
    assert exam_category(["4B", "4X"]) == "4X"
    assert "12 months" in management_text("2")
    assert "6-month" in management_text("3")
    assert "3-month" in management_text("4A")
    assert "tissue sampling" in management_text("4B")


def _n(i: int, d: float, t: str = "solid", **kw: object) -> dict:
    n = {"id": i, "mean_diameter_mm": d, "long_axis_mm": d + 1, "short_axis_mm": d - 1, "type": t,
         "spiculated": False, "juxtapleural": False, "location": {"upper_lobe": False}, "review": "accepted"}
    n.update(kw)
    return n


def test_exam_from_findings_baseline_vs_followup() -> None:
    facts = ClinicalFacts(age_years=66, sex="M", family_history_lung_cancer=False, screening=True,
                          smoking_status="former", pack_years=35)
    base = {"patient": {}, "lungs": {"emphysema_laa950_percent": 1.0},
            "nodules": [_n(1, 7.0), _n(2, 3.0), _n(3, 25.0, review="rejected")]}
    apply_guidelines(base, facts, prior_available=False)
    assert [n.get("lung_rads") for n in base["nodules"]] == ["3", "2", None]
    assert base["exam"]["lung_rads"]["category"] == "3"
    assert base["exam"]["lung_rads"]["version"] == "v2022"
    assert "6-month" in base["exam"]["lung_rads"]["management"]

    fu = {"patient": {}, "lungs": {},
          "nodules": [_n(1, 9.0, growth={"status": "grown", "days": 365}),
                      _n(2, 5.0, growth={"status": "new", "days": 365}),
                      _n(3, 7.0, growth={"status": "stable", "days": 365})]}
    apply_guidelines(fu, facts, prior_available=True)
    assert [n["lung_rads"] for n in fu["nodules"]] == ["4B", "3", "2"]
    assert fu["exam"]["lung_rads"]["category"] == "4B"
    assert "tissue sampling" in fu["exam"]["lung_rads"]["management"]


def test_missing_solid_component_is_assumed_and_warned() -> None:
    f = {"patient": {"age_years": 60, "sex": "F"}, "lungs": {},
         "nodules": [_n(1, 10.0, "part-solid")]}
    warnings = apply_guidelines(f, None, prior_available=False)
    assert f["nodules"][0]["lung_rads"] == "4B"  # solid part assumed = 10 mm >= 8 mm
    assert any("solid-component size missing" in w for w in warnings)


def test_nodule_without_type_is_not_guessed() -> None:
    f = {"patient": {"age_years": 60, "sex": "M"}, "lungs": {},
         "nodules": [_n(1, 9.0, None), _n(2, 4.0)]}
    warnings = apply_guidelines(f, None, prior_available=False)
    assert f["nodules"][0]["lung_rads"] is None and f["nodules"][0]["brock_probability"] is None
    assert any("nodule 1" in w and "type" in w for w in warnings)
    assert f["exam"]["lung_rads"]["category"] == "2"
    assert f["exam"]["lung_rads"]["uncategorised_nodules"] == [1] and "understated" in f["exam"]["lung_rads"]["note"]


def test_a_calcified_nodule_is_category_1_and_the_reader_is_asked_to_confirm_its_pattern() -> None:
    """Category 1 stands on a benign calcification pattern: the line under it must say so and name the
    patterns Lung-RADS accepts, not claim the pattern went unchecked."""
    f = {"patient": {"age_years": 60, "sex": "F"}, "lungs": {}, "nodules": [_n(1, 9.0, "calcified")]}
    warnings = apply_guidelines(f, None, prior_available=False)
    assert f["nodules"][0]["lung_rads"] == "1"
    line = [w for w in warnings if w.startswith("Lung-RADS: nodule 1")]
    assert len(line) == 1 and "confirm" in line[0] and "popcorn" in line[0] and "not checked" not in line[0]
