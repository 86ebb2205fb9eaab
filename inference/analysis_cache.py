"""Reusing a finished analysis when nothing it depends on has changed.

Why: the viewer analyses a CT automatically when it is opened. Reopening a
study that was analysed before ran the whole pipeline again (6-36 s on two
cores, from one CT to the demo's two CTs with a prior) for the same findings,
where a reader expects the AI results that are already there, as a PACS
shows them. An analysis is reused only when its
**key** matches: a fingerprint of every input file (the CT folder, the prior,
genomics, labs and clinical files, and the reader's saved review that the
analysis starts from: relative name, size and modification time of each
file), the request's other fields (series, device, identity confirmation) and
the analysis code and bundled resources themselves (the same fingerprint over
``inference/`` and ``resources/``: a new release, a changed model or
knowledge base, or an edited source file gives a new key). An input that
cannot be read gives no key, and the analysis runs. After the reader changed
the review, the analysis of the same inputs made with another review (or
none) is shown instead (:func:`inputs_key`): the viewer restores the review
on it and marks what only a new analysis brings up to date.

The worker writes the key it was given into the output folder
(:data:`KEY_FILE`) only after ``findings.json`` is complete, so a cancelled or
crashed run is never reused. The Analyze button always runs anew.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

__all__ = ["KEY_FILE", "MAX_FILES", "analysis_key", "analysis_keys", "inputs_key", "write_key", "find_reusable"]

#: written beside findings.json by the worker: ``{"key": ..., "request": {...}}``
KEY_FILE = "analysis_key.json"

#: request fields an analysis depends on; ``out`` (where it is written) is not one of them
_FIELDS = ("command", "study", "series_uid", "prior", "genomics", "labs", "clinical", "device", "confirm_identity",
           "review")
_PACKAGE = Path(__file__).resolve().parent
_RESOURCES = _PACKAGE.parent / "resources"


#: a folder with more files than this is not fingerprinted (no key: the analysis runs). Why: the key is
#: formed in the viewer's thread when a study opens, and a study path can be a whole PACS export on a
#: network share; 250-600 slices per CT, a prior beside it and the code stay far below this.
MAX_FILES = 5000


class _TooLarge(OSError):
    pass


def _files(path: Path) -> Iterable[tuple[str, int, int]]:
    """(name relative to ``path``, size, mtime in ns) of a file, or of every file below a folder."""
    st = path.stat()  # raises OSError when missing
    if not path.is_dir():
        yield ("", st.st_size, st.st_mtime_ns)
        return
    seen = 0
    for root, dirs, names in os.walk(path):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")  # bytecode is rewritten by imports, not edits
        seen += len(names)
        if seen > MAX_FILES:
            raise _TooLarge(f"{path}: more than {MAX_FILES} files")
        for n in sorted(names):
            p = Path(root) / n
            s = p.stat()
            yield (str(p.relative_to(path)), s.st_size, s.st_mtime_ns)


def _digest(path: Path) -> str:
    if path.name.upper() == "DICOMDIR" and path.is_file():
        path = path.parent  # the index names image files beside it: they are the input
    h = hashlib.sha256()
    for name, size, mtime in _files(path):
        h.update(f"{name}\0{size}\0{mtime}\n".encode())
    return h.hexdigest()


def analysis_keys(request: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """``(key, inputs key)`` of an analysis request from one pass over its input files; ``(None, None)``
    when an input cannot be fingerprinted (missing, unreadable, more than :data:`MAX_FILES` files).

    The inputs key leaves the reader's review out: the review is an input (an
    analysis given it leaves rejected nodules out of every score), but
    reviewing must not make a reopened study run the whole pipeline again; the
    viewer shows the analysis of the same inputs, restores the review on it and
    marks what the review made stale. Both come from one pass because the
    viewer forms them on its own thread when a study opens.
    """
    try:
        parts: dict[str, Any] = {k: request.get(k) for k in _FIELDS}
        for k in ("study", "prior", "clinical", "review"):
            if request.get(k):
                parts[k] = [str(request[k]), _digest(Path(request[k]))]
        for k in ("genomics", "labs"):
            parts[k] = [[str(p), _digest(Path(p))] for p in request.get(k) or []]
        parts["code"] = [_digest(_PACKAGE), _digest(_RESOURCES) if _RESOURCES.is_dir() else None]
    except OSError:
        return None, None

    def sha(d: dict[str, Any]) -> str:
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()

    return sha(parts), sha({**parts, "review": None})


def analysis_key(request: Mapping[str, Any]) -> str | None:
    """The key of an analysis request (:func:`analysis_keys`)."""
    return analysis_keys(request)[0]


def inputs_key(request: Mapping[str, Any]) -> str | None:
    """The key of ``request`` without the reader's review (:func:`analysis_keys`)."""
    return analysis_keys(request)[1]


def write_key(out_dir: Path, key: str, request: Mapping[str, Any]) -> None:
    """Record ``key`` (and :func:`inputs_key`) in a finished analysis folder (atomically: a half-written
    key is never read)."""
    tmp = Path(out_dir) / f".{KEY_FILE}.{os.getpid()}"
    # the viewer sends the inputs key with the request (formed with the key); other callers get it here
    rec = {"key": key, "inputs_key": request.get("inputs_key") or inputs_key(request), "request": dict(request)}
    tmp.write_text(json.dumps(rec, indent=1, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, Path(out_dir) / KEY_FILE)


def find_reusable(root: Path, key: str | None, inputs: str | None = None) -> tuple[Path | None, bool]:
    """The newest analysis folder directly below ``root`` whose recorded key is ``key``; failing that,
    with ``inputs`` (an :func:`inputs_key`), the newest one of the same inputs made with another review
    or none. Returns ``(folder or None, found by key itself)``.

    One listing and one read of each folder's key file for both searches: the analyses folder
    of a patient read many times grows with every analysis.
    """
    if not Path(root).is_dir():
        return None, False
    recs: list[tuple[Path, dict[str, Any]]] = []
    for d in sorted((p for p in Path(root).iterdir() if p.is_dir()), reverse=True):
        try:
            rec = json.loads((d / KEY_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(rec, dict) and (d / "findings.json").is_file():
            recs.append((d, rec))
    for want, fields, exact in ((key, ("key",), True), (inputs, ("key", "inputs_key"), False)):
        for d, rec in recs:
            if want and any(rec.get(f) == want for f in fields):
                return d, exact
    return None, False
