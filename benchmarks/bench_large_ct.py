"""A 512×512×300 chest CT from DICOM to findings, each stage timed: the issue's GPU target, measured where we are.

    .venv/bin/python -m benchmarks.bench_large_ct [--device auto|cpu|cuda] [--repeats 2] [--threads N]

Issue 5 asks for a 512×512×300 CT from DICOM to findings in under 2 s on an
H100-class GPU, with the time of each stage. This script is that measurement,
ready for a machine with a GPU and run here on the CPU meanwhile:

* a synthetic chest CT of 300 slices at 1.0 mm (512² pixels of 0.7 mm, 4
  nodules of 6-20 mm, seed 9300) is written once as a DICOM series under
  ``.cache/bench_large`` (SimpleITK/pydicom read it like any other folder);
* :func:`inference.pipeline.analyze.analyze` runs on that folder in this process
  -- DICOM reading, lungs, candidates, classifier, halo growth, measurements,
  guidelines and writing ``findings.json`` + label maps -- once to warm up
  (imports, weights, first-touch memory: what the viewer's spare worker has
  already done when the user presses Analyze), then ``--repeats`` times timed;
* printed per run: wall seconds and every stage of ``findings.json``'s
  ``model.seconds``, the device the classifier ran on, and how many of the
  phantom's nodules a finding covers.

There is no baseline to run beside it: the target is an absolute time. What
the CPU run shows is where the time goes, i.e. what a GPU would have to take
over (benchmarks/RESULTS.md).
"""

from __future__ import annotations

from inference.process import prepare_analysis_process

prepare_analysis_process()  # as the worker and `clinview analyze` run (numpy without huge-page advice)

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import date  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".cache" / "bench_large"


def make_study(seed: int, slices: int) -> tuple[Path, np.ndarray]:
    """The DICOM folder (written once) and the phantom's nodule truth (label per nodule, CT grid)."""
    from inference.synth.dicom_writer import derive_uid, write_ct_series
    from inference.synth.phantom import make_phantom
    from inference.types import PatientInfo

    d = CACHE / f"ct_{seed}_{slices}"
    truth_file = CACHE / f"truth_{seed}_{slices}.npz"
    if d.is_dir() and truth_file.is_file() and len(list(d.glob("*.dcm"))) == slices:
        with np.load(truth_file) as z:
            return d, z["nodules"]
    ph = make_phantom(seed, shape=(512, 512), pixel_mm=0.7, slice_mm=1.0, n_slices=slices, n_nodules=4,
                      nodule_size_mm=(6.0, 20.0))
    tmp = Path(tempfile.mkdtemp(dir=CACHE.parent if CACHE.parent.is_dir() else None))
    write_ct_series(ph, tmp, patient=PatientInfo(patient_id=f"BENCH-{seed}", name="Bench^Large", sex="O"),
                    study_uid=derive_uid("bench-large", seed, "study"), series_uid=derive_uid("bench-large", seed, slices),
                    study_date=date(2026, 1, 1), description=f"Synthetic chest CT, {slices} slices")
    CACHE.mkdir(parents=True, exist_ok=True)
    if d.exists():
        import shutil

        shutil.rmtree(d)
    tmp.rename(d)
    np.savez_compressed(truth_file, nodules=np.asarray(ph.nodules, np.uint8))
    return d, np.asarray(ph.nodules)


def _covered(truth: np.ndarray, out: Path) -> int:
    """How many phantom nodules have a voxel of a finding (the written ``nodules.nii.gz``)."""
    import SimpleITK as sitk

    lab = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "nodules.nii.gz")))
    ids = [int(i) for i in np.unique(truth) if i > 0]
    return sum(bool((lab[truth == i] > 0).any()) for i in ids)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--slices", type=int, default=300)
    ap.add_argument("--seed", type=int, default=9300)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--json", type=Path, default=None, help="also write the result here")
    a = ap.parse_args()

    import torch

    from inference.pipeline.analyze import analyze

    if a.threads:
        torch.set_num_threads(a.threads)
    t = time.perf_counter()
    study, truth = make_study(a.seed, a.slices)
    print(f"study {study} ready in {time.perf_counter() - t:.1f} s", flush=True)
    env: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None, "device_asked": a.device,
    }
    print(json.dumps(env), flush=True)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(a.repeats + 1):
            out = Path(tmp) / f"run{k}"
            t = time.perf_counter()
            f = analyze(study, out, device=a.device)
            wall = time.perf_counter() - t
            row = {"run": "warm-up" if k == 0 else k, "wall_s": round(wall, 2),
                   "shape_zyx": f["series"]["shape_zyx"],
                   "device": f["model"].get("device"), "warnings": f["warnings"], "seconds": f["model"].get("seconds"),
                   "findings": len(f["nodules"]), "truth_covered": f"{_covered(truth, out)}/{int(truth.max())}"}
            print(json.dumps(row), flush=True)
            if k:
                runs.append(row)
    res = {**env, "study": str(study.relative_to(REPO)) if study.is_relative_to(REPO) else str(study),
           "median_wall_s": round(statistics.median(r["wall_s"] for r in runs), 2), "runs": runs}
    print(json.dumps(res, indent=1))
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
