"""Background loading keeps the window responsive; cancel keeps what was on
screen; a newer request wins; errors become one line. Real DICOM written by
``tests.dicomgen`` when the DICOM loader is present."""

from __future__ import annotations

import importlib.util
import time

import numpy as np
import pytest
from PySide6.QtCore import QTimer

from inference.errors import CancelledError, SeriesLoadError
from inference.types import Progress, Volume
from tests.viewer_model.phantoms import sphere_volume

HAS_DICOM_LOADER = importlib.util.find_spec("inference.io.dicom_series") is not None
needs_loader = pytest.mark.skipif(not HAS_DICOM_LOADER, reason="inference.io.dicom_series not there yet")


def slow_source(n_slices: int = 120, size: int = 512, delay_s: float = 0.0):
    """A loader that builds a volume slice by slice with real numpy work and
    the real progress/cancel protocol, at a speed the test chooses. Used only
    where the real DICOM loader is too fast to catch in the act (cancel);
    responsiveness is tested with real DICOM files."""

    def load(source, *, series_uid=None, progress=None, cancel=None) -> Volume:
        arr = np.empty((n_slices, size, size), np.int16)
        yy, xx = np.mgrid[:size, :size]
        r2 = (yy - size / 2) ** 2 + (xx - size / 2) ** 2
        for k in range(n_slices):
            if cancel is not None and cancel():
                raise CancelledError()
            arr[k] = np.where(r2 < (size / 3) ** 2, 40, -1000) + (k % 7)
            if delay_s:
                time.sleep(delay_s)
            if progress is not None:
                progress(Progress((k + 1) / n_slices, f"slice {k + 1}/{n_slices}"))
        v = sphere_volume(shape=(3, 3, 3))
        return Volume(array=arr, spacing=(1.0, 0.7, 0.7), origin=(0.0, 0.0, 0.0), direction=np.eye(3),
                      series=v.series)

    return load


@pytest.fixture
def make_window(qtbot):
    from viewer.app import make_app
    from viewer.main_window import MainWindow
    from viewer.model.settings import Settings
    from viewer.services.loader import LoaderService

    made = []

    def make(load_fn=None):
        make_app()
        loader = LoaderService(load_fn=load_fn) if load_fn else None
        w = MainWindow(settings=Settings(), loader=loader)
        if loader is not None:
            loader.setParent(w)
        qtbot.addWidget(w)
        w.resize(1200, 800)
        w.show()
        made.append(w)
        return w

    yield make
    for w in made:
        w.loader.cancel()
        w.loader.wait_idle(20000)


class Gap(float):
    """The largest gap between timer ticks (ms), with the GUI thread's CPU
    time inside it: when a gap fails, that says whether the GUI thread was
    busy (our code) or waiting (GIL held by a worker, or a loaded machine)."""

    cpu_ms: float = 0.0

    def __repr__(self) -> str:
        return f"{float(self):.0f} ms (GUI-thread CPU {self.cpu_ms:.0f} ms)"


def _max_timer_gap_while(qtbot, window, start, done) -> Gap:
    """Start a 10 ms QTimer, call ``start()``, wait for ``done()``; return the
    largest gap between timer ticks."""
    ticks: list[tuple[float, float]] = []
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append((time.perf_counter(), time.thread_time())))
    timer.start()
    qtbot.wait(50)
    start()
    qtbot.waitUntil(done, timeout=90000)
    qtbot.wait(30)
    timer.stop()
    t = np.asarray(ticks)
    wall, cpu = np.diff(t[:, 0]) * 1000, np.diff(t[:, 1]) * 1000
    j = int(np.argmax(wall))
    gap = Gap(wall[j])
    gap.cpu_ms = float(cpu[j])
    return gap


@pytest.mark.slow
@needs_loader
def test_large_dicom_series_loads_while_the_event_loop_keeps_running(make_window, qtbot, tmp_path) -> None:
    from tests.dicomgen import write_ct_series

    n = 300  # the issue's "large series": 300 × 512×512, 150 MB of int16
    arr = np.full((n, 512, 512), -1000, np.int16)
    arr[:, 100:400, 80:430] = 40
    arr[n // 2, 250, 250] = 1234
    write_ct_series(tmp_path / "big", arr, spacing=(1.25, 0.7, 0.7), shuffle_names=True)
    w = make_window()
    gap = _max_timer_gap_while(qtbot, w, lambda: w.open_path(tmp_path / "big"), lambda: w.volume() is not None)
    assert w.volume().shape == (n, 512, 512)
    assert int(w.volume().array.max()) == 1234
    # The GUI thread itself does no loading work: its CPU time inside the worst gap stays under one
    # frame budget. The wall gap has a looser bound: on a loaded machine (CI's two cores shared with
    # other jobs) it reached 126 ms with 31 ms of GUI-thread CPU -- waiting for a core, not busy with
    # the load --, so it only catches a real freeze (a worker holding the GIL, work done on the GUI
    # thread), which costs seconds on 300 slices.
    assert gap.cpu_ms < 50, f"the GUI thread was busy for {gap!r} during the load"
    assert gap < 250, f"the GUI froze for {gap!r} during the load"
    assert w.browser.topLevelItemCount() == 1  # the study browser lists the patient


def test_progress_bar_and_cancel_keep_the_previous_volume(make_window, qtbot) -> None:
    w = make_window(slow_source(n_slices=400, size=64, delay_s=0.01))
    first = sphere_volume()
    w.load_volume(first)
    with qtbot.waitSignal(w.loader.cancelled, timeout=20000):
        w.loader.load("/slow")
        qtbot.waitUntil(lambda: w.progress.isVisible() and w.progress.value() > 0, timeout=10000)
        assert w.cancel_button.isVisible()
        w.cancel_button.click()
    assert w.volume() is first
    qtbot.waitUntil(lambda: not w.progress.isVisible(), timeout=5000)
    assert "cancelled" in w.statusBar().currentMessage()


def test_newest_request_wins(make_window, qtbot) -> None:
    calls = []

    def source(src, *, series_uid=None, progress=None, cancel=None):
        calls.append(src)
        for _ in range(200 if src == "old" else 1):
            if cancel():
                raise CancelledError()
            time.sleep(0.005)
        return sphere_volume(shape=(5, 8, 8) if src == "old" else (7, 8, 8))

    w = make_window(source)
    loaded = []
    w.volume_loaded.connect(loaded.append)
    w.loader.load("old")
    w.loader.load("new")
    qtbot.waitUntil(lambda: bool(loaded), timeout=10000)
    w.loader.wait_idle(10000)
    qtbot.wait(50)
    assert [v.shape for v in loaded] == [(7, 8, 8)]


def test_load_error_is_one_line_and_nothing_breaks(make_window, qtbot) -> None:
    def broken(src, *, series_uid=None, progress=None, cancel=None):
        raise SeriesLoadError("slices have different sizes", where=str(src), fix="load another series")

    w = make_window(broken)
    first = sphere_volume()
    w.load_volume(first)
    with qtbot.waitSignal(w.loader.failed, timeout=5000):
        w.loader.load("/data/ct")
    assert w.volume() is first
    assert w.issues() == ["/data/ct: slices have different sizes (load another series)"]


@needs_loader
def test_open_folder_lists_series_and_loads_the_ct(make_window, qtbot, tmp_path) -> None:
    from tests.dicomgen import phantom, write_ct_series

    arr = phantom((12, 40, 48))
    write_ct_series(tmp_path / "study" / "s1", arr, spacing=(2.5, 0.7, 0.8), series_number=2,
                    series_description="lung kernel", patient_name="Doe^Jane", patient_id="P42")
    write_ct_series(tmp_path / "study" / "s2", arr[:4], spacing=(2.5, 0.7, 0.8), series_number=5,
                    series_description="scout", patient_name="Doe^Jane", patient_id="P42")
    w = make_window()
    w.open_path(tmp_path / "study")
    qtbot.waitUntil(lambda: w.volume() is not None, timeout=30000)
    assert w.volume().shape == (12, 40, 48)  # the larger CT series is opened
    assert np.array_equal(w.volume().array, arr)
    assert w.study_paths()["study"] == tmp_path / "study"
    assert str(tmp_path / "study") in w.settings.recent
    # the browser lists both series; double-clicking the other loads it
    item = w.browser.series_item(w.volume().series.series_instance_uid)
    assert item is not None and item.text(0) == "#2 lung kernel\nCT · 12 images"
    items = [w.browser._series_items[u] for u in w.browser._series_items]
    other = next(i for i in items if "4 images" in i.text(0))
    with qtbot.waitSignal(w.volume_loaded, timeout=30000):
        w.browser.itemActivated.emit(other, 0)
    assert w.volume().shape == (4, 40, 48)
    assert "Doe^Jane" in w.grid.views["axial"].corner["tl"].text()
    qtbot.waitUntil(lambda: not other.icon(0).isNull(), timeout=10000)  # thumbnail


@needs_loader
def test_prior_study_is_listed_beside_the_opened_one(make_window, qtbot, tmp_path) -> None:
    from tests.dicomgen import phantom, write_ct_series

    arr = phantom((6, 24, 24))
    write_ct_series(tmp_path / "followup", arr, study_date="20250301", study_description="CT follow-up",
                    patient_id="P7", patient_name="Roe^Ann")
    write_ct_series(tmp_path / "baseline", arr[:5], study_date="20240301", study_description="CT baseline",
                    patient_id="P7", patient_name="Roe^Ann")
    w = make_window()
    w.open_path(tmp_path / "followup", also_list={"prior": tmp_path / "baseline"})
    qtbot.waitUntil(lambda: w.volume() is not None and len(w.browser._series_items) == 2, timeout=30000)
    assert w.volume().shape == (6, 24, 24)  # the prior is listed, not opened
    studies = [w.browser.study_item(s.study.study_instance_uid).text(0) for s in w.browser.scan_result.series]
    assert any("CT baseline" in t and "prior" in t for t in studies)
    assert any("CT follow-up" in t and "prior" not in t for t in studies)
    assert w.browser.topLevelItemCount() == 1  # one patient


@needs_loader
def test_folder_without_dicom_says_so_in_one_line(make_window, qtbot, tmp_path) -> None:
    (tmp_path / "notes.txt").write_text("not an image")
    w = make_window()
    first = sphere_volume()
    w.load_volume(first)
    w.open_path(tmp_path)
    qtbot.waitUntil(lambda: w.last_error is not None, timeout=10000)
    assert w.last_error == f"{tmp_path}: no DICOM image series found"
    assert w.last_error in w.issues()
    assert w.volume() is first  # what was on screen stays
