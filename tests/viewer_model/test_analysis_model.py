"""The Qt-free analysis state: review logic, derived numbers, persistence."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from inference import paths
from inference.types import Volume
from viewer.model.analysis import AnalysisState, lung_rads_rank, measure_mask, review_path_for

FIXTURE = Path(__file__).resolve().parents[1] / "viewer_qt" / "test_docks_findings.json"


def _findings() -> dict:
    return json.loads(FIXTURE.read_text())


def _volume_and_labels(f: dict) -> tuple[Volume, np.ndarray]:
    """A small CT-shaped volume with one sphere per nodule at the fixture centres."""
    s = f["series"]
    shape = tuple(s["shape_zyx"])
    vol = Volume(np.full(shape, -800, np.int16), tuple(s["spacing_zyx_mm"]), tuple(s["origin_lps_mm"]),
                 np.asarray(s["direction"], float).reshape(3, 3))
    labels = np.zeros(shape, np.int16)
    zz, yy, xx = np.indices(shape)
    sp = np.asarray(s["spacing_zyx_mm"])
    for n in f["nodules"]:
        c = np.asarray(n["center_voxel_zyx"])
        r = n["mean_diameter_mm"] / 2
        d2 = ((zz - c[0]) * sp[0]) ** 2 + ((yy - c[1]) * sp[1]) ** 2 + ((xx - c[2]) * sp[2]) ** 2
        labels[d2 <= r * r] = n["id"]
    return vol, labels


@pytest.fixture(autouse=True)
def _own_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with no saved review (the session-wide data dir is shared)."""
    monkeypatch.setenv("CLINVIEW_DATA_DIR", str(tmp_path / "userdata"))


@pytest.fixture
def state() -> AnalysisState:
    f = _findings()
    vol, labels = _volume_and_labels(f)
    st = AnalysisState()
    st.set_result(f, labels, None, volume=vol, out_dir="/nonexistent")
    return st


def test_reject_removes_from_visible_ids_counts_and_lists(state: AnalysisState) -> None:
    events: list[str] = []
    state.subscribe(events.append)
    assert state.visible_ids() == [1, 2, 3]
    assert state.summary().nodule_count == 3
    state.set_review(2, "rejected")
    assert events == ["review"]
    assert state.visible_ids() == [1, 3]
    summ = state.summary()
    assert (summ.nodule_count, summ.rejected_count, summ.pending_count) == (2, 1, 2)
    assert [n["id"] for n in state.nodules()] == [1, 3]
    assert state.review_of(2) == "rejected"
    # the lung numbers come from the worker unchanged
    assert summ.emphysema_percent == pytest.approx(7.8)


def test_exam_category_recomputed_from_remaining_findings(state: AnalysisState) -> None:
    exam = state.exam_category()
    assert (exam.category, exam.recomputed) == ("4A", False)
    assert "v2022" in exam.source
    state.set_review(1, "rejected")
    exam = state.exam_category()
    # nodule 2 (category 3) is now the most suspicious; worker management text no longer applies
    assert exam.category == "3" and exam.recomputed
    assert exam.management is None
    assert "#1" in exam.note and "#2" in exam.note
    # this hand-written analysis has no Brock logit terms (as before terms were recorded): the
    # numbers cannot follow the new count, and the reason says so per nodule
    assert "Brock of nodule #2 was computed before your review (no terms to re-score it)" in state.stale_reasons()
    state.set_review(2, "rejected")
    state.set_review(3, "rejected")
    assert state.exam_category().category == "1"
    assert state.summary().nodule_count == 0
    # accepting back restores the worker's own category
    for i in (1, 2, 3):
        state.set_review(i, "accepted")
    assert state.exam_category().category == "4A"
    assert not state.exam_category().recomputed


def test_review_persisted_and_restored_on_reopen(state: AnalysisState) -> None:
    state.set_review(1, "accepted")
    state.set_review(3, "rejected")
    p = state.review_path()
    assert p is not None and p.exists()
    assert p.parent.parent == paths.data_dir() / "studies"
    assert p == review_path_for(state.findings["series"]["series_instance_uid"])

    f = _findings()
    vol, labels = _volume_and_labels(f)
    reopened = AnalysisState()
    reopened.set_result(f, labels, None, volume=vol)
    assert reopened.review_of(1) == "accepted"
    assert reopened.review_of(3) == "rejected"
    assert reopened.review_of(2) == "pending"
    assert reopened.visible_ids() == [1, 2]


def test_restore_matches_by_centre_when_a_rerun_renumbers(state: AnalysisState) -> None:
    state.set_review(2, "rejected")
    f = _findings()
    vol, labels = _volume_and_labels(f)
    # a re-run lists the nodules in another order with other ids
    f["nodules"] = list(reversed(f["nodules"]))
    remap = {1: 30, 2: 20, 3: 10}
    new_labels = np.zeros_like(labels)
    for old, new in remap.items():
        new_labels[labels == old] = new
    for n in f["nodules"]:
        n["id"] = remap[n["id"]]
    reopened = AnalysisState()
    reopened.set_result(f, new_labels, None, volume=vol)
    assert reopened.review_of(20) == "rejected"
    assert sorted(reopened.visible_ids()) == [10, 30]


def test_edit_mask_remeasures_persists_and_restores(state: AnalysisState) -> None:
    before = state.nodule(1)
    mask = state.nodule_mask(1)
    assert mask is not None and mask.any()
    # erase the upper half of the nodule (as a reader would with the eraser)
    zc = int(before["center_voxel_zyx"][0])
    edited = mask.copy()
    edited[zc + 1:] = False
    meas = state.set_nodule_mask(1, edited)
    after = state.nodule(1)
    assert after["edited"] and after["review"] == "accepted"
    assert after["volume_mm3"] == pytest.approx(edited.sum() * 1.25 * 0.8 * 0.8, rel=1e-3)
    assert after["volume_mm3"] < 0.7 * float((mask.sum()) * 1.25 * 0.8 * 0.8)
    assert after["center_lps_mm"][2] < before["center_lps_mm"][2]  # centre moved down (z)
    assert meas["mean_diameter_mm"] > 0
    assert any("#1 was edited" in r for r in state.stale_reasons())
    # other nodules untouched
    assert state.nodule_mask(2).sum() > 0

    f = _findings()
    vol, labels = _volume_and_labels(f)
    reopened = AnalysisState()
    reopened.set_result(f, labels, None, volume=vol)
    assert reopened.nodule(1)["edited"]
    assert np.array_equal(reopened.nodule_mask(1), edited)
    assert reopened.nodule(1)["volume_mm3"] == pytest.approx(after["volume_mm3"])


def test_measure_mask_on_a_known_rectangle() -> None:
    m = np.zeros((5, 40, 40), bool)
    m[2, 10:20, 10:16] = True  # 10 x 6 pixels of 0.5 mm → 5 mm x 3 mm, one slice of 2 mm
    r = measure_mask(m, (2.0, 0.5, 0.5))
    assert r["volume_mm3"] == pytest.approx(60 * 2.0 * 0.25)
    # the long axis is the rectangle's diagonal; the short axis its perpendicular extent
    assert r["long_axis_mm"] == pytest.approx(np.hypot(4.5, 2.5) + 0.5, abs=0.06)
    assert 2.5 < r["short_axis_mm"] < 5.0
    assert measure_mask(np.zeros((2, 2, 2), bool), (1, 1, 1))["volume_mm3"] == 0.0


def test_identity_conflict_blocks_the_mismatched_source() -> None:
    f = _findings()
    f["identity"] = {"consistent": False, "conflicts": [
        {"field": "patient_id", "values": {"dicom": "CV-DEMO-0001", "genomics": "CV-OTHER-9"}}]}
    st = AnalysisState()
    events: list[str] = []
    st.subscribe(events.append)
    st.set_result(f)
    assert st.identity_blocking()
    blocked = st.blocked_sections()
    assert "genomics" in blocked and "suggestions" in blocked
    assert "labs" not in blocked
    assert any("genomics says 'CV-OTHER-9'" in line for line in st.identity_lines())
    st.confirm_identity()
    assert not st.identity_blocking() and st.blocked_sections() == set()
    assert events[-1] == "identity"


def test_missing_sections_and_bad_saved_review_do_not_crash(tmp_path: Path) -> None:
    st = AnalysisState()
    st.set_result({"schema": "clinview.findings/1", "series": {"series_instance_uid": "1.2.3"},
                   "nodules": [{"id": 1}, {"no_id": True}]})
    assert st.visible_ids() == [1]
    assert st.exam_category().category is None
    assert st.summary().right_lung_ml is None
    assert st.missing_inputs() == []
    p = st.review_path()
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("{not json")
    st2 = AnalysisState()
    st2.set_result(copy.deepcopy(st.findings))
    assert st2.review_of(1) == "pending"
    assert any("unreadable" in i.one_line() and str(p) in i.one_line() for i in st2.issues)


def test_missing_inputs_collects_risk_missing_and_brock_assumptions(state: AnalysisState) -> None:
    lines = state.missing_inputs()
    assert any("family history" in line for line in lines)
    # the same assumption repeated per nodule appears once
    assert len([line for line in lines if "family history" in line]) <= 2


def test_the_risk_panel_says_each_assumption_once_however_the_engine_worded_it(state: AnalysisState) -> None:
    """The engine repeats the risk model's notes and the Brock assumptions among its warnings, with
    other source prefixes; the panel lists each once and keeps every warning it does not already say."""
    note = "Risk model: genomic variants enter as driver-present flags (EGFR, KRAS, other)"
    emph = "emphysema present from CT: LAA-950 7.1 % (>= 5 % threshold, an assumption)"
    state.findings["risk"]["notes"] = [note]
    for n in state.findings["nodules"]:
        n.setdefault("brock", {"probability": 0.1})["assumptions"] = [emph]
    other = "Lung-RADS: nodule 5: calcified, filed as a benign pattern (category 1)"
    state.findings["warnings"] = [f"Brock: {emph}", other, f"risk model: {note}", f"risk model: {note.upper()}"]
    lines = state.missing_inputs()
    assert note in lines and any(line.endswith(emph) and line.startswith("Brock (nodules #1") for line in lines)
    assert state.unstated_warnings() == [other]
    assert len(state.warnings()) == 4  # the contract's list itself is untouched


def test_lung_rads_rank_orders_categories() -> None:
    assert lung_rads_rank("4B") > lung_rads_rank("4A") > lung_rads_rank("3") > lung_rads_rank("2")
    assert lung_rads_rank("4X") > lung_rads_rank("4B")
    assert lung_rads_rank("4A S") == lung_rads_rank("4A")
    assert lung_rads_rank("banana") == -1


def test_identity_block_from_the_clinical_helper_shape() -> None:
    """mismatched_sources (inference.clinical.identity) decides what is hidden."""
    f = _findings()
    f["identity"] = {
        "consistent": False,
        "conflicts": [{"field": "birth_date", "values": {"dicom": "1962-03-14", "labs:labs.csv": "1970-01-01",
                                                         "genomics:tumour.vcf": "1962-03-14"}}],
        "reference": "dicom", "mismatched_sources": ["labs:labs.csv"], "confirmed": False,
        "withheld_sources": ["labs.csv"]}
    st = AnalysisState()
    st.set_result(f)
    blocked = st.blocked_sections()
    assert {"labs", "derived", "suggestions"} <= blocked and "genomics" not in blocked
    assert any("held back: labs.csv" in line for line in st.identity_lines())
    f["identity"]["confirmed"] = True
    st.set_result(f)
    assert not st.identity_blocking()


def test_deep_model_missing_inputs_and_rejected_target(state: AnalysisState) -> None:
    state.findings["risk"]["missing"] = ["family history"]
    state.findings["risk"]["nodule_id"] = 1
    assert "Deep model: family history not given (masked, not filled)" in state.missing_inputs()
    state.set_review(1, "rejected")
    assert any("nodule #1, which you rejected" in r for r in state.stale_reasons())


def test_identity_confirmation_is_not_inherited_by_a_later_analysis(tmp_path: Path) -> None:
    f = _findings()
    f["identity"] = {"consistent": False, "conflicts": [
        {"field": "patient_id", "values": {"dicom": "CV-DEMO-0001", "genomics": "CV-OTHER-9"}}]}
    st = AnalysisState()
    st.set_result(copy.deepcopy(f))
    st.confirm_identity()
    st.set_review(1, "accepted")  # saves review.json (with the confirmation on record)
    assert json.loads(st.review_path().read_text())["identity_confirmed"] is True
    later = AnalysisState()
    later.set_result(copy.deepcopy(f))
    assert later.review_of(1) == "accepted"
    assert later.identity_blocking()


def _scored_state() -> tuple[AnalysisState, dict]:
    """The fixture's nodules scored by the guidelines as the worker scores them (with Brock's terms)."""
    from inference.clinical.scoring import apply_guidelines
    from inference.types import ClinicalFacts

    f = _findings()
    for n in f["nodules"]:
        n.pop("brock", None), n.pop("brock_probability", None), n.pop("growth", None)
        n["spiculated"] = False  # as the CT heuristic nearly always reports it
    apply_guidelines(f, ClinicalFacts(age_years=64, sex="M", family_history_lung_cancer=True), prior_available=False)
    vol, labels = _volume_and_labels(f)
    st = AnalysisState()
    st.set_result(copy.deepcopy(f), labels, None, volume=vol)
    return st, f


def _rescored_afresh(f: dict, change) -> dict:
    """What the guidelines give for the findings as reviewed, scored from scratch."""
    from inference.clinical.scoring import apply_guidelines
    from inference.types import ClinicalFacts

    g = copy.deepcopy(f)
    change(g)
    apply_guidelines(g, ClinicalFacts(age_years=64, sex="M", family_history_lung_cancer=True), prior_available=False)
    return {n["id"]: n for n in g["nodules"]}


def test_brock_follows_a_rejection_without_a_rerun() -> None:
    st, f = _scored_state()
    p_before = st.nodule(2)["brock_probability"]
    st.set_review(3, "rejected")  # one nodule fewer on the scan: the count term moves
    fresh = _rescored_afresh(f, lambda g: g["nodules"][2].update(review="rejected"))
    assert st.nodule(2)["brock_probability"] == pytest.approx(fresh[2]["brock_probability"], abs=2e-4)
    assert st.nodule(2)["brock_probability"] != pytest.approx(p_before, abs=1e-4)
    assert not any("Brock" in r for r in st.stale_reasons())
    st.set_review(3, "accepted")  # back as it was: the analysis's own numbers again
    assert st.nodule(2)["brock_probability"] == p_before


def test_spiculation_call_rescores_saves_and_restores() -> None:
    st, f = _scored_state()
    assert not st.nodule(1)["spiculated"]
    p_before, cat_before = st.nodule(1)["brock_probability"], st.nodule(1)["lung_rads"]
    st.set_spiculated(1, True)
    n1 = st.nodule(1)
    assert n1["spiculated"] and n1["spiculated_source"] == "reader"
    fresh = _rescored_afresh(f, lambda g: g["nodules"][0].update(spiculated=True))
    assert n1["brock_probability"] == pytest.approx(fresh[1]["brock_probability"], abs=2e-4)
    assert n1["brock_probability"] > 1.5 * p_before  # odds x 2.2
    assert n1["lung_rads"] == fresh[1]["lung_rads"] == cat_before  # a solid 9 mm nodule: 4A either way
    vol, labels = _volume_and_labels(f)
    reopened = AnalysisState()
    reopened.set_result(copy.deepcopy(f), labels, None, volume=vol)
    assert reopened.nodule(1)["spiculated"] and reopened.nodule(1)["brock_probability"] == n1["brock_probability"]
    reopened.set_spiculated(1, False)  # the analysis's own value again: the call is gone
    assert "spiculated_source" not in reopened.nodule(1)
    assert reopened.nodule(1)["brock_probability"] == p_before


def test_an_edited_mask_recategorises_its_nodule() -> None:
    st, f = _scored_state()
    assert st.nodule(1)["lung_rads"] == "4A"  # solid 9.4 mm at baseline
    mask = st.nodule_mask(1)
    zc = int(st.nodule(1)["center_voxel_zyx"][0])
    yy, xx = np.nonzero(mask[zc])
    cy, cx = yy.mean(), xx.mean()
    small = np.zeros_like(mask)  # the reader erases it down to its central 5 mm on one slice
    gy, gx = np.ogrid[: mask.shape[1], : mask.shape[2]]
    small[zc] = mask[zc] & (np.hypot(gy - cy, gx - cx) <= 3.0)
    meas = st.set_nodule_mask(1, small)
    n1 = st.nodule(1)
    sizes = {k: meas[k] for k in ("long_axis_mm", "short_axis_mm", "mean_diameter_mm")}
    fresh = _rescored_afresh(f, lambda g: g["nodules"][0].update(sizes))
    assert meas["mean_diameter_mm"] < 6.0
    assert n1["lung_rads"] == fresh[1]["lung_rads"] == "2"
    assert n1["brock_probability"] == pytest.approx(fresh[1]["brock_probability"], abs=2e-4)
    exam = st.exam_category()
    assert exam.recomputed and exam.category == "3" and "#1 re-categorised" in exam.note


def test_an_analysis_run_with_the_review_is_current_until_the_review_changes() -> None:
    """The worker applied the saved review (findings["reader_review"]): nothing is stale and the exam is
    the worker's own; a decision made after it makes the numbers move again. The reader's margin call
    that the analysis applied is saved again with the next review save, not dropped."""
    from inference.review import apply_review

    st, f = _scored_state()
    g = copy.deepcopy(f)
    scores = ("brock", "brock_probability", "lung_rads")
    g["nodules"] = [{k: v for k, v in n.items() if k not in scores} for n in g["nodules"]]
    centre = [n["center_lps_mm"] for n in f["nodules"]]
    apply_review(g, {"nodules": [{"review": "rejected", "center_lps_mm": centre[2]},
                                 {"review": "accepted", "spiculated": True, "center_lps_mm": centre[1]}]}, "review.json")
    from inference.clinical.scoring import apply_guidelines
    from inference.types import ClinicalFacts

    apply_guidelines(g, ClinicalFacts(age_years=64, sex="M", family_history_lung_cancer=True), prior_available=False)
    g["risk"] = {"probability": 0.3, "nodule_id": 1}
    vol, labels = _volume_and_labels(g)
    st = AnalysisState()
    st.set_result(copy.deepcopy(g), labels, None, volume=vol)
    assert st.review_of(3) == "rejected" and st.nodule(2)["spiculated_source"] == "reader"
    assert not st.review_changed_findings() and st.stale_reasons() == []
    assert not st.exam_category().recomputed
    assert st.nodule(2)["brock_probability"] == g["nodules"][1]["brock_probability"]  # the worker's, not re-scored
    st.set_review(1, "accepted")  # saves the review: the analysis's margin call goes with it
    saved = {e["id"]: e for e in json.loads(st.review_path().read_text())["nodules"]}
    assert saved[2]["spiculated"] is True and saved[3]["review"] == "rejected"
    st.set_review(3, "pending")  # un-rejected after the analysis: the numbers follow the review again
    assert st.review_changed_findings()
    assert "the deep model's probability was computed before review" in st.stale_reasons()
