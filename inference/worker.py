"""Background worker: ``python -m inference.worker``.

Protocol (the viewer's ``viewer.services`` client speaks it):

* stdout, first: ``{"type": "ready", "seconds", "device"}`` once the worker
  has imported the analysis and loaded the nodule network (:func:`warm_up`),
  whether or not a request is waiting; clients that do not know it ignore it;
* stdin: ONE JSON object ``{"command": "analyze", "study", "out",
  "series_uid", "prior", "genomics": [], "labs": [], "clinical", "device",
  "confirm_identity", "cache_key"}`` (``cache_key``: optional; when given it is
  recorded in the output folder once the result is complete, so that the
  viewer can reuse the analysis, :mod:`inference.analysis_cache`);
* stdout: JSON lines ``{"type": "progress", "fraction", "message"}``, then
  exactly one ``{"type": "result", "out_dir", "findings"}`` (exit 0) or
  ``{"type": "error", "message"}`` (exit 2).

Why a separate process: torch, a crash in native code or running out of
memory must never take the GUI down, and cancelling is simply killing this
process (outputs are written atomically by :mod:`inference.pipeline.analyze`,
so a kill leaves no half findings.json). stdout carries only protocol lines;
logs and tracebacks go to stderr.

Why warm up before reading the request: importing torch and MONAI and
loading the weights took 3.0-3.8 s, and a worker started with its request
10.5-13.4 s in all, on two idle cores (benchmarks/bench_worker.py, two runs;
benchmarks/RESULTS.md). The viewer starts its next worker ahead of time
(:class:`viewer.services.analysis.AnalysisService`, the *spare*), so that
part is done while the user is still opening a study; a worker started
together with its request does the same work in the same order as before.
"""

from __future__ import annotations

import json
import signal
import sys
import traceback
from pathlib import Path
from typing import Any, TextIO

__all__ = ["main", "handle", "warm_up"]


def _emit(out: TextIO, obj: dict[str, Any]) -> None:
    out.write(json.dumps(obj) + "\n")
    out.flush()


def handle(request: dict[str, Any], out: TextIO) -> int:
    """Run one request, writing protocol lines to ``out``; returns the exit code."""
    from inference.errors import ClinviewError
    from inference.types import Progress

    cmd = request.get("command")
    if cmd != "analyze":
        _emit(out, {"type": "error", "message": f"unknown command {cmd!r} (expected 'analyze')"})
        return 2
    study = request.get("study")
    dest = request.get("out")
    if not study or not dest:
        _emit(out, {"type": "error", "message": "request needs 'study' and 'out'"})
        return 2

    def progress(p: Progress) -> None:
        _emit(out, {"type": "progress", "fraction": round(float(p.fraction), 4), "message": p.message})

    try:
        from inference.pipeline.analyze import analyze

        analyze(
            Path(study),
            Path(dest),
            series_uid=request.get("series_uid"),
            genomics=[Path(p) for p in request.get("genomics") or []],
            labs=[Path(p) for p in request.get("labs") or []],
            clinical=Path(request["clinical"]) if request.get("clinical") else None,
            prior=Path(request["prior"]) if request.get("prior") else None,
            device=request.get("device") or "auto",
            progress=progress,
            confirm_identity=bool(request.get("confirm_identity", False)),
            review=Path(request["review"]) if request.get("review") else None,
        )
    except ClinviewError as exc:
        _emit(out, {"type": "error", "message": exc.one_line()})
        return 2
    except Exception as exc:  # noqa: BLE001 -- the worker's last line of defence: one line out, details to stderr
        traceback.print_exc(file=sys.stderr)
        msg = f"{type(exc).__name__}: {exc}".replace("\n", " ")
        _emit(out, {"type": "error", "message": f"analysis failed: {msg}"})
        return 2
    if request.get("cache_key"):
        # after findings.json is complete: only a finished analysis is ever reused (inference.analysis_cache)
        from inference.analysis_cache import write_key

        try:
            write_key(Path(dest), str(request["cache_key"]), request)
        except OSError as exc:  # the result stands; it will not be reused
            print(f"analysis key not written: {exc}", file=sys.stderr)
    _emit(out, {"type": "result", "out_dir": str(Path(dest)), "findings": str(Path(dest) / "findings.json")})
    return 0


def warm_up(out: TextIO, device: str = "auto") -> None:
    """Import what an analysis imports and load the nodule network, then say ``ready`` on ``out``.

    Never fatal: a failure here (missing weights, a broken install) is left
    for the request to meet and report as its one-line error; the details go
    to stderr.
    """
    import time

    t = time.perf_counter()
    dev = ""
    try:
        import inference.api  # noqa: F401 -- DICOM reading (pydicom, SimpleITK)
        import inference.clinical.integrate  # noqa: F401 -- risk, genomics, labs
        import inference.pipeline.analyze  # noqa: F401
        import inference.pipeline.candidates  # noqa: F401
        import inference.pipeline.detect  # noqa: F401
        from inference.pipeline.imaging import preload_model

        dev = preload_model("nodules", device)
    except Exception:  # noqa: BLE001 -- the request will meet the same problem and report it
        traceback.print_exc(file=sys.stderr)
    _emit(out, {"type": "ready", "seconds": round(time.perf_counter() - t, 3), "device": dev})


def main() -> int:
    """Read the request from stdin and run it."""
    from inference.process import prepare_analysis_process

    prepare_analysis_process()  # before numpy is imported
    # A cancel is a SIGTERM from the viewer: exit quietly (no traceback).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    out = sys.stdout
    warm_up(out)
    raw = sys.stdin.read()
    try:
        request = json.loads(raw)
        if not isinstance(request, dict):
            raise ValueError("request is not a JSON object")
    except ValueError as exc:
        _emit(out, {"type": "error", "message": f"bad request on stdin: {exc}".replace("\n", " ")})
        return 2
    return handle(request, out)


if __name__ == "__main__":
    sys.exit(main())
