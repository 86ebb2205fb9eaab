"""The reader's review as data: the file the viewer saves, read back by an analysis, and the
scores of reviewed findings.

Why a module of its own beside :mod:`inference.api`: the viewer's model
(``viewer.model``) must stay importable without torch, and ``inference.api``
reaches the analysis (and so torch) from its functions. What lives here is
plain data handling and arithmetic over findings, shared by both sides so that
the viewer and an analysis read a review the same way:

* the review file (``review.json``, schema :data:`REVIEW_SCHEMA`) and how a
  saved entry is matched to a nodule of a new run (:func:`match_entry`: by
  centre, since a re-run may number the nodules differently);
* :func:`apply_review`: a new analysis given the saved review (``clinview
  analyze --review``, the viewer's Analyze) starts from the reader's decisions,
  so the deep model, Fleischner and the suggestions are computed without the
  rejected nodules and with the reader's spiculation calls;
* :func:`rescore_reviewed`: the viewer's immediate re-scoring after a review.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from inference.clinical.scoring import rescore_reviewed

__all__ = ["REVIEW_SCHEMA", "REVIEW_STATES", "MATCH_MM", "match_entry", "read_review", "apply_review",
           "rescore_reviewed"]

REVIEW_SCHEMA = "clinview.review/1"
REVIEW_STATES: tuple[str, ...] = ("pending", "accepted", "rejected")
#: centres within this distance (mm) are the same nodule when a saved review meets a re-run
MATCH_MM = 5.0


def match_entry(entry: dict[str, Any], nodules: list[dict[str, Any]]) -> int | None:
    """The id of the nodule a saved review entry is about: the nearest centre within :data:`MATCH_MM`
    (an entry without a centre: the same id, when present)."""
    c = entry.get("center_lps_mm")
    if isinstance(c, (list, tuple)) and len(c) == 3:
        best, best_d = None, MATCH_MM
        for n in nodules:
            nc = n.get("center_lps_mm")
            if isinstance(nc, (list, tuple)) and len(nc) == 3:
                d = float(np.linalg.norm(np.asarray(nc, float) - np.asarray(c, float)))
                if d <= best_d:
                    best, best_d = int(n["id"]), d
        return best
    nid = entry.get("id")
    ids = {int(n["id"]) for n in nodules}
    return int(nid) if isinstance(nid, int) and nid in ids else None


def read_review(path: str | Path) -> tuple[dict[str, Any] | None, str | None]:
    """``(review, None)``, or ``(None, one line saying what is wrong with the file)``."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return None, f"{p}: review not read, analysed without it ({exc})"
    if not isinstance(doc, dict) or doc.get("schema") != REVIEW_SCHEMA:
        return None, f"{p}: not a clinview review file ({REVIEW_SCHEMA}), analysed without it"
    return doc, None


def apply_review(findings: dict[str, Any], review: dict[str, Any], where: str) -> list[str]:
    """Give a new analysis's nodules the reader's saved decisions, before any score is computed.

    Each entry matched to a nodule (:func:`match_entry`) sets its ``review``
    state and, where the reader called the margin, ``spiculated`` with
    ``spiculated_source: "reader"``. Edited masks are not applied: their sizes
    are re-measured in the viewer. ``findings["reader_review"]`` records what
    was applied (contract); returns one line when entries matched no nodule.
    """
    nodules = [n for n in findings.get("nodules") or [] if isinstance(n, dict) and isinstance(n.get("id"), int)]
    by_id = {int(n["id"]): n for n in nodules}
    done: dict[str, Any] = {"file": where, "saved": review.get("saved"), "rejected": [], "accepted": [],
                            "spiculated": {}, "edited_not_applied": [], "unmatched": 0}
    for entry in review.get("nodules") or []:
        if not isinstance(entry, dict):
            continue
        nid = match_entry(entry, nodules)
        if nid is None:
            done["unmatched"] += 1
            continue
        n = by_id[nid]
        if entry.get("review") in ("accepted", "rejected"):  # "pending" is what a new finding already is
            n["review"] = entry["review"]
            done[entry["review"]].append(nid)
        if isinstance(entry.get("spiculated"), bool):
            n["spiculated"] = entry["spiculated"]
            n["spiculated_source"] = "reader"
            done["spiculated"][str(nid)] = entry["spiculated"]
        if entry.get("edited"):
            done["edited_not_applied"].append(nid)
    findings["reader_review"] = done
    if done["unmatched"]:
        return [f"{where}: {done['unmatched']} reviewed nodule(s) match no finding of this analysis; "
                "their review was not applied"]
    return []
