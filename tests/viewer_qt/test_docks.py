"""The analysis docks render a findings.json, and review flows through them.

Real widgets offscreen; the sample findings (test_docks_findings.json) were
written by hand from ../shared/docs/findings-contract.md.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pyqtgraph as pg
import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QColor

from inference.types import Volume
from viewer.model.analysis import AnalysisState
from viewer.widgets.clinical_dock import ClinicalDock
from viewer.widgets.findings_dock import COLUMNS, FindingsDock
from viewer.widgets.identity_banner import lung_rads_color
from viewer.widgets.review_tools import MaskEditor
from viewer.widgets.risk_dock import RiskDock
from viewer.widgets.treatment_dock import BANNER_TEXT, TreatmentDock

FIXTURE = Path(__file__).with_name("test_docks_findings.json")


@pytest.fixture(autouse=True)
def _own_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLINVIEW_DATA_DIR", str(tmp_path / "userdata"))


def sample() -> dict:
    return json.loads(FIXTURE.read_text())


def volume_and_labels(f: dict) -> tuple[Volume, np.ndarray]:
    s = f["series"]
    shape = tuple(s["shape_zyx"])
    sp = np.asarray(s["spacing_zyx_mm"])
    vol = Volume(np.full(shape, -850, np.int16), tuple(sp), tuple(s["origin_lps_mm"]),
                 np.asarray(s["direction"], float).reshape(3, 3))
    labels = np.zeros(shape, np.int16)
    zz, yy, xx = np.indices(shape)
    for n in f["nodules"]:
        c = np.asarray(n["center_voxel_zyx"])
        r = n["mean_diameter_mm"] / 2
        inside = ((zz - c[0]) * sp[0]) ** 2 + ((yy - c[1]) * sp[1]) ** 2 + ((xx - c[2]) * sp[2]) ** 2 <= r * r
        labels[inside] = n["id"]
        vol.array[inside] = 40
    return vol, labels


@pytest.fixture
def state() -> AnalysisState:
    f = sample()
    vol, labels = volume_and_labels(f)
    st = AnalysisState()
    st.set_result(f, labels, None, volume=vol)
    return st


def _col(table, name: str) -> int:
    return [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())].index(name)


@pytest.mark.parametrize("bad", [None, "n/a", float("nan"), True])
def test_a_malformed_size_in_findings_json_shows_a_dash_not_a_made_up_number(qtbot, bad) -> None:
    """findings.json comes from another process or an older version: a missing, textual, NaN or
    boolean diameter or solid component is shown as not reported -- never as "nan" or "1.0 mm"."""
    f = sample()
    part = next(n for n in f["nodules"] if n["type"] == "part-solid")
    part["mean_diameter_mm"] = bad
    part["solid_component_mm"] = bad
    vol, labels = volume_and_labels(sample())
    st = AnalysisState()
    st.set_result(f, labels, None, volume=vol)
    dock = FindingsDock(st)
    qtbot.addWidget(dock)
    t = dock.table
    row = next(r for r in range(t.rowCount()) if t.item(r, 0).text() == str(part["id"]))
    assert t.item(row, _col(t, "⌀ mm")).text() == "—"
    assert t.item(row, _col(t, "Type")).text() == "part-solid"
    # its category was written with a size the file no longer holds: shown, but marked unchecked
    lr = t.item(row, _col(t, "Lung-RADS"))
    assert lr.text() == f"{part['lung_rads']} ?"
    assert "cannot be checked" in lr.toolTip() and "Analyze" in lr.toolTip()
    ok = next(r for r in range(t.rowCount()) if r != row)
    assert "?" not in t.item(ok, _col(t, "Lung-RADS")).text()
    risk = RiskDock(st)
    qtbot.addWidget(risk)
    cells = {risk.table.item(r, 0).text(): risk.table.item(r, 2) for r in range(risk.table.rowCount())}
    assert cells[str(part["id"])].text() == f"{part['lung_rads']} ?" and "cannot be checked" in cells[str(part["id"])].toolTip()


def test_findings_table_summary_and_badges(qtbot, state: AnalysisState) -> None:
    dock = FindingsDock(state)
    qtbot.addWidget(dock)
    t = dock.table
    assert t.rowCount() == 3
    assert [t.horizontalHeaderItem(c).text() for c in range(t.columnCount())] == list(COLUMNS)
    # highest AI probability first; size is the mean diameter
    row0 = [t.item(0, c).text() for c in range(t.columnCount())]
    assert row0[0] == "1" and row0[1] == "9.4" and row0[3] == "RUL" and row0[4] == "87 %"
    assert t.item(0, 3).toolTip() == "Right upper lobe"
    # the solid component of a part-solid nodule sets its Lung-RADS category: the reader sees it; a solid
    # nodule's "solid component" is the nodule itself and is not repeated
    types = {t.item(r, 0).text(): t.item(r, _col(t, "Type")).text() for r in range(t.rowCount())}
    assert types == {"1": "solid, spiculated", "2": "part-solid, solid 3.1 mm", "3": "calcified"}
    lr = t.item(0, _col(t, "Lung-RADS"))
    assert lr.text() == "4A"
    assert lr.background().color() == QColor(lung_rads_color("4A")[0])
    assert lung_rads_color("4B")[0] != lung_rads_color("2")[0]
    text = dock.summary.text()
    text = text.replace("&nbsp;", " ")
    assert "3 nodules" in text and "7.8 %" in text and "2,954 mL" in text
    assert "prior #4" in dock.resolved.text()
    assert "clinview-nodule-det 0.3.0" in dock.source.text()
    assert "what the AI misses: Help › AI models" in dock.source.text()


def _findings_dock(qtbot, f: dict) -> FindingsDock:
    """A findings dock on ``f`` (findings.json as a dict) with its volume and label map."""
    vol, labels = volume_and_labels(f)
    st = AnalysisState()
    st.set_result(f, labels, None, volume=vol)
    dock = FindingsDock(st)
    qtbot.addWidget(dock)
    return dock


def test_a_mass_reported_by_the_mass_rule_heads_the_table_and_says_so(qtbot) -> None:
    """The mass rule reports a large mass the classifier scored low: the reader must see it first,
    marked as the rule's, with the classifier's own number kept and explained."""
    f = sample()
    lowest = min(f["nodules"], key=lambda n: n["probability"])
    lowest["detected_by"] = "mass rule"
    f["model"]["candidates"] = {"version": "0.4.0",
                                "mass_rule": {"min_diameter_mm": 40.0, "min_elongation": 0.5, "min_air_ring": 0.5}}
    dock = _findings_dock(qtbot, f)
    t, c = dock.table, _col(dock.table, COLUMNS[4])
    assert t.item(0, 0).text() == str(lowest["id"])
    assert t.item(0, c).text() == f"{round(lowest['probability'] * 100)} % · mass"
    assert "mass rule (at least 40 mm" in t.item(0, c).toolTip() and "not by the classifier" in t.item(0, c).toolTip()
    # the classifier's findings keep their order and plain probabilities below it
    assert all("mass" not in t.item(r, c).text() for r in range(1, t.rowCount()))
    assert "candidates 0.4.0, mass rule ≥ 40 mm" in dock.source.text()


def test_a_finding_of_the_second_reader_says_which_network_reported_it(qtbot) -> None:
    """A nodule only the dense network reported is marked as its own, its uncalibrated number explained,
    and the source line names that network and version next to the classifier's."""
    f = sample()
    dense = f["nodules"][0]
    dense["detected_by"] = "dense network"
    f["model"]["dense_model"] = {"name": "nodules-dense", "version": "1.0.0", "sha256": "0" * 64}
    dock = _findings_dock(qtbot, f)
    t, c = dock.table, _col(dock.table, COLUMNS[4])
    row = next(r for r in range(t.rowCount()) if t.item(r, 0).text() == str(dense["id"]))
    assert t.item(row, c).text().endswith(" · 2nd")
    tip = t.item(row, c).toolTip()
    assert "nodules-dense 1.0.0" in tip and "not calibrated" in tip
    others = [r for r in range(t.rowCount()) if r != row]
    assert others and all("2nd" not in t.item(r, c).text() and not t.item(r, c).toolTip() for r in others)
    assert "second reader nodules-dense 1.0.0" in dock.source.text()


def test_prior_nodules_not_confirmed_are_listed_apart_from_resolved_ones(qtbot) -> None:
    """A prior nodule with tissue still at its place must not read as "resolved"."""
    f = sample()
    f["resolved_nodules"].append({"prior_id": 7, "prior_mean_diameter_mm": 6.0, "status": "not-confirmed",
                                  "note": "dense tissue remains at its registered place -- check"})
    vol, labels = volume_and_labels(f)
    st = AnalysisState()
    st.set_result(f, labels, None, volume=vol)
    dock = FindingsDock(st)
    qtbot.addWidget(dock)
    resolved, check = dock.resolved.text().split("\n")
    assert resolved.startswith("Resolved since the prior study") and "prior #4" in resolved and "#7" not in resolved
    assert "(check)" in check and "prior #7 (6.0 mm)" in check


def test_click_row_requests_goto_of_its_centre(qtbot, state: AnalysisState) -> None:
    dock = FindingsDock(state)
    qtbot.addWidget(dock)
    dock.show()
    rect = dock.table.visualItemRect(dock.table.item(1, 0))
    with qtbot.waitSignal(dock.goto_requested) as blocker:
        qtbot.mouseClick(dock.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    nid = int(dock.table.item(1, 0).text())
    assert blocker.args[0] == pytest.approx(tuple(state.nodule(nid)["center_lps_mm"]))


def test_reject_key_updates_every_dock(qtbot, state: AnalysisState) -> None:
    findings, risk, treat = FindingsDock(state), RiskDock(state), TreatmentDock(state)
    for w in (findings, risk, treat):
        qtbot.addWidget(w)
    findings.show()
    assert risk.table.rowCount() == 3 and not risk.stale_frame.isVisibleTo(risk)
    assert "Lung-RADS 4A" in risk.exam_label.text()
    findings.select_nodule(1)
    findings.table.setFocus()
    qtbot.keyClick(findings.table, Qt.Key.Key_R)
    assert state.review_of(1) == "rejected"
    # rejected rows stay listed (to undo) but crossed out and last; counts exclude them
    assert findings.table.item(2, 0).text() == "1" and findings.table.item(2, 0).font().strikeOut()
    assert "2 nodules" in findings.summary.text() and "1 rejected" in findings.summary.text()
    assert "Lung-RADS 3 *" in findings.summary.text()  # exam badge, marked recomputed
    assert risk.table.rowCount() == 2
    assert "Lung-RADS 3" in risk.exam_label.text() and "recomputed" in risk.exam_label.text()
    assert risk.stale_frame.isVisibleTo(risk) and "Brock of nodule #2 was computed before" in risk.stale_label.text()
    assert "before your review" in treat.status.text() and "1 refers to a nodule you rejected" in treat.status.text()
    workup = treat.cards[0].findChild(type(treat.status), "SuggestionText")
    assert "rejected nodule #1" in workup.text()
    assert "rejected" not in treat.cards[1].findChild(type(treat.status), "SuggestionText").text()
    # A accepts, and the row goes back among the others
    findings.select_nodule(1)
    qtbot.keyClick(findings.table, Qt.Key.Key_A)
    assert state.review_of(1) == "accepted"
    assert "Lung-RADS 4A" in risk.exam_label.text()
    findings.show_rejected.setChecked(False)
    assert findings.table.rowCount() == 3


def test_risk_dock_names_every_source_and_what_is_missing(qtbot, state: AnalysisState) -> None:
    dock = RiskDock(state)
    qtbot.addWidget(dock)
    assert "Brock/PanCan model 2b, McWilliams NEJM 2013" in dock.brock_source.text()
    assert "ACR Lung-RADS v2022" in dock.exam_source.text()
    assert "3-month LDCT" in dock.exam_label.text()
    assert "Not applicable" in dock.fleischner_label.text() and "screening" in dock.fleischner_label.text()
    assert "Fleischner Society 2017" in dock.fleischner_source.text()
    assert "clinview-nodule-risk 0.3.0" in dock.model_source.text()
    assert "34.0 %" in dock.model_label.text() and "21 %" in dock.model_label.text()
    bars = dock.bars.contributions()
    assert bars[0] == ("mean diameter 9.4 mm", pytest.approx(0.92))
    assert any(v < 0 for _, v in bars) and any(v > 0 for _, v in bars)
    assert "family history" in dock.missing_label.text()
    assert "VAF computed from AD" in dock.missing_label.text()
    brock = [dock.table.item(r, 1).text() for r in range(dock.table.rowCount())]
    assert brock[0] == "18.2 %"
    vdt = dock.table.item(0, 4)
    assert vdt.text() == "438 d"


def test_clinical_dock_tables_flags_and_trend(qtbot, state: AnalysisState) -> None:
    dock = ClinicalDock(state)
    qtbot.addWidget(dock)
    assert dock.genomics.rowCount() == 3
    assert "GRCh38" in dock.genomics_header.text()
    genes = {dock.genomics.item(r, 0).text(): r for r in range(3)}
    r = genes["DPYD"]
    assert dock.genomics.item(r, 3).text() == "germline"
    assert dock.genomics.item(genes["EGFR"], 2).text() == "31 %"
    assert dock.genomics.item(genes["EGFR"], 5).text() == "412×"
    # actionability carries the evidence level; a non-actionable variant says so
    assert dock.genomics.item(genes["EGFR"], 4).text() == "Level 1"
    assert dock.genomics.item(genes["DPYD"], 4).text() == "CPIC A"
    assert dock.genomics.item(genes["TP53"], 4).text() == "no"
    assert "osimertinib" in dock.genomics.item(genes["EGFR"], 4).toolTip()
    assert dock.labs.rowCount() == 8
    flags = [dock.labs.item(r, 5).text() for r in range(8)]
    assert flags.count("H ▲") == 2 and flags.count("L ▼") == 2
    flagged = flags.index("H ▲")
    assert dock.labs.item(flagged, 1).foreground().color() != dock.labs.item(flags.index(""), 1).foreground().color()
    # select a creatinine row: its three values over time, oldest first, reference band shaded
    crea = [r for r in range(8) if dock.labs.item(r, 0).text() == "Creatinine"][0]
    dock.labs.selectRow(crea)
    assert dock.plotted_key == "2160-0"
    assert [v for _, v in dock.plotted_points] == [0.98, 1.12, 1.20]
    bands = [i for i in dock.plot.getPlotItem().items if isinstance(i, pg.LinearRegionItem)]
    assert len(bands) == 1 and bands[0].getRegion() == pytest.approx((0.7, 1.3))
    assert "66" in dock.egfr.text() and "CKD-EPI 2021" in dock.egfr.text()
    # a value in a unit the loader did not understand is listed but not plotted
    f = copy.deepcopy(state.findings)
    f["labs"].append({"name": "Creatinine", "loinc": "2160-0", "value": 97, "unit": "umol/l?", "date": "2026-11-01",
                      "unit_status": "unit not understood", "flag": None})
    st2 = AnalysisState()
    st2.set_result(f)
    dock2 = ClinicalDock(st2)
    qtbot.addWidget(dock2)
    assert dock2.labs.rowCount() == 9
    crea = [r for r in range(9) if dock2.labs.item(r, 0).text() == "Creatinine" and dock2.labs.item(r, 1).text() == "1.2"][0]
    dock2.labs.selectRow(crea)
    assert [v for _, v in dock2.plotted_points] == [0.98, 1.12, 1.20]


def test_clinical_dock_biomarkers_and_held_back_genomics(qtbot) -> None:
    f = sample()
    f["genomics"]["biomarkers"] = [{"gene": "CD274", "alteration": "PD-L1 TPS", "value": "60 %", "actionable": True,
                                    "evidence_level": "1", "drugs": ["pembrolizumab"]}]
    st = AnalysisState()
    st.set_result(f)
    dock = ClinicalDock(st)
    qtbot.addWidget(dock)
    assert dock.genomics.rowCount() == 4
    assert dock.genomics.item(3, 1).text() == "PD-L1 TPS 60 %" and dock.genomics.item(3, 3).text() == "biomarker"
    f2 = sample()
    f2["genomics"] = {}  # the worker read the file but held it back
    st.set_result(f2)
    assert dock.genomics.rowCount() == 0 and "held back" in dock.genomics_header.text()


def test_treatment_dock_banner_groups_and_citations(qtbot, state: AnalysisState) -> None:
    dock = TreatmentDock(state)
    qtbot.addWidget(dock)
    assert BANNER_TEXT in dock.decision_banner.text()
    assert dock.group_titles == ["Work-up", "Therapy", "Caution", "Pharmacogenomics"]
    assert len(dock.cards) == 4
    texts = [" ".join(lab.text() for lab in c.findChildren(type(dock.status))) for c in dock.cards]
    assert all("Source:" in t for t in texts)
    assert "osimertinib" in texts[1] and "Level 1" in texts[1] and "OncoKB" in texts[1]
    assert "CPIC" in texts[3] and "Facts used:" in texts[3]


def test_missing_sections_say_not_available(qtbot) -> None:
    st = AnalysisState()
    st.set_result({"schema": "clinview.findings/1", "nodules": [{"id": 5, "mean_diameter_mm": 5.0}]})
    docks = [FindingsDock(st), RiskDock(st), ClinicalDock(st), TreatmentDock(st)]
    for d in docks:
        qtbot.addWidget(d)
    findings, risk, clinical, treat = docks
    assert findings.table.rowCount() == 1 and findings.table.item(0, 5).text() == "—"
    assert "not available" in risk.fleischner_label.text()
    assert "not available" in risk.model_label.text()
    assert "not available: the analysis returned no genomics" in clinical.genomics_header.text()
    assert "not available: the analysis returned no lab results" in clinical.labs_header.text()
    assert "not available" in treat.status.text()


def test_identity_conflict_hides_the_mismatched_file(qtbot) -> None:
    f = sample()
    f["identity"] = {"consistent": False, "conflicts": [
        {"field": "patient_id", "values": {"dicom": "CV-DEMO-0001", "genomics": "CV-OTHER-9"}}]}
    st = AnalysisState()
    st.set_result(f)
    clinical, treat, findings = ClinicalDock(st), TreatmentDock(st), FindingsDock(st)
    for d in (clinical, treat, findings):
        qtbot.addWidget(d)
    for d in (clinical, treat, findings):
        assert d.banner.isVisibleTo(d)
        assert "CV-OTHER-9" in d.banner.label.text()
    assert clinical.genomics.rowCount() == 0 and "hidden" in clinical.genomics_header.text()
    assert clinical.labs.rowCount() == 8  # the lab file is not in conflict
    assert treat.cards == [] and "hidden" in treat.status.text()
    assert findings.table.rowCount() == 3  # imaging of the opened CT stays
    st.confirm_identity()
    assert not clinical.banner.isVisibleTo(clinical)
    assert clinical.genomics.rowCount() == 3 and len(treat.cards) == 4


def test_mask_editor_brush_and_erase_remeasure(qtbot, state: AnalysisState) -> None:
    findings = FindingsDock(state)
    qtbot.addWidget(findings)
    before = state.nodule(2)
    ed = MaskEditor(state, 2)
    qtbot.addWidget(ed)
    k = ed.current_slice
    rows, cols = np.nonzero(ed.mask[k])
    r0, c0 = rows.mean(), cols.mean()
    # erase the centre with a 3 mm brush, then paint a voxel outside: both change the mask
    assert ed.paint(r0, c0, erase=True, size_mm=3.0) > 0
    assert not ed.mask[k, int(round(r0)), int(round(c0))]
    assert ed.paint(1, 1, erase=False, size_mm=0.5) == 1
    ed.size_box.setValue(0.5)
    ed.erase_btn.setChecked(True)
    assert ed.stroke([(1, 1)]) == 1  # the radio buttons drive the default mode
    with qtbot.waitSignal(ed.applied):
        ed.apply_btn.click()
    after = state.nodule(2)
    assert after["edited"] and after["volume_mm3"] < before["volume_mm3"]
    row = [r for r in range(3) if findings.table.item(r, 0).text() == "2"][0]
    assert "✎" in findings.table.item(row, 1).text()
    assert state.review_path().exists()


def test_mask_editor_paints_with_the_mouse(qtbot, state: AnalysisState) -> None:
    ed = MaskEditor(state, 3)
    qtbot.addWidget(ed)
    ed.resize(500, 560)
    ed.show()
    qtbot.waitExposed(ed)
    qtbot.wait(50)  # let the view lay out before mapping pixels to the screen
    k = ed.current_slice
    assert not ed.mask[k, 2, 2]
    ed.size_box.setValue(0.5)

    def click(r: int, c: int) -> None:
        scene_pt = ed.mask_item.mapToScene(QPointF(c + 0.5, r + 0.5))
        qtbot.mouseClick(ed.view.viewport(), Qt.MouseButton.LeftButton, pos=ed.view.mapFromScene(scene_pt))

    before = ed.mask[k].sum()
    click(2, 2)
    # exactly the pixel under the pointer
    assert ed.mask[k, 2, 2] and ed.mask[k].sum() == before + 1
    ed.erase_btn.setChecked(True)
    click(2, 2)
    assert not ed.mask[k, 2, 2]


def test_findings_dock_leaves_room_for_the_views(qtbot, state: AnalysisState) -> None:
    """On a 1366 px laptop screen the study browser (230 px) and the findings dock share the
    width with three views; the dock's buttons must not hold it wider than 480 px."""
    w = FindingsDock(state)
    qtbot.addWidget(w)
    assert w.minimumSizeHint().width() <= 480
    w.resize(480, 380)
    w.show()
    qtbot.waitExposed(w)
    assert w.width() == 480 and w.show_rejected.isVisible() and w.spic_btn.isVisible()


def test_render_docks_to_png(qtbot, state: AnalysisState, tmp_path: Path) -> None:
    """The docks draw at a realistic size (the PNGs are what reviewers look at)."""
    out = tmp_path / "shots"
    out.mkdir()
    for cls, size in ((FindingsDock, (560, 380)), (RiskDock, (480, 900)), (ClinicalDock, (560, 720)),
                      (TreatmentDock, (480, 760))):
        w = cls(state)
        qtbot.addWidget(w)
        w.resize(*size)
        w.show()
        qtbot.waitExposed(w)
        img = w.grab().toImage()
        assert img.width() == size[0]
        # not a blank widget: many distinct colours (text, badges)
        colors = {img.pixel(x, y) for x in range(0, img.width(), 7) for y in range(0, img.height(), 7)}
        assert len(colors) > 20
        img.save(str(out / f"{cls.__name__}.png"))


def test_spiculated_key_is_the_readers_call_and_brock_follows(qtbot) -> None:
    """S on a selected nodule marks its margin spiculated: the type cell says so, the risk
    dock's Brock for it rises (re-scored, not marked stale) and the button shows the state."""
    from inference.clinical.scoring import apply_guidelines
    from inference.types import ClinicalFacts

    f = sample()
    for n in f["nodules"]:
        n.pop("brock", None), n.pop("brock_probability", None), n.pop("growth", None)
        n["spiculated"] = False
    apply_guidelines(f, ClinicalFacts(age_years=64, sex="M"), prior_available=False)
    vol, labels = volume_and_labels(f)
    st = AnalysisState()
    st.set_result(f, labels, None, volume=vol)
    findings, risk = FindingsDock(st), RiskDock(st)
    qtbot.addWidget(findings), qtbot.addWidget(risk)
    findings.show()

    def brock_of(nid: int) -> str:
        rows = {risk.table.item(r, 0).text(): risk.table.item(r, 1).text() for r in range(risk.table.rowCount())}
        return rows[str(nid)]

    def type_of(nid: int) -> str:
        rows = {findings.table.item(r, 0).text(): findings.table.item(r, _col(findings.table, "Type")).text()
                for r in range(findings.table.rowCount())}
        return rows[str(nid)]

    before = brock_of(2)
    findings.select_nodule(2)
    assert findings.spic_btn.isEnabled() and not findings.spic_btn.isChecked()
    findings.table.setFocus()
    qtbot.keyClick(findings.table, Qt.Key.Key_S)
    assert st.nodule(2)["spiculated"] and type_of(2) == "part-solid, solid 3.1 mm, spiculated"
    assert findings.spic_btn.isChecked()
    after = brock_of(2)
    assert "⚠" not in after and float(after.rstrip(" %")) > 1.5 * float(before.rstrip(" %"))
    assert "re-scored after review" in risk.brock_source.text()
    findings.select_nodule(3)  # calcified: its margin enters no score
    assert not findings.spic_btn.isEnabled()
    qtbot.keyClick(findings.table, Qt.Key.Key_S)
    assert not st.nodule(3)["spiculated"]


def test_patient_level_numbers_name_their_nodule_and_warn_while_it_is_unreviewed(qtbot) -> None:
    """Fleischner and the deep model follow the most suspicious finding; before the review it may be a
    false positive, so the dock names the nodule and says it is not reviewed, with its detection probability."""
    f = sample()
    f["exam"]["fleischner"] = {"recommendation": "CT at 3 months", "applies": True, "nodule_id": 2,
                               "reason": "single part-solid nodule(s), dominant nodule 2", "source": "Fleischner Society 2017"}
    f["risk"]["nodule_id"] = 2
    vol, labels = volume_and_labels(f)
    st = AnalysisState()
    st.set_result(f, labels, None, volume=vol)
    dock = RiskDock(st)
    qtbot.addWidget(dock)
    assert "for nodule #2" in dock.fleischner_label.text()
    for label in (dock.fleischner_label, dock.model_label):
        assert "Nodule #2 is not reviewed yet, AI detection 41 %" in label.text()
    st.set_review(2, "accepted")
    assert "for nodule #2" in dock.fleischner_label.text()
    for label in (dock.fleischner_label, dock.model_label):
        assert "not reviewed" not in label.text() and "rejected" not in label.text()
    st.set_review(2, "rejected")
    for label in (dock.fleischner_label, dock.model_label):
        assert "You rejected nodule #2" in label.text()
