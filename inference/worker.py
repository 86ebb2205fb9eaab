"""Background worker: ``python -m inference.worker``.

Protocol (the viewer's ``viewer.services`` client speaks it):

* stdin: ONE JSON object ``{"command": "analyze", "study", "out",
  "series_uid", "prior", "genomics": [], "labs": [], "clinical", "device",
  "confirm_identity"}``;
* stdout: JSON lines ``{"type": "progress", "fraction", "message"}``, then
  exactly one ``{"type": "result", "out_dir", "findings"}`` (exit 0) or
  ``{"type": "error", "message"}`` (exit 2).

Why a separate process: torch, a crash in native code or running out of
memory must never take the GUI down, and cancelling is simply killing this
process (outputs are written atomically by :mod:`inference.pipeline.analyze`,
so a kill leaves no half findings.json). stdout carries only protocol lines;
logs and tracebacks go to stderr.
"""

from __future__ import annotations

import json
import signal
import sys
import traceback
from pathlib import Path
from typing import Any, TextIO

__all__ = ["main", "handle"]


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
        )
    except ClinviewError as exc:
        _emit(out, {"type": "error", "message": exc.one_line()})
        return 2
    except Exception as exc:  # noqa: BLE001 -- the worker's last line of defence: one line out, details to stderr
        traceback.print_exc(file=sys.stderr)
        msg = f"{type(exc).__name__}: {exc}".replace("\n", " ")
        _emit(out, {"type": "error", "message": f"analysis failed: {msg}"})
        return 2
    _emit(out, {"type": "result", "out_dir": str(Path(dest)), "findings": str(Path(dest) / "findings.json")})
    return 0


def main() -> int:
    """Read the request from stdin and run it."""
    from inference.process import prepare_analysis_process

    prepare_analysis_process()  # before numpy is imported
    # A cancel is a SIGTERM from the viewer: exit quietly (no traceback).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    out = sys.stdout
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
