"""DICOM loading benchmark: clinview vs SimpleITK on the same files, same run.

Run: ``.venv/bin/python -m benchmarks.bench_load [--runs 7] [--skip-400]``

Measures (warm page cache, median of ``--runs`` after one warm-up run):

1. the real 64-slice Lung-PET-CT-Dx series (when ``../shared/data`` exists):
   ``inference.io.dicom_series.load_series(folder)`` (scan + sort + pixels)
   against SimpleITK ``ImageSeriesReader`` with its own GDCM sort
   (``GetGDCMSeriesFileNames`` + ``Execute``), and clinview with the fast
   path disabled (pydicom pixel handler per file) to show what the walker buys;
2. a generated 512×512×400 CT series (written once into ``benchmarks/_work``);
3. header scan of a 2,000-file folder (files/s), against pydicom
   ``dcmread(stop_before_pixels=True)`` on the same files;
4. peak Python-heap memory (tracemalloc, which numpy reports to) during the
   400-slice load, relative to the final array's size.

Every comparison asserts identical voxels before it prints a time.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import time
import tracemalloc
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from inference.io import dicom_index, dicom_series
from inference.io.dicom_series import load_series

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "benchmarks" / "_work"
REAL = REPO.parent / "shared" / "data" / "lung-pet-ct-dx" / "A0001" / "ct-lung-kernel"


def _median_time(fn: Callable[[], object], runs: int) -> tuple[float, object]:
    out = fn()  # warm-up: page cache, imports, first-call overheads
    times = []
    for _ in range(runs):
        gc.collect()
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def _sitk_load(folder: Path) -> np.ndarray:
    import SimpleITK as sitk

    r = sitk.ImageSeriesReader()
    r.SetFileNames(r.GetGDCMSeriesFileNames(str(folder)))
    return sitk.GetArrayFromImage(r.Execute())


def _clinview_load(folder: Path) -> np.ndarray:
    dicom_index._CACHE.clear()  # no help from a previous run's header cache
    return load_series(folder).array


def _clinview_pydicom(folder: Path) -> np.ndarray:
    dicom_index._CACHE.clear()
    saved = dicom_series.read_native_at
    dicom_series.read_native_at = lambda *a, **k: None  # type: ignore[assignment]
    try:
        return load_series(folder).array
    finally:
        dicom_series.read_native_at = saved  # type: ignore[assignment]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _generate_400(folder: Path) -> None:
    from tests.dicomgen import write_ct_series

    if folder.is_dir() and len(list(folder.glob("*.dcm"))) == 400:
        return
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    base = rng.integers(-1000, 1500, (512, 512)).astype(np.int16)
    # write in chunks so generation itself never holds 400 slices twice
    for start in range(0, 400, 50):
        chunk = np.stack([np.roll(base, k, axis=1) for k in range(start, start + 50)])
        write_ct_series(
            folder,
            chunk,
            spacing=(1.0, 0.7, 0.7),
            origin=(-180.0, -180.0, -300.0 + start * 1.0),
            series_uid="1.2.826.0.1.3680043.8.498.400400",
            study_uid="1.2.826.0.1.3680043.8.498.400401",
            frame_of_reference_uid="1.2.826.0.1.3680043.8.498.400402",
            instance_numbers=list(range(start + 1, start + 51)),
            name_prefix=f"c{start:03d}_",
            seed=start,
        )


def _generate_2000(folder: Path) -> None:
    from tests.dicomgen import write_ct_series

    if folder.is_dir() and len(list(folder.glob("*.dcm"))) == 2000:
        return
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for s in range(10):  # 10 series × 200 files of 128×128
        arr = rng.integers(-1000, 1000, (200, 128, 128)).astype(np.int16)
        write_ct_series(folder, arr, series_number=s + 1, name_prefix=f"s{s:02d}_", seed=s)


def _compare(name: str, folder: Path, runs: int, with_pydicom: bool) -> list[str]:
    t_sitk, ref = _median_time(lambda: _sitk_load(folder), runs)
    t_cv, arr = _median_time(lambda: _clinview_load(folder), runs)
    assert np.array_equal(arr, ref), f"{name}: clinview and SimpleITK voxels differ"  # type: ignore[arg-type]
    rows = [
        f"| {name} | SimpleITK ImageSeriesReader (GDCM sort) | {t_sitk * 1e3:.0f} ms | 1.00 |",
        f"| {name} | clinview load_series (fast path) | {t_cv * 1e3:.0f} ms | {t_cv / t_sitk:.2f} |",
    ]
    if with_pydicom:
        t_py, arr2 = _median_time(lambda: _clinview_pydicom(folder), max(3, runs // 2))
        assert np.array_equal(arr2, ref)  # type: ignore[arg-type]
        rows.append(f"| {name} | clinview, fast path off (pydicom per file) | {t_py * 1e3:.0f} ms | {t_py / t_sitk:.2f} |")
    return rows


def _scan_rate(folder: Path, runs: int) -> list[str]:
    import pydicom

    files = sorted(folder.glob("*.dcm"))

    def cv() -> object:
        dicom_index._CACHE.clear()
        return dicom_index.scan(folder)

    def pyd() -> object:
        return [pydicom.dcmread(f, stop_before_pixels=True) for f in files]

    t_cv, res = _median_time(cv, runs)
    assert len(res.series) == 10 and not res.skipped  # type: ignore[attr-defined]
    t_py, _ = _median_time(pyd, max(3, runs // 2))
    return [
        f"| header scan, {len(files)} files | pydicom dcmread(stop_before_pixels) loop | {len(files) / t_py:,.0f} files/s | {t_py * 1e3:.0f} ms |",
        f"| header scan, {len(files)} files | clinview scan() (walk + group + sort) | {len(files) / t_cv:,.0f} files/s | {t_cv * 1e3:.0f} ms |",
    ]


def _peak_memory(folder: Path) -> str:
    dicom_index._CACHE.clear()
    load_series(folder)  # warm
    dicom_index._CACHE.clear()
    gc.collect()
    tracemalloc.start()
    v = load_series(folder)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    nbytes = v.array.nbytes
    return (
        f"peak traced memory during the 400-slice load: {peak / 2**20:.0f} MiB for a "
        f"{nbytes / 2**20:.0f} MiB array = {peak / nbytes:.3f}× the array (transient beyond the array: "
        f"{(peak - nbytes) / 2**20:.1f} MiB)"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--skip-400", action="store_true", help="skip the 512×512×400 series")
    args = p.parse_args(argv)
    print(f"date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}")
    print(f"machine: {os.cpu_count()} CPUs (nproc), {_cpu_model()}, Python {platform.python_version()}")
    print(f"command: .venv/bin/python -m benchmarks.bench_load --runs {args.runs}")
    print()
    print("| data | reader | median time | ratio to SimpleITK |")
    print("|---|---|---|---|")
    if REAL.is_dir():
        for row in _compare("real CT, 64×512×512 (Implicit VR LE)", REAL, args.runs, with_pydicom=True):
            print(row, flush=True)
    else:
        print("| real CT | (../shared/data absent: skipped) | | |")
    if not args.skip_400:
        g400 = WORK / "gen_512x512x400"
        _generate_400(g400)
        for row in _compare("generated, 400×512×512 (Explicit VR LE)", g400, max(3, args.runs // 2), with_pydicom=False):
            print(row, flush=True)
    print()
    print("| task | reader | rate | median time |")
    print("|---|---|---|---|")
    g2000 = WORK / "scan_2000"
    _generate_2000(g2000)
    for row in _scan_rate(g2000, args.runs):
        print(row, flush=True)
    if not args.skip_400:
        print()
        print(_peak_memory(WORK / "gen_512x512x400"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
