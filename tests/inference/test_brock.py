"""Brock (PanCan model 2b): the fact sheet's worked examples and the scoring glue."""

from __future__ import annotations

import copy
import math

import pytest

from inference.clinical.brock import brock_probability, brock_result
from inference.clinical.scoring import apply_guidelines
from inference.types import ClinicalFacts


def test_example_a_part_solid_spiculated_woman() -> None:
    r = brock_result(
        age_years=62, female=True, family_history=True, emphysema=True, size_mm=10,
        nodule_type="part-solid", upper_lobe=True, nodule_count=1, spiculated=True,
    )
    assert r.logit == pytest.approx(-0.4118, abs=1e-3)
    assert r.probability == pytest.approx(0.3985, abs=5e-4)
    assert r.terms["size"] == pytest.approx(3.1297, abs=1e-3)
    assert r.terms["nodule_count"] == pytest.approx(0.2472, abs=1e-4)


def test_example_b_small_solid_man() -> None:
    p = brock_probability(
        age_years=60, female=False, family_history=False, emphysema=False, size_mm=6,
        nodule_type="solid", upper_lobe=False, nodule_count=2, spiculated=False,
    )
    assert p == pytest.approx(1 / (1 + math.exp(5.1193)), rel=1e-3)
    assert p == pytest.approx(0.0059, abs=1e-4)


def test_example_c_reference_patient_is_intercept() -> None:
    r = brock_result(
        age_years=62, female=False, family_history=False, emphysema=False, size_mm=4,
        nodule_type="solid", upper_lobe=False, nodule_count=4, spiculated=False,
    )
    assert r.logit == pytest.approx(-6.7892, abs=1e-6)
    assert r.probability == pytest.approx(0.0011, abs=5e-5)


def test_centred_intercept_matches_uncentred_form() -> None:
    # Eur Radiol 2019 prints the same model with intercept 0.2761 and raw age/count/size^-0.5.
    age, size, count = 71.0, 13.0, 3
    r = brock_result(
        age_years=age, female=False, family_history=False, emphysema=False, size_mm=size,
        nodule_type="solid", upper_lobe=False, nodule_count=count, spiculated=False,
    )
    uncentred = 0.2761 + 0.0287 * age - 5.3854 * (size / 10) ** -0.5 - 0.0824 * count
    assert r.logit == pytest.approx(uncentred, abs=2e-4)


def test_ground_glass_lowers_and_type_aliases() -> None:
    kw = dict(age_years=65, female=True, family_history=False, emphysema=False, size_mm=12,
              upper_lobe=True, nodule_count=1, spiculated=False)
    assert brock_probability(nodule_type="GGN", **kw) < brock_probability(nodule_type="solid", **kw)
    assert brock_probability(nodule_type="solid", **kw) < brock_probability(nodule_type="part_solid", **kw)


@pytest.mark.parametrize("bad", [dict(size_mm=0), dict(nodule_count=0), dict(nodule_type="calcified")])
def test_invalid_inputs_refused(bad: dict) -> None:
    kw = dict(age_years=65, female=True, family_history=False, emphysema=False, size_mm=12,
              nodule_type="solid", upper_lobe=True, nodule_count=1, spiculated=False)
    kw.update(bad)
    with pytest.raises(ValueError):
        brock_probability(**kw)


def _findings(**nodule_overrides: object) -> dict:
    n = {"id": 1, "long_axis_mm": 10.0, "short_axis_mm": 8.0, "mean_diameter_mm": 9.0, "type": "part-solid",
         "solid_component_mm": 3.0, "spiculated": True, "juxtapleural": False,
         "location": {"side": "right", "lobe": "upper", "upper_lobe": True}, "review": "pending"}
    n.update(nodule_overrides)
    return {"patient": {"age_years": 62, "sex": "F"}, "lungs": {"emphysema_laa950_percent": 12.0},
            "nodules": [n, {"id": 2, "type": "solid", "long_axis_mm": 30, "short_axis_mm": 30,
                            "mean_diameter_mm": 30, "review": "rejected"}]}


def test_scoring_fills_brock_with_source_and_ct_emphysema() -> None:
    f = _findings()
    facts = ClinicalFacts(age_years=62, sex="F", family_history_lung_cancer=True, smoking_status="current",
                          pack_years=40, screening=True)
    warnings = apply_guidelines(f, facts, prior_available=False)
    n1, n2 = f["nodules"]
    # Example A, with emphysema read off the CT (12 % LAA-950 >= 5 %) and 1 non-rejected nodule.
    assert n1["brock_probability"] == pytest.approx(0.3985, abs=5e-4)
    assert "McWilliams" in n1["brock"]["source"]
    assert any("LAA-950 12.0" in w for w in warnings)
    assert "brock_probability" not in n2 and "lung_rads" not in n2  # rejected: untouched


def test_scoring_refuses_brock_without_age_and_says_so() -> None:
    f = _findings()
    f["patient"] = {}
    warnings = apply_guidelines(f, None, prior_available=False)
    assert f["nodules"][0]["brock_probability"] is None
    assert "age unknown" in f["nodules"][0]["brock"]["reason"]
    assert any(w.startswith("Brock:") and "age unknown" in w for w in warnings)
    assert any("family history unknown" in w for w in warnings) is False  # not computed, nothing assumed


def test_scoring_unknown_sex_reports_conservative_value_and_male_alternative() -> None:
    f = _findings()
    f["patient"] = {"age_years": 62}
    warnings = apply_guidelines(f, ClinicalFacts(family_history_lung_cancer=True), prior_available=False)
    assert f["nodules"][0]["brock_probability"] == pytest.approx(0.3985, abs=5e-4)
    assert any("sex unknown" in w and "as male" in w for w in warnings)


def _three_nodules() -> dict:
    def nod(i: int, kind: str, la: float, sa: float, upper: bool, **kw: object) -> dict:
        return {"id": i, "type": kind, "long_axis_mm": la, "short_axis_mm": sa, "mean_diameter_mm": (la + sa) / 2,
                "solid_component_mm": kw.pop("solid", (la + sa) / 2), "location": {"upper_lobe": upper},
                "juxtapleural": kw.pop("juxtapleural", False), "spiculated": False, "review": "pending"}

    return {"patient": {"age_years": 67, "sex": "M"}, "lungs": {"emphysema_laa950_percent": 3.0},
            "nodules": [nod(1, "solid", 11.0, 8.0, True), nod(2, "part-solid", 14.0, 10.0, False, solid=5.0),
                        nod(3, "solid", 7.0, 6.0, False, juxtapleural=True)]}


def test_review_rescoring_equals_scoring_the_reviewed_findings_afresh() -> None:
    """A rejection, a corrected size and a spiculation call, re-scored from the analysis's own
    terms, give what the guidelines give when the reviewed findings are scored from scratch."""
    from inference.clinical.scoring import rescore_reviewed

    facts = ClinicalFacts(age_years=67, sex="M", family_history_lung_cancer=False, smoking_status="former",
                          pack_years=30)
    analysed = _three_nodules()
    apply_guidelines(analysed, facts, prior_available=False)
    before = [n["brock_probability"] for n in analysed["nodules"]]

    def review(f: dict) -> None:
        n1, n2, n3 = f["nodules"]
        n1["review"] = "rejected"
        n2.update(long_axis_mm=9.0, short_axis_mm=7.0, mean_diameter_mm=8.0)  # the reader's corrected mask
        n3["spiculated"] = True

    reviewed = copy.deepcopy(analysed)
    review(reviewed)
    assert rescore_reviewed(reviewed["nodules"], {2, 3}, prior_available=False) == []
    fresh = _three_nodules()
    review(fresh)
    apply_guidelines(fresh, facts, prior_available=False)
    for r, f in zip(reviewed["nodules"][1:], fresh["nodules"][1:]):
        assert r["brock_probability"] == pytest.approx(f["brock_probability"], abs=2e-4)
        assert r["lung_rads"] == f["lung_rads"]
        assert "re-scored after review" in r["brock"]["source"]
    # the review moved the numbers: fewer nodules, a smaller part-solid one, a spiculated juxtapleural one
    assert reviewed["nodules"][1]["brock_probability"] < before[1]
    assert reviewed["nodules"][2]["brock_probability"] > 1.5 * before[2]
    assert (analysed["nodules"][2]["lung_rads"], reviewed["nodules"][2]["lung_rads"]) == ("2", "3")
    assert reviewed["nodules"][0]["brock_probability"] == before[0]  # rejected: left as it was


def test_review_rescoring_without_terms_keeps_the_number_and_says_so() -> None:
    from inference.clinical.scoring import rescore_reviewed

    f = _three_nodules()
    f["nodules"][0]["brock"] = {"probability": 0.2, "source": "an older analysis"}
    f["nodules"][0]["brock_probability"] = 0.2
    f["nodules"][2]["review"] = "rejected"
    notes = rescore_reviewed(f["nodules"], set(), prior_available=False)
    assert notes == ["Brock of nodule #1 was computed before your review (no terms to re-score it)"]
    assert f["nodules"][0]["brock_probability"] == 0.2 and f["nodules"][0]["brock_stale"]


def test_a_saved_review_applied_before_scoring_moves_the_scores() -> None:
    """inference.review.apply_review, as `analyze --review` runs it before the guidelines: matched by
    centre (a re-run may renumber), the rejected nodule gets no score, the reader's margin call enters
    Brock and Lung-RADS."""
    from inference.review import apply_review

    f = _three_nodules()
    for i, n in enumerate(f["nodules"]):
        n["center_lps_mm"] = [10.0 * i, 0.0, 0.0]
    saved = {"schema": "clinview.review/1", "nodules": [
        {"id": 7, "review": "rejected", "center_lps_mm": [1.0, 1.0, 0.0]},  # nodule 1, renumbered since
        {"id": 8, "review": "accepted", "center_lps_mm": [20.0, 2.0, 0.0], "spiculated": True},  # nodule 3
        {"id": 9, "review": "rejected", "center_lps_mm": [90.0, 0.0, 0.0]}]}  # no finding there
    lines = apply_review(f, saved, "review.json")
    facts = ClinicalFacts(age_years=67, sex="M", family_history_lung_cancer=False)
    apply_guidelines(f, facts, prior_available=False)
    n1, n2, n3 = f["nodules"]
    assert n1["review"] == "rejected" and "brock" not in n1
    assert n3["spiculated"] and n3["spiculated_source"] == "reader" and n3["lung_rads"] == "3"
    assert n3["brock"]["logit_terms"]["spiculation"] == pytest.approx(0.7729)
    assert n2["brock"]["logit_terms"]["nodule_count"] == pytest.approx(-0.0824 * (2 - 4), abs=1e-4)
    assert f["reader_review"]["rejected"] == [1] and f["reader_review"]["spiculated"] == {"3": True}
    assert lines == ["review.json: 1 reviewed nodule(s) match no finding of this analysis; their review was not applied"]
