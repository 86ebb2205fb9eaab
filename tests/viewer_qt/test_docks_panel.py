"""install_analysis in the real MainWindow: auto-run on volume load, results into
the docks, click-to-go, overlays follow the review, identity confirmation, and
failures shown as one line.

The worker here is a small real script speaking the worker protocol and writing
the sample findings (the product worker lands separately; see
test_docks_worker_e2e for the run against it).
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from viewer.analysis_panel import PANEL_TITLES, install_analysis
from viewer.main_window import MainWindow
from viewer.model.settings import Settings

from .test_docks import FIXTURE, volume_and_labels

SAMPLE_WORKER = textwrap.dedent(
    r'''
    import json, os, sys
    req = json.loads(sys.stdin.readline())
    findings = json.load(open(sys.argv[1]))
    findings["request"] = req
    mode = os.path.basename(req["study"])
    if mode == "crash":
        sys.stderr.write("RuntimeError: model weights corrupt\n")
        sys.exit(1)
    if mode == "hang":
        import time
        print(json.dumps({"type": "progress", "fraction": 0.1, "message": "waiting"}), flush=True)
        time.sleep(600)
    if mode == "conflict":
        findings["identity"] = {"consistent": False, "confirmed": bool(req["confirm_identity"]), "conflicts": [
            {"field": "patient_id", "values": {"dicom": "CV-DEMO-0001", "genomics": "CV-OTHER-9"}}]}
    os.makedirs(req["out"], exist_ok=True)
    print(json.dumps({"type": "progress", "fraction": 0.5, "message": "nodules"}), flush=True)
    path = os.path.join(req["out"], "findings.json")
    json.dump(findings, open(path, "w"))
    print(json.dumps({"type": "result", "out_dir": req["out"], "findings": path}), flush=True)
    '''
)


@pytest.fixture(autouse=True)
def _own_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLINVIEW_DATA_DIR", str(tmp_path / "userdata"))
    monkeypatch.setenv("CLINVIEW_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def window(qtbot, tmp_path: Path):
    script = tmp_path / "sample_worker.py"
    script.write_text(SAMPLE_WORKER)
    w = MainWindow(settings=Settings())
    qtbot.addWidget(w)
    panel = install_analysis(w, command=[sys.executable, str(script), str(FIXTURE)])
    return w, panel


def _open(qtbot, w, panel, study: Path, **paths):
    f = json.loads(FIXTURE.read_text())
    vol, labels = volume_and_labels(f)
    w.set_study_paths({"study": study, **paths})
    with qtbot.waitSignal(panel.service.finished, timeout=20000):
        w.load_volume(vol)
    qtbot.waitUntil(lambda: panel.state.has_result, timeout=5000)
    return f, vol, labels


def test_docks_installed_and_analysis_runs_on_volume_load(qtbot, window, tmp_path: Path) -> None:
    w, panel = window
    for title, dock in zip(PANEL_TITLES, (panel.findings, panel.risk, panel.clinical, panel.treatment)):
        assert w.panels[title].widget() is dock
    _open(qtbot, w, panel, tmp_path / "ok", genomics=[tmp_path / "t.vcf"], labs=[tmp_path / "l.csv"])
    sent = panel.state.findings["request"]
    assert sent["study"] == str(tmp_path / "ok") and sent["genomics"] == [str(tmp_path / "t.vcf")]
    assert sent["confirm_identity"] is False and sent["out"].startswith(str(tmp_path / "cache"))
    assert panel.findings.table.rowCount() == 3
    assert not panel.findings.progress_row.isVisibleTo(panel.findings)
    assert not w.is_busy()
    # the worker's warnings reach the window's issue line
    assert any("VAF computed from AD" in line for line in w.issues())


def test_click_goes_to_the_nodule_and_overlay_follows_review(qtbot, window, tmp_path: Path) -> None:
    w, panel = window
    f, vol, labels = _open(qtbot, w, panel, tmp_path / "ok")
    # the label maps as load_analysis returns them
    panel.state.set_result(f, labels, (labels > 0).astype(np.uint8), volume=vol)
    panel.push_overlays()
    assert w.model.overlays["nodules"].visible_ids == {1, 2, 3}
    assert "lungs" in w.model.overlays
    t = panel.findings.table
    row = [r for r in range(t.rowCount()) if t.item(r, 0).text() == "2"][0]
    panel.findings.show()
    qtbot.mouseClick(t.viewport(), Qt.MouseButton.LeftButton, pos=t.visualItemRect(t.item(row, 0)).center())
    assert w.model.cursor_lps() == pytest.approx(f["nodules"][1]["center_lps_mm"], abs=1e-6)
    panel.findings.reject_btn.click()
    assert panel.state.review_of(2) == "rejected"
    assert w.model.overlays["nodules"].visible_ids == {1, 3}
    assert sorted(m.label for m in w.model.markers) == ["#1 4A", "#3 1"]


def test_identity_conflict_dialog_confirm_reruns_with_confirmation(qtbot, window, tmp_path: Path) -> None:
    w, panel = window
    _open(qtbot, w, panel, tmp_path / "conflict")
    assert panel.state.identity_blocking()
    assert panel.clinical.genomics.rowCount() == 0
    box = panel._dialog
    assert isinstance(box, QMessageBox) and box.isVisible()
    assert "CV-OTHER-9" in box.informativeText()
    with qtbot.waitSignal(panel.service.finished, timeout=20000):
        box.button(QMessageBox.StandardButton.Yes).click()
    qtbot.waitUntil(lambda: panel.state.findings.get("request", {}).get("confirm_identity") is True, timeout=5000)
    assert not panel.state.identity_blocking()
    assert panel.clinical.genomics.rowCount() == 3


def test_identity_kept_hidden_when_user_declines(qtbot, window, tmp_path: Path) -> None:
    w, panel = window
    _open(qtbot, w, panel, tmp_path / "conflict")
    panel._dialog.button(QMessageBox.StandardButton.No).click()
    assert panel.state.identity_blocking() and not panel.service.is_running()
    assert panel.treatment.cards == []


def test_worker_crash_is_one_line_in_the_window(qtbot, window, tmp_path: Path) -> None:
    w, panel = window
    f = json.loads(FIXTURE.read_text())
    vol, _ = volume_and_labels(f)
    w.set_study_paths({"study": tmp_path / "crash"})
    with qtbot.waitSignal(panel.service.failed, timeout=20000):
        w.load_volume(vol)
    assert any("model weights corrupt" in line for line in w.issues())
    assert "Analysis failed" in panel.findings.summary.text()
    assert "model weights corrupt" in panel.findings.summary.text()
    assert not panel.state.has_result and not panel.act_cancel.isEnabled()


def test_auto_run_off_waits_for_analyze(qtbot, window, tmp_path: Path) -> None:
    w, panel = window
    panel.act_auto.setChecked(False)
    f = json.loads(FIXTURE.read_text())
    vol, _ = volume_and_labels(f)
    w.set_study_paths({"study": tmp_path / "ok"})
    w.load_volume(vol)
    assert not panel.service.is_running()
    with qtbot.waitSignal(panel.service.finished, timeout=20000):
        panel.act_analyze.trigger()
    # adding a lab file re-runs with it
    with qtbot.waitSignal(panel.service.finished, timeout=20000):
        panel.add_files("labs", [str(tmp_path / "more.csv")])
    qtbot.waitUntil(lambda: panel.state.findings.get("request", {}).get("labs") == [str(tmp_path / "more.csv")],
                    timeout=5000)


def test_review_keys_win_over_window_shortcuts_and_edit_opens_editor(qtbot, window, tmp_path: Path) -> None:
    """A, R and E are also the viewer's tool keys; in the findings table they review."""
    w, panel = window
    f, vol, labels = _open(qtbot, w, panel, tmp_path / "ok")
    panel.state.set_result(f, labels, None, volume=vol)
    tool_before = w.model.tool
    w.show()
    panel.findings.select_nodule(3)
    panel.findings.table.setFocus()
    qtbot.keyClick(panel.findings.table, Qt.Key.Key_R)
    assert panel.state.review_of(3) == "rejected"
    qtbot.keyClick(panel.findings.table, Qt.Key.Key_E)
    assert w.model.tool == tool_before  # neither reset nor the ellipse tool fired
    dlg = panel._editor
    assert dlg is not None and dlg.isVisible() and dlg.editor.nodule_id == 3
    dlg.editor.cancel_btn.click()
    assert not dlg.isVisible() and not panel.state.nodule(3).get("edited")


def test_review_survives_a_rerun(qtbot, window, tmp_path: Path) -> None:
    w, panel = window
    _open(qtbot, w, panel, tmp_path / "ok")
    panel.state.set_review(2, "rejected")
    assert panel.risk.stale_frame.isVisibleTo(panel.risk)
    first_out = panel.state.out_dir
    with qtbot.waitSignal(panel.service.finished, timeout=20000):
        panel.act_analyze.trigger()
    qtbot.waitUntil(lambda: panel.state.out_dir != first_out, timeout=5000)
    # a new analysis, the reader's decision restored from review.json
    assert panel.state.review_of(2) == "rejected"
    assert panel.state.visible_ids() == [1, 3]


def test_no_automatic_analysis_for_a_non_ct_series(qtbot, window, tmp_path: Path) -> None:
    import dataclasses

    from inference.types import PatientInfo, SeriesInfo, StudyInfo

    w, panel = window
    f = json.loads(FIXTURE.read_text())
    vol, _ = volume_and_labels(f)
    mr = SeriesInfo("1.2.3.4", "MR", PatientInfo("P1"), StudyInfo("1.2.3"))
    w.set_study_paths({"study": tmp_path / "ok"})
    w.load_volume(dataclasses.replace(vol, series=mr))
    assert not panel.service.is_running()
    assert "MR" in w.statusBar().currentMessage()


def test_cancel_button_next_to_the_progress_stops_the_worker(qtbot, window, tmp_path: Path) -> None:
    w, panel = window
    f = json.loads(FIXTURE.read_text())
    vol, _ = volume_and_labels(f)
    w.set_study_paths({"study": tmp_path / "hang"})
    with qtbot.waitSignal(panel.service.progress, timeout=20000):
        w.load_volume(vol)
    assert panel.findings.progress_row.isVisibleTo(panel.findings) and w.is_busy()
    assert "waiting" in panel.findings.progress.text()
    pid = panel.service.pid()
    with qtbot.waitSignal(panel.service.cancelled, timeout=10000):
        panel.findings.cancel_btn.click()
    assert not panel.service.is_running() and not w.is_busy()
    assert not panel.findings.progress_row.isVisibleTo(panel.findings)
    assert "cancelled" in w.statusBar().currentMessage()
    import os
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_keep_a_worker_ready_is_a_remembered_choice(qtbot, window, tmp_path: Path) -> None:
    """File > "Keep an analysis worker ready": off kills the idle worker and is remembered for the next session."""
    from viewer.analysis_panel import _SPARE_KEY, _settings

    w, panel = window
    panel.act_spare.setChecked(False)
    assert _settings().value(_SPARE_KEY, True, type=bool) is False and panel.service.spare_pid() is None
    panel.act_spare.setChecked(True)
    pid = panel.service.spare_pid()
    assert pid is not None and _settings().value(_SPARE_KEY, False, type=bool) is True
    w.close()
    assert panel.service.spare_pid() is None
    w2 = MainWindow(settings=Settings())
    qtbot.addWidget(w2)
    panel.act_spare.setChecked(False)
    p2 = install_analysis(w2)  # the real worker command, but the user said no spare
    assert not p2.act_spare.isChecked() and p2.service.spare_pid() is None
