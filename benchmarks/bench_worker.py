"""What a user waits for after pressing Analyze: the viewer's worker, a fresh process, end to end.

    .venv/bin/python -m benchmarks.bench_worker [--baseline REV] [--rounds 3] [--study DIR]

The viewer starts ``python -m inference.worker`` anew for every analysis
(:mod:`viewer.services.analysis`), so each analysis pays for importing torch
and MONAI, reading the weights and touching its memory for the first time --
none of which the warm in-process benchmarks (``bench_inference``) see.

Side by side in one run, alternating, each a new process on the same study:

* ``baseline``: the worker of commit ``--baseline`` (a ``git worktree`` under
  ``benchmarks/_work``, run with this checkout's ``.venv``);
* ``current``: this checkout's worker;
* ``current, NUMPY_MADVISE_HUGEPAGE=1``: the same with numpy's huge-page
  advice turned back on by the user (the worker leaves an explicit setting
  alone; see :mod:`inference.process`).

Printed per run: wall time from spawn to the result line and the findings'
own stage seconds; per variant: the median wall time and whether every run's
findings equal the first run's (same centres, volumes and probabilities).
The worktree stays under ``benchmarks/_work`` for the next run
(``git worktree remove`` it when done).
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


def run_worker(code_dir: Path, study: Path, out: Path, env: dict[str, str]) -> tuple[float, dict[str, Any]]:
    """Wall seconds from spawn to the result line, and the findings written."""
    req = json.dumps({"command": "analyze", "study": str(study), "out": str(out), "device": "cpu"})
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", "import runpy, sys; sys.path.insert(0, sys.argv[1]); "
                        "runpy.run_module('inference.worker', run_name='__main__')", str(code_dir)],
                       input=req, capture_output=True, text=True, env={**os.environ, **env}, cwd=code_dir)
    wall = time.perf_counter() - t
    last = json.loads(p.stdout.strip().splitlines()[-1])
    if last.get("type") != "result":
        raise RuntimeError(f"worker in {code_dir} failed: {last} {p.stderr[-2000:]}")
    return wall, json.loads(Path(last["findings"]).read_text())


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
    variants = [("baseline " + rev, _worktree(rev), {}), ("current", REPO, {}),
                ("current, NUMPY_MADVISE_HUGEPAGE=1", REPO, {"NUMPY_MADVISE_HUGEPAGE": "1"})]
    work = REPO / "benchmarks" / "_work" / "worker-out"
    walls: dict[str, list[float]] = {name: [] for name, _, _ in variants}
    same: dict[str, bool] = {name: True for name, _, _ in variants}
    ref = None
    for r in range(a.rounds):
        for k, (name, code, env) in enumerate(variants if r % 2 == 0 else variants[::-1]):
            wall, f = run_worker(code, a.study, work / f"{r}-{k}", env)
            ref = ref or f
            walls[name].append(round(wall, 2))
            same[name] = same[name] and _same(f, ref)
            print(json.dumps({"round": r, "variant": name, "wall_s": round(wall, 2), "seconds": f["model"]["seconds"],
                              "nodules": len(f["nodules"])}), flush=True)
    summary = {name: {"median_wall_s": statistics.median(w), "wall_s": w, "same_findings_as_first": same[name]}
               for name, w in walls.items()}
    print(json.dumps({"study": str(a.study), "cpus": os.cpu_count(), "summary": summary}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
