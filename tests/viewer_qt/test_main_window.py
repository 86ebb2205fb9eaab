"""Main window: the public API the analysis layer uses, settings and
measurements that survive a restart, drag and drop, help, the error dialog,
and a GUI process that never imports torch."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QAction, QDropEvent
from PySide6.QtWidgets import QLabel

from inference.errors import DicomError
from tests.viewer_model.phantoms import sphere_volume
from viewer.model.measurements import Measurement, line_length_mm, measurements_path


def test_reserved_docks_and_add_panel_replaces_the_placeholder(window, qtbot) -> None:
    for title in ("Findings", "Risk", "Genomics & labs", "Treatment"):
        w = window.panels[title].widget()
        assert isinstance(w, QLabel) and "appears after analysis" in w.text()
    mine = QLabel("42 nodules")
    dock = window.add_panel("Risk", mine)
    assert dock is window.panels["Risk"] and dock.widget() is mine
    extra = window.add_panel("Trials", QLabel("x"))
    assert extra.widget().text() == "x" and "Trials" in window.panels
    qtbot.waitUntil(lambda: extra in window.tabifiedDockWidgets(window.panels["Findings"]), timeout=2000)


def test_toolbar_and_file_actions(window) -> None:
    a, b = QAction("Analyze", window), QAction("Open genomics / labs file…", window)
    window.add_toolbar_action(a)
    window.add_file_action(b)
    assert a in window.toolbar.actions()
    acts = window.file_menu.actions()
    assert b in acts and acts.index(b) < acts.index(window.act_quit)


def test_volume_signal_and_study_paths(window, qtbot) -> None:
    vol = sphere_volume(uid="2.25.901")
    with qtbot.waitSignal(window.volume_loaded) as sig:
        window.load_volume(vol)
    assert sig.args[0] is vol and window.volume() is vol
    window.set_study_paths({"study": "/a", "prior": "/b"})
    paths = window.study_paths()
    paths["study"] = "changed"
    assert window.study_paths()["study"] == "/a"


def test_status_and_issue_lines(window) -> None:
    window.status_message("Analysis 40 %")
    assert window.statusBar().currentMessage() == "Analysis 40 %"
    window.show_issues(["a.dcm: missing pixel data", "b.dcm: duplicate position"])
    assert "a.dcm: missing pixel data" in window.issue_label.text() and "+1 more" in window.issue_label.text()
    assert "b.dcm" in window.issue_label.toolTip()
    window.show_issues([])
    assert window.issue_label.text() == ""


def test_volume_warnings_reach_the_status_bar(window) -> None:
    import dataclasses

    from inference.types import Issue

    vol = dataclasses.replace(sphere_volume(uid="2.25.902"), warnings=(Issue("slice gap 5 mm", path="/ct/17.dcm"),))
    window.load_volume(vol)
    assert window.issues() == ["/ct/17.dcm: slice gap 5 mm"]
    # the analysis layer's lines come and go; the study's own warning stays
    window.show_issues(["analysis: model on CPU"])
    assert window.issues() == ["/ct/17.dcm: slice gap 5 mm", "analysis: model on CPU"]
    window.show_issues([])
    assert window.issues() == ["/ct/17.dcm: slice gap 5 mm"]
    window.load_volume(sphere_volume(uid="2.25.903"))
    assert window.issues() == []


def test_decision_support_notice_is_visible(window) -> None:
    assert window.notice.isVisible()
    assert window.notice.text() == "Decision support only — not for primary diagnosis"


def test_measurements_are_saved_with_the_series_and_come_back(window, qtbot) -> None:
    from viewer.main_window import MainWindow
    from viewer.model.settings import Settings

    vol = sphere_volume(uid="2.25.777")
    window.load_volume(vol)
    a, b = vol.voxel_to_lps((20, 48, 40)), vol.voxel_to_lps((20, 48, 60))
    window.model.measurements.add(Measurement("line", (tuple(a), tuple(b)), "axial"))
    saved = json.loads(measurements_path("2.25.777").read_text())
    assert len(saved["measurements"]) == 1
    # a new session on the same series (even a different in-memory object)
    w2 = MainWindow(settings=Settings())
    qtbot.addWidget(w2)
    w2.load_volume(sphere_volume(uid="2.25.777"))
    assert len(w2.model.measurements) == 1
    assert line_length_mm(w2.model.measurements.items[0]) == pytest.approx(20 * 0.7)
    # another series does not see them
    w2.load_volume(sphere_volume(uid="2.25.778"))
    assert len(w2.model.measurements) == 0


def test_settings_remembered_between_runs(qtbot) -> None:
    from viewer.app import make_app
    from viewer.main_window import MainWindow
    from viewer.services.settings_store import load_settings

    make_app()
    w = MainWindow()
    qtbot.addWidget(w)
    w.model.set_layout("2x2")
    w.act_preset["bone"].trigger()
    w.act_slab[10.0].trigger()
    w.settings.add_recent("/studies/a")
    w.settings.last_folder = "/studies"
    w.panels["Treatment"].close()  # the reader closed a dock
    w.close()
    s = load_settings()
    assert (s.layout, s.preset, s.slab_mm, s.last_folder) == ("2x2", "bone", 10.0, "/studies")
    assert s.recent[0] == "/studies/a"
    w2 = MainWindow()
    qtbot.addWidget(w2)
    assert w2.model.layout == "2x2" and w2.model.preset_name() == "bone" and w2.model.slab_mm == 10.0
    assert w2.panels["Treatment"].isHidden() and not w2.panels["Risk"].isHidden()  # docks come back as left
    assert [a.text() for a in w2.recent_menu.actions()][0] == "/studies/a"


@pytest.mark.skipif(not __import__("importlib").util.find_spec("inference.io.dicom_series"), reason="no DICOM loader yet")
def test_drop_a_folder_opens_it(window, qtbot, tmp_path) -> None:
    from tests.dicomgen import phantom, write_ct_series

    write_ct_series(tmp_path / "dropped", phantom((5, 32, 32)), spacing=(2.5, 0.7, 0.7))
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(tmp_path / "dropped"))])
    ev = QDropEvent(QPointF(50, 50), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    window.dropEvent(ev)
    qtbot.waitUntil(lambda: window.volume() is not None, timeout=20000)
    assert window.volume().shape == (5, 32, 32)
    assert window.settings.recent[0] == str(tmp_path / "dropped")


def test_help_lists_the_shortcuts(window) -> None:
    text = window.shortcuts_text()
    for key in ("Ctrl + wheel", "Middle-drag", "1 2 3 4", "R", "H", "Double-click", "PgUp"):
        assert key in text
    # every single-key shortcut listed is a real action shortcut
    keys = {a.shortcut().toString() for a in window.actions() if not a.shortcut().isEmpty()}
    for k in ("1", "2", "3", "4", "R", "H", "M", "C", "W", "X", "L", "E", "A", "F5", "F6", "F7", "F1"):
        assert k in keys, k


def test_error_dialog_says_one_line(qtbot) -> None:
    from viewer.app import ErrorReporter

    rep = ErrorReporter(interactive=True)
    try:
        raise DicomError("not a DICOM file", where="/x/a.dcm", fix="pick a DICOM folder")
    except DicomError as e:
        rep(type(e), e, e.__traceback__)
    assert rep.errors == ["/x/a.dcm: not a DICOM file (pick a DICOM folder)"]
    assert rep._box is not None and rep._box.text() == rep.errors[0]
    try:
        {}["k"]
    except KeyError as e:
        rep(type(e), e, e.__traceback__)
    assert rep.errors[1] == "internal error: KeyError: 'k'"
    assert "internal error" in rep._box.text()  # appended to the one dialog, not a second one
    rep._box.close()


def test_gui_process_never_imports_torch(tmp_path) -> None:
    code = (
        "import os, sys; os.environ['QT_QPA_PLATFORM']='offscreen';"
        "from viewer.app import make_app, build_window; make_app();"
        "w = build_window(); w.show();"
        "print(sorted(m for m in ('torch', 'monai') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "CLINVIEW_DATA_DIR": str(tmp_path)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.skipif(not __import__("importlib").util.find_spec("inference.io.dicom_series"), reason="no DICOM loader yet")
def test_screenshot_renders_the_loaded_window(qtbot, tmp_path) -> None:
    """What `clinview PATH --screenshot out.png` does (without the analysis
    layer, whose worker would start on open)."""
    from PySide6.QtGui import QImage

    from tests.dicomgen import phantom, write_ct_series
    from viewer.app import build_window, make_app, take_screenshot

    write_ct_series(tmp_path / "ct", phantom((10, 64, 64)), spacing=(2.5, 0.7, 0.7))
    out = tmp_path / "shot.png"
    make_app()
    w = build_window(path=str(tmp_path / "ct"), layout="2x2", with_analysis=False)
    qtbot.addWidget(w)
    assert take_screenshot(w, out, timeout_s=60) == 0
    assert w.volume() is not None and w.volume().shape == (10, 64, 64)
    img = QImage(str(out))
    assert (img.width(), img.height()) == (1600, 1000)
    # the image area is not empty: many distinct grey levels (a CT, not a blank)
    greys = {img.pixelColor(x, y).red() for x in range(300, 1100, 7) for y in range(100, 900, 7)}
    assert len(greys) > 20


def test_previous_volume_is_released(window, qtbot) -> None:
    """Opening another series frees the previous one, hidden views included
    (a slice is a view into the whole volume and would pin it)."""
    import gc
    import weakref

    a = sphere_volume(uid="2.25.910")
    ref = weakref.ref(a.array)
    window.load_volume(a)
    qtbot.wait(80)
    window.model.set_layout("2x2")  # the MIP view shows a slab of it too
    qtbot.wait(30)
    window.model.set_layout("single")  # now three views are hidden, still holding slices
    window.load_volume(sphere_volume(uid="2.25.911"))
    del a
    qtbot.wait(80)
    gc.collect()
    assert ref() is None


def test_help_shows_the_ai_models_cards_with_their_limitations(window, qtbot, tmp_path) -> None:
    """Help → AI models opens the shipped models' cards: versions, the weights checked, and the detector's
    own limitations (ground glass), which a reader must know before trusting a short list of findings."""
    from inference.api import model_cards

    help_menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Help")
    assert window.act_models in help_menu.actions()
    window.act_models.trigger()
    dlg = window._model_cards
    qtbot.waitExposed(dlg)
    text = dlg.browser.toPlainText()
    cards = {c.name: c for c in model_cards()}
    nodules, lungs = f"nodules v{cards['nodules'].version}", f"lungs v{cards['lungs'].version}"
    assert nodules in text and "Weights: verified" in text
    assert "Limitations" in text and cards["nodules"].limitations[0] in text
    assert text.index(nodules) < text.index(lungs)  # the detector's card first
    img = dlg.grab().toImage()
    assert img.width() >= 700
    img.save(str(tmp_path / "model_cards.png"))
    dlg.close()
