"""What a user waits for after pressing Analyze: the viewer's worker, end to end.

    .venv/bin/python -m benchmarks.bench_worker [--baseline REV] [--rounds 3] [--study DIR]

The viewer hands each analysis to a worker process (:mod:`viewer.services.analysis`). A worker
started together with its request pays for importing torch and MONAI, reading the weights and
touching its memory for the first time -- none of which the warm in-process benchmarks
(``bench_inference``) see. Since the spare worker, the viewer starts the next worker ahead of the
request, and the worker does that part before it reads the request (``{"type": "ready"}``).

Side by side in one run, alternating, each a new process on the same study:

* ``baseline``: the worker of commit ``--baseline`` (a ``git worktree`` under
  ``benchmarks/_work``, run with this checkout's ``.venv``), started with its request;
* ``current, fresh``: this checkout's worker started with its request (the viewer without a
  spare: ``CLINVIEW_SPARE_WORKER=0``, or a spare that died);
* ``current, spare``: this checkout's worker started ahead; the request is written once it
  said ``ready``, and the time counts from then -- what the user waits for when the spare was
  ready, as it is after the first seconds of a viewer session.

Printed per run: wall time to the result line, the warm-up the spare did beforehand, and the
findings' own stage seconds; per variant: the median wall time and whether every run's
findings equal the first run's (same centres, volumes and probabilities). The worktree stays
under ``benchmarks/_work`` for the next run (``git worktree remove`` it when done).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared" / "data" / "lung-pet-ct-dx" / "A0001" / "ct-lung-kernel"


def _worktree(rev: str) -> Path:
    d = REPO / "benchmarks" / "_work" / f"worker-{rev}"
    if not (d / "inference" / "worker.py").is_file():
        d.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "worktree", "add", "--detach", "--force", str(d), rev], cwd=REPO, check=True,
                       capture_output=True)
    return d


def run_worker(code_dir: Path, study: Path, out: Path, *, spare: bool) -> tuple[float, float, dict[str, Any]]:
    """(wall seconds to the result line, seconds of warm-up before the request, findings written).

    ``spare``: the request is written after the worker's ``ready`` line and the wall time counts
    from then; otherwise it is written at spawn and the time counts from the spawn.
    """
    req = json.dumps({"command": "analyze", "study": str(study), "out": str(out), "device": "cpu"})
    t0 = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-c", "import runpy, sys; sys.path.insert(0, sys.argv[1]); "
                          "runpy.run_module('inference.worker', run_name='__main__')", str(code_dir)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=code_dir)
    assert p.stdin is not None and p.stdout is not None
    warm = 0.0
    if spare:
        ready = json.loads(p.stdout.readline())
        if ready.get("type") != "ready":
            raise RuntimeError(f"worker in {code_dir} said {ready} before its request")
        warm = time.perf_counter() - t0
    t = time.perf_counter() if spare else t0
    out_text, err = p.communicate(req, timeout=900)
    wall = time.perf_counter() - t
    last = json.loads(out_text.strip().splitlines()[-1])
    if last.get("type") != "result":
        raise RuntimeError(f"worker in {code_dir} failed: {last} {err[-2000:]}")
    return wall, warm, json.loads(Path(last["findings"]).read_text())


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    key = [(n["center_voxel_zyx"], n["volume_mm3"], n["probability"]) for n in a["nodules"]]
    return key == [(n["center_voxel_zyx"], n["volume_mm3"], n["probability"]) for n in b["nodules"]]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", default="HEAD~1")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--study", type=Path, default=REAL)
    a = ap.parse_args()
    rev = subprocess.run(["git", "rev-parse", "--short", a.baseline], cwd=REPO, check=True, capture_output=True,
                         text=True).stdout.strip()
    variants = [("baseline " + rev, _worktree(rev), False), ("current, fresh", REPO, False), ("current, spare", REPO, True)]
    work = REPO / "benchmarks" / "_work" / "worker-out"
    walls: dict[str, list[float]] = {name: [] for name, _, _ in variants}
    same: dict[str, bool] = {name: True for name, _, _ in variants}
    ref = None
    for r in range(a.rounds):
        for k, (name, code, spare) in enumerate(variants if r % 2 == 0 else variants[::-1]):
            wall, warm, f = run_worker(code, a.study, work / f"{r}-{k}", spare=spare)
            ref = ref or f
            walls[name].append(round(wall, 2))
            same[name] = same[name] and _same(f, ref)
            print(json.dumps({"round": r, "variant": name, "wall_s": round(wall, 2), "warm_up_before_s": round(warm, 2),
                              "seconds": f["model"]["seconds"], "nodules": len(f["nodules"])}), flush=True)
    summary = {name: {"median_wall_s": statistics.median(w), "wall_s": w, "same_findings_as_first": same[name]}
               for name, w in walls.items()}
    print(json.dumps({"study": str(a.study), "cpus": os.cpu_count(), "summary": summary}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
