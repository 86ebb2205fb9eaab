"""Viewer benchmarks (issue 4): repaint, open-to-image, memory, start-up.

Run: ``QT_QPA_PLATFORM=offscreen .venv/bin/python -m benchmarks.bench_viewer [--slices 400]``

Every number is measured next to a baseline in the same run:

* slice change → repaint at 512×512: clinview's view (window LUT + uint8
  image) vs a plain pyqtgraph ImageItem fed int16 with ``levels``;
* double-click → first image / all three MPR views for an N-slice series
  written with ``tests.dicomgen``, vs ``inference.api.load_series`` alone;
* resident memory per loaded volume above the empty app vs the int16 size;
* start-up to visible window vs a bare PySide6 window, plus a check that
  torch/monai are not imported.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parents[1]


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _pct(ts: list[float]) -> dict[str, float]:
    a = np.asarray(ts)
    return {"median_ms": round(float(np.median(a)), 2), "p95_ms": round(float(np.percentile(a, 95)), 2)}


def bench_repaint(n: int = 400) -> dict:
    import pyqtgraph as pg
    from PySide6.QtWidgets import QApplication

    from inference.types import Volume
    from viewer.app import make_app, wait_until
    from viewer.main_window import MainWindow
    from viewer.model.settings import Settings

    make_app()
    rng = np.random.default_rng(0)
    arr = rng.integers(-1000, 1000, (64, 512, 512)).astype(np.int16)
    vol = Volume(array=arr, spacing=(1.0, 0.7, 0.7), origin=(0.0, 0.0, 0.0), direction=np.eye(3))
    w = MainWindow(settings=Settings(layout="mpr"))
    w.resize(1600, 1000)
    w.show()
    w.load_volume(vol)
    wait_until(lambda: False, 0.3)
    view = w.grid.views["axial"]
    ts, cpu = [], []
    for i in range(n):
        t, c = time.perf_counter(), time.thread_time()
        w.model.set_slice("axial", i % 64)
        view.viewport().repaint()
        ts.append((time.perf_counter() - t) * 1000)
        cpu.append((time.thread_time() - c) * 1000)
    # wall time is what the reader feels; GUI-thread CPU time is the code's
    # own cost, which other jobs on a shared machine do not inflate
    ours = {**_pct(ts), "cpu": _pct(cpu)}
    ts = []
    for i in range(n // 2):
        t = time.perf_counter()
        w.model.set_cursor_voxel((i % 64, (i * 7) % 512, (i * 13) % 512))
        for v in w.grid.visible_views():
            v.viewport().repaint()
        ts.append((time.perf_counter() - t) * 1000)
    all3 = _pct(ts)
    w.close()

    # baseline: pyqtgraph's own int16 + levels path in a view of the same size
    gv = pg.GraphicsView()
    vb = pg.ViewBox(lockAspect=True, invertY=True)
    gv.setCentralItem(vb)
    item = pg.ImageItem(axisOrder="row-major")
    vb.addItem(item)
    gv.resize(view.width(), view.height())
    gv.show()
    item.setImage(arr[0], levels=(-1350, 150))
    vb.autoRange(padding=0)
    QApplication.processEvents()
    ts, cpu = [], []
    for i in range(n):
        t, c = time.perf_counter(), time.thread_time()
        item.setImage(arr[i % 64], autoLevels=False, levels=(-1350, 150))
        gv.viewport().repaint()
        ts.append((time.perf_counter() - t) * 1000)
        cpu.append((time.thread_time() - c) * 1000)
    base = {**_pct(ts), "cpu": _pct(cpu)}
    gv.close()
    return {"view_px": [view.width(), view.height()], "clinview_axial": ours, "clinview_all_three_views": all3,
            "baseline_pyqtgraph_int16_levels": base}


def bench_open(n_slices: int) -> dict:
    import importlib.util

    if importlib.util.find_spec("inference.io.dicom_series") is None:
        return {"skipped": "inference.io.dicom_series not present"}
    sys.path.insert(0, str(REPO))
    from tests.dicomgen import write_ct_series  # noqa: PLC0415

    from inference import api
    from viewer.app import make_app, wait_until
    from viewer.main_window import MainWindow
    from viewer.model.settings import Settings

    app = make_app()
    tmp = Path(tempfile.mkdtemp(prefix="clinview-bench-"))
    arr = np.full((n_slices, 512, 512), -1000, np.int16)
    arr[:, 96:416, 64:448] = 40
    t = time.perf_counter()
    write_ct_series(tmp / "ct", arr, spacing=(1.0, 0.7, 0.7), shuffle_names=True)
    write_s = time.perf_counter() - t
    del arr
    scan = api.scan(tmp / "ct")
    series = scan.series[0]
    # baseline: the loader alone, no GUI (second read: warm file cache for both)
    api.load_series(series)
    t = time.perf_counter()
    v = api.load_series(series)
    loader_s = time.perf_counter() - t
    vol_mb = v.array.nbytes / 2**20
    del v

    w = MainWindow(settings=Settings(layout="mpr"))
    w.resize(1600, 1000)
    w.show()
    wait_until(lambda: False, 0.3)
    w.browser.set_scan(scan)
    rss0 = _rss_mb()
    item = w.browser.series_item(series.series_instance_uid)
    painted: dict[str, float] = {}
    views = w.grid.views
    for vid in ("axial", "coronal", "sagittal"):
        orig = views[vid].image.paint

        def spy(*a, _vid=vid, _orig=orig):  # type: ignore[no-untyped-def]
            if views[_vid]._raw is not None and _vid not in painted:
                painted[_vid] = time.perf_counter()
            return _orig(*a)

        views[vid].image.paint = spy
    t0 = time.perf_counter()
    w.browser.itemActivated.emit(item, 0)  # what a double-click does
    wait_until(lambda: len(painted) == 3, 300)
    first = min(painted.values()) - t0
    all3 = max(painted.values()) - t0
    wait_until(lambda: False, 0.5)
    rss1 = _rss_mb()
    # open it again: the previous copy must be freed, not accumulate
    first_vol = w.volume()
    w.browser.itemActivated.emit(item, 0)
    wait_until(lambda: w.volume() is not first_vol, 300)
    del first_vol
    wait_until(lambda: False, 0.5)
    import gc

    gc.collect()
    rss2 = _rss_mb()
    w.close()
    app.processEvents()
    return {"slices": n_slices, "write_s": round(write_s, 1), "baseline_api_load_series_s": round(loader_s, 2),
            "double_click_to_first_image_s": round(first, 2), "double_click_to_three_mpr_views_s": round(all3, 2),
            "volume_int16_mb": round(vol_mb, 1), "rss_above_empty_mb": round(rss1 - rss0, 1),
            "rss_ratio_to_int16": round((rss1 - rss0) / vol_mb, 2),
            "rss_above_empty_after_reopening_mb": round(rss2 - rss0, 1)}


_CHILD = r"""
import sys, time
t_import = time.perf_counter()
from viewer.app import make_app, build_window
from PySide6.QtWidgets import QApplication
app = make_app()
w = build_window()
w.show()
QApplication.processEvents()
print(time.time(), sorted(m for m in ('torch', 'monai') if m in sys.modules))
"""

_BARE = r"""
import time
from PySide6.QtWidgets import QApplication, QMainWindow
app = QApplication([])
w = QMainWindow(); w.resize(1600, 1000); w.show(); QApplication.processEvents()
print(time.time(), [])
"""


def bench_startup(repeat: int = 5) -> dict:
    def run(code: str) -> tuple[float, list]:
        env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "CLINVIEW_DATA_DIR": tempfile.mkdtemp()}
        t0 = time.time()
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env, check=True)
        line = out.stdout.strip().splitlines()[-1]
        t_vis, mods = line.split(" ", 1)
        return float(t_vis) - t0, json.loads(mods.replace("'", '"'))

    ours, bare, mods = [], [], []
    for _ in range(repeat):
        s, m = run(_CHILD)
        ours.append(s)
        mods = m
        bare.append(run(_BARE)[0])
    return {"clinview_start_to_visible_s_median": round(float(np.median(ours)), 2),
            "clinview_max_s": round(max(ours), 2),
            "baseline_bare_pyside6_window_s_median": round(float(np.median(bare)), 2),
            "heavy_modules_imported": mods}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--slices", type=int, default=400)
    ap.add_argument("--skip-open", action="store_true")
    args = ap.parse_args()
    res = {"startup": bench_startup(), "repaint_512": bench_repaint()}
    if not args.skip_open:
        res["open_series"] = bench_open(args.slices)
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
