"""The viewer's analysis client against the real worker (``inference.worker``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inference import api, paths
from inference.types import Volume
from tests.dicomgen import phantom, write_ct_series
from viewer.analysis_panel import install_analysis
from viewer.main_window import MainWindow
from viewer.model.settings import Settings

NODULE_MODEL = paths.resources_dir() / "models" / "nodules" / "metadata.json"


def _alive(pid: int) -> bool:
    """Running (a zombie waiting to be reaped counts as gone)."""
    import os

    try:
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


@pytest.fixture(autouse=True)
def _own_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLINVIEW_DATA_DIR", str(tmp_path / "userdata"))
    monkeypatch.setenv("CLINVIEW_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("OMP_NUM_THREADS", "2")


def test_real_worker_error_reaches_the_window_as_one_line(qtbot, tmp_path: Path) -> None:
    """A folder without DICOM: the real worker answers with an error line and
    the window shows it (no traceback, nothing half-loaded)."""
    empty = tmp_path / "not-a-study"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    w = MainWindow(settings=Settings())
    qtbot.addWidget(w)
    panel = install_analysis(w)
    assert panel.service._command == api.worker_command()
    vol = Volume(np.zeros((4, 8, 8), np.int16), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3))
    w.set_study_paths({"study": empty})
    with qtbot.waitSignal(panel.service.failed, timeout=60000) as blocker:
        w.load_volume(vol)
    msg = blocker.args[0]
    assert "not-a-study" in msg and "Traceback" not in msg and "\n" not in msg
    assert any(line.startswith("Analysis failed") for line in w.issues())
    assert not panel.state.has_result
    panel.service.shutdown()


def _study_and_viewer(qtbot, tmp_path: Path) -> tuple[Path, Volume, MainWindow, Any]:
    """A small synthetic CT written as DICOM, its volume, and a viewer with the real analysis installed."""
    study = tmp_path / "study"
    spacing, origin = (2.5, 2.0, 2.0), (-12.0, -12.0, -40.0)
    arr = phantom((24, 96, 96))
    write_ct_series(study, arr, spacing=spacing, origin=origin)
    w = MainWindow(settings=Settings())
    qtbot.addWidget(w)
    return study, Volume(arr, spacing, origin, np.eye(3)), w, install_analysis(w)


@pytest.mark.slow
@pytest.mark.skipif(not NODULE_MODEL.exists(), reason="nodule model weights not in resources/models yet")
def test_real_worker_analysis_shown_in_the_window(qtbot, tmp_path: Path) -> None:
    """Synthetic CT written as DICOM → real worker → findings in the docks."""
    study, vol, w, panel = _study_and_viewer(qtbot, tmp_path)
    spare = panel.service.spare_pid()  # the real worker, started ahead of the request
    assert spare is not None
    seen: list[float] = []
    pids: set[int | None] = set()
    panel.service.progress.connect(lambda f, _m: (seen.append(f), pids.add(panel.service.pid())))
    w.set_study_paths({"study": study})
    with qtbot.waitSignal(panel.service.finished, timeout=300000) as blocker:
        w.load_volume(vol)
    out = Path(blocker.args[0])
    assert pids == {spare}
    assert (out / "findings.json").exists() and out.is_relative_to(paths.cache_dir())
    assert seen and seen == sorted(seen)
    qtbot.waitUntil(lambda: panel.state.has_result, timeout=5000)
    findings = json.loads((out / "findings.json").read_text())
    assert panel.state.findings["schema"] == findings["schema"] == "clinview.findings/1"
    assert panel.findings.table.rowCount() == len(findings.get("nodules") or [])
    lungs = findings.get("lungs") or {}
    if lungs.get("right_ml") is not None:
        assert f"{lungs['right_ml']:,.0f}" in panel.findings.summary.text()
    if panel.state.nodule_labels is not None:  # label maps readable in this build
        assert "nodules" in w.model.overlays
    qtbot.waitUntil(lambda: panel.service.spare_pid() not in (None, spare), timeout=10000)  # the next one waits
    nxt = panel.service.spare_pid()
    w.close()  # closing the viewer's window stops it
    assert panel.service.spare_pid() is None
    assert nxt is not None and not _alive(nxt)


@pytest.mark.slow
@pytest.mark.skipif(not NODULE_MODEL.exists(), reason="nodule model weights not in resources/models yet")
def test_reopening_an_analysed_study_shows_its_analysis_without_running_it_again(qtbot, tmp_path: Path) -> None:
    """The automatic analysis after opening a CT reuses the last finished analysis of the same inputs and
    models (no worker runs); a changed input, or the Analyze button, runs it again."""
    import os

    study, vol, w, panel = _study_and_viewer(qtbot, tmp_path)
    panel.service.set_spare(False)
    w.set_study_paths({"study": study})
    with qtbot.waitSignal(panel.service.finished, timeout=300000) as blocker:
        w.load_volume(vol)
    first = Path(blocker.args[0])
    assert (first / "analysis_key.json").is_file()
    qtbot.waitUntil(lambda: panel.state.has_result, timeout=5000)
    rows = panel.findings.table.rowCount()

    started: list[dict] = []
    panel.service.progress.connect(lambda *_: started.append({}))
    w.load_volume(vol)  # the same CT opened again
    assert not panel.service.is_running() and started == []
    assert panel.state.has_result and Path(panel.state.out_dir) == first
    assert panel.findings.table.rowCount() == rows
    qtbot.waitUntil(lambda: "Analyze runs it again" in w.statusBar().currentMessage(), timeout=2000)
    # the findings dock says when the analysis it shows was made
    from datetime import datetime

    made = datetime.fromtimestamp((first / "findings.json").stat().st_mtime)
    assert f"{made:%Y-%m-%d %H:%M}" in panel.findings.source.text()

    # one slice file rewritten (new modification time): the inputs are not the same any more
    f = sorted(study.iterdir())[0]
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    with qtbot.waitSignal(panel.service.finished, timeout=300000) as blocker:
        w.load_volume(vol)
    second = Path(blocker.args[0])
    assert second != first
    # the Analyze button runs even with nothing changed
    with qtbot.waitSignal(panel.service.finished, timeout=300000) as blocker:
        panel.act_analyze.trigger()
    assert Path(blocker.args[0]) not in (first, second)
    panel.service.shutdown()


def test_the_analysis_request_carries_the_saved_review(qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Analyze gives the worker the reader's saved review of the series, so the deep model, Fleischner
    and the suggestions are computed without the rejected nodules; a changed review is a new input, so
    an analysis made before it is not shown again as current."""
    from tests.viewer_model.phantoms import sphere_volume
    from viewer.model.analysis import AnalysisState, review_path_for

    w = MainWindow(settings=Settings())
    qtbot.addWidget(w)
    panel = install_analysis(w)
    panel.service.set_spare(False)
    vol = sphere_volume(uid="2.25.4242")
    monkeypatch.setattr(w, "volume", lambda: vol)
    w.set_study_paths({"study": tmp_path})
    before = panel.build_request()
    assert before is not None and "review" not in before
    st = AnalysisState()
    st.set_result({"series": {"series_instance_uid": "2.25.4242"}, "nodules": [{"id": 1, "center_lps_mm": [0, 0, 0]}]})
    st.set_review(1, "rejected")  # saved at once
    after = panel.build_request()
    assert after["review"] == str(review_path_for("2.25.4242")) and Path(after["review"]).is_file()
    assert after["cache_key"] != before["cache_key"]
    w.close()
