"""Fleischner 2017: every table cell, the scope exclusions and the risk rules."""

from __future__ import annotations

import pytest

from inference.clinical.fleischner import (
    fleischner_applicability,
    fleischner_recommendation,
    fleischner_risk,
    size_bin,
)
from inference.clinical.scoring import apply_guidelines
from inference.types import ClinicalFacts

SOLID = [
    (False, "low", 5.0, "No routine follow-up"),
    (False, "low", 7.0, "CT at 6-12 months, then consider CT at 18-24 months"),
    (False, "low", 9.0, "Consider CT at 3 months, PET/CT or tissue sampling"),
    (False, "high", 5.0, "Optional CT at 12 months"),
    (False, "high", 7.0, "CT at 6-12 months, then CT at 18-24 months"),
    (False, "high", 9.0, "Consider CT at 3 months, PET/CT or tissue sampling"),
    (True, "low", 5.0, "No routine follow-up"),
    (True, "low", 7.0, "CT at 3-6 months, then consider CT at 18-24 months"),
    (True, "low", 9.0, "CT at 3-6 months, then consider CT at 18-24 months"),
    (True, "high", 5.0, "Optional CT at 12 months"),
    (True, "high", 7.0, "CT at 3-6 months, then CT at 18-24 months"),
    (True, "high", 9.0, "CT at 3-6 months, then CT at 18-24 months"),
]


@pytest.mark.parametrize("multiple,risk,d,expected", SOLID)
def test_solid_cells(multiple: bool, risk: str, d: float, expected: str) -> None:
    rec = fleischner_recommendation(kind="solid", mean_diameter_mm=d, multiple=multiple, risk=risk)  # type: ignore[arg-type]
    assert rec.startswith(expected)


SUBSOLID = [
    ("ground-glass", False, 5.0, "No routine follow-up"),
    ("ground-glass", False, 6.0, "CT at 6-12 months to confirm persistence, then CT every 2 years until 5 years"),
    ("part-solid", False, 5.0, "No routine follow-up"),
    ("part-solid", False, 8.0, "CT at 3-6 months to confirm persistence"),
    ("ground-glass", True, 4.0, "CT at 3-6 months; if stable, consider CT at 2 and 4 years"),
    ("part-solid", True, 12.0, "CT at 3-6 months; subsequent management based on the most suspicious"),
]


@pytest.mark.parametrize("kind,multiple,d,expected", SUBSOLID)
@pytest.mark.parametrize("risk", ["low", "high"])
def test_subsolid_cells_do_not_depend_on_risk(kind: str, multiple: bool, d: float, expected: str, risk: str) -> None:
    rec = fleischner_recommendation(kind=kind, mean_diameter_mm=d, multiple=multiple, risk=risk)  # type: ignore[arg-type]
    assert rec.startswith(expected)


def test_part_solid_with_big_solid_part_flagged() -> None:
    rec = fleischner_recommendation(kind="part-solid", mean_diameter_mm=12, multiple=False, risk="low",
                                    solid_component_mm=7)
    assert "highly suspicious" in rec


@pytest.mark.parametrize("d,b", [(5.4, "<6"), (5.5, "6-8"), (8.4, "6-8"), (8.5, ">8")])
def test_size_bins_round_to_nearest_mm(d: float, b: str) -> None:
    assert size_bin(d) == b


@pytest.mark.parametrize(
    "kw,reason",
    [
        (dict(age_years=30), "age 30 < 35"),
        (dict(screening=True), "screening"),
        (dict(known_cancer=True), "known primary cancer"),
        (dict(immunocompromised=True), "immunocompromised"),
    ],
)
def test_not_applicable(kw: dict, reason: str) -> None:
    base = dict(age_years=60, screening=False, known_cancer=False, immunocompromised=False)
    base.update(kw)
    applies, excl, _ = fleischner_applicability(**base)
    assert not applies and any(reason in e for e in excl)


def test_unknown_scope_applies_but_is_named() -> None:
    applies, excl, unknowns = fleischner_applicability(age_years=None, screening=None, known_cancer=None,
                                                       immunocompromised=None)
    assert applies and not excl and len(unknowns) == 4


@pytest.mark.parametrize(
    "kw,risk",
    [
        (dict(smoking_status="never", pack_years=None, family_history=False, emphysema=False), "low"),
        (dict(smoking_status="former", pack_years=5, family_history=False, emphysema=False), "low"),
        (dict(smoking_status="former", pack_years=30, family_history=False, emphysema=False), "high"),
        (dict(smoking_status="never", pack_years=None, family_history=True, emphysema=False), "high"),
        (dict(smoking_status="never", pack_years=None, family_history=False, emphysema=True), "high"),
        (dict(smoking_status=None, pack_years=None, family_history=None, emphysema=False), "high"),
    ],
)
def test_risk(kw: dict, risk: str) -> None:
    assert fleischner_risk(**kw)[0] == risk


def test_exam_block_in_findings() -> None:
    nod = {"id": 1, "mean_diameter_mm": 7.0, "long_axis_mm": 8, "short_axis_mm": 6, "type": "solid",
           "location": {"upper_lobe": True}, "review": "pending"}
    f = {"patient": {"age_years": 50, "sex": "F"}, "lungs": {"emphysema_laa950_percent": 0.5}, "nodules": [nod]}
    facts = ClinicalFacts(smoking_status="never", family_history_lung_cancer=False, screening=False,
                          known_cancer=False, immunocompromised=False)
    warnings = apply_guidelines(f, facts, prior_available=False)
    fl = f["exam"]["fleischner"]
    assert fl["applies"] is True
    assert fl["recommendation"].startswith("CT at 6-12 months, then consider")
    assert "Fleischner" in fl["source"]
    assert not any(w.startswith("Fleischner") for w in warnings)

    f2 = {"patient": {"age_years": 50}, "lungs": {}, "nodules": [dict(nod)]}
    apply_guidelines(f2, ClinicalFacts(screening=True), prior_available=False)
    assert f2["exam"]["fleischner"]["applies"] is False
    assert "screening" in f2["exam"]["fleischner"]["reason"]
