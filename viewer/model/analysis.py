"""Qt-free state of one analysis: findings, the reader's review, label maps.

The docks only *display* this state and emit intents; every rule that decides
what the user sees (which nodules are visible, the per-scan counts, the exam
category after review, which inputs are blocked by an identity conflict) lives
here so that it is testable without Qt and the same everywhere.

Downstream numbers after review
-------------------------------
The worker computes Lung-RADS per nodule and for the exam, Brock per nodule,
Fleischner and the deep model's probability. The reader's review changes what
some of them were computed from, and those follow it here, at once: rejected
nodules leave the overlay, the counts and every list; Brock is re-scored for
the new nodule count and for an edited size or a spiculation call, and an
edited or re-called nodule's Lung-RADS category is recomputed
(:func:`inference.review.rescore_reviewed`: the patient's own Brock terms are
kept as the worker computed them, so no clinical file is needed); the **exam
category** is recomputed by the guideline's rule ("each exam is coded by its
most suspicious finding", Lung-RADS v2022) and labelled as recomputed. What
cannot follow without the worker -- the deep model (it saw the whole CT),
Fleischner's recommendation, an edited nodule's growth status -- stays the
analysis's own, and :meth:`AnalysisState.stale_reasons` says, per number, why
it no longer matches the review, so the docks mark it. The next analysis
(Analyze) is given the saved review (:func:`inference.review.apply_review`)
and starts from it; its ``reader_review`` says what it was given, and only
what the reader changed since counts as a change here.

Persistence
-----------
``inference.paths.data_dir() / "studies" / <SeriesInstanceUID> / "review.json"``
holds the review states (with each nodule's centre so a re-run whose ids
differ still restores the right nodules) and ``edited_masks.npz`` the edited
nodule masks.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import numpy as np

from inference import paths
from inference.review import REVIEW_SCHEMA, REVIEW_STATES, match_entry, rescore_reviewed
from inference.types import Issue, Volume

__all__ = [
    "ReviewState",
    "REVIEW_STATES",
    "LUNG_RADS_ORDER",
    "lung_rads_rank",
    "ScanSummary",
    "ExamCategory",
    "AnalysisState",
    "measure_mask",
    "review_path_for",
    "finite_number",
]

ReviewState = Literal["pending", "accepted", "rejected"]

#: Lung-RADS categories from least to most suspicious (the S modifier is
#: ignored for ranking). 0 (incomplete) ranks below 3 because it asks for more
#: imaging rather than signalling malignancy.
LUNG_RADS_ORDER: tuple[str, ...] = ("1", "2", "0", "3", "4A", "4B", "4X")


Observer = Callable[[str], None]


def lung_rads_rank(category: Any) -> int:
    """Rank of a Lung-RADS category string (``"4A"``, ``"4B S"``...); -1 if unknown."""
    if category is None:
        return -1
    c = str(category).upper().replace(" ", "")
    if c.endswith("S") and len(c) > 1:
        c = c[:-1]
    try:
        return LUNG_RADS_ORDER.index(c)
    except ValueError:
        return -1


def review_path_for(series_uid: str) -> Path:
    """Where the review of a series is kept (user data: it must survive)."""
    # same folder rule as the viewer's measurements (viewer.model.measurements)
    safe = "".join(ch for ch in series_uid if ch.isalnum() or ch in ".-_") or "unknown"
    return paths.data_dir() / "studies" / safe / "review.json"


@dataclass(frozen=True)
class ScanSummary:
    """Per-scan numbers shown above the findings table."""

    nodule_count: int  # excluding rejected
    rejected_count: int
    pending_count: int
    right_lung_ml: float | None
    left_lung_ml: float | None
    emphysema_percent: float | None


@dataclass(frozen=True)
class ExamCategory:
    """The exam-level Lung-RADS category as displayed after review."""

    category: str | None
    management: str | None
    source: str
    recomputed: bool
    note: str = ""


def measure_mask(mask: np.ndarray, spacing_zyx: Sequence[float]) -> dict[str, Any]:
    """Re-measure an edited nodule mask without Qt or the worker.

    Volume is the voxel count times the voxel volume. Long and short axes are
    taken on the axial slice where the nodule is largest, as Lung-RADS v2022
    measures (long axis, then the longest extent perpendicular to it); each
    extent adds one pixel so that a single voxel measures one pixel wide.
    The mean diameter is ``(long + short) / 2``, rounded to 0.1 mm.

    Parameters
    ----------
    mask : (z, y, x) bool array
    spacing_zyx : voxel size in mm

    Returns
    -------
    dict with ``volume_mm3``, ``long_axis_mm``, ``short_axis_mm``,
    ``mean_diameter_mm``, ``center_voxel_zyx``, ``bbox_voxel_zyx``, ``voxels``;
    all sizes 0 for an empty mask.
    """
    m = np.asarray(mask, bool)
    sz, sy, sx = (float(s) for s in spacing_zyx)
    n = int(m.sum())
    if n == 0:
        return {"volume_mm3": 0.0, "long_axis_mm": 0.0, "short_axis_mm": 0.0, "mean_diameter_mm": 0.0,
                "center_voxel_zyx": None, "bbox_voxel_zyx": None, "voxels": 0}
    idx = np.argwhere(m)
    areas = m.reshape(m.shape[0], -1).sum(axis=1)
    k = int(np.argmax(areas))
    pts = np.argwhere(m[k]).astype(float) * np.array([sy, sx])
    pix = (sy + sx) / 2.0
    if len(pts) == 1:
        long_ax = short_ax = pix
    else:
        if len(pts) > 1500:  # keep the O(n^2) search small: boundary points suffice
            sl = m[k]
            inner = sl.copy()
            inner[1:-1, 1:-1] = sl[1:-1, 1:-1] & sl[:-2, 1:-1] & sl[2:, 1:-1] & sl[1:-1, :-2] & sl[1:-1, 2:]
            pts = np.argwhere(sl & ~inner).astype(float) * np.array([sy, sx])
        d2 = ((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1)
        a, b = np.unravel_index(int(np.argmax(d2)), d2.shape)
        vec = pts[b] - pts[a]
        length = float(np.hypot(*vec))
        long_ax = length + pix
        if length > 0:
            perp = np.array([-vec[1], vec[0]]) / length
            proj = pts @ perp
            short_ax = float(proj.max() - proj.min()) + pix
        else:
            short_ax = pix
    return {
        "volume_mm3": round(n * sz * sy * sx, 1),
        "long_axis_mm": round(long_ax, 1),
        "short_axis_mm": round(short_ax, 1),
        "mean_diameter_mm": round((long_ax + short_ax) / 2.0, 1),
        "center_voxel_zyx": [float(v) for v in idx.mean(axis=0)],
        "bbox_voxel_zyx": [[int(v) for v in idx.min(axis=0)], [int(v) for v in idx.max(axis=0)]],
        "voxels": n,
    }


@dataclass
class _Edit:
    """A reader's edit of one nodule: the re-measured values."""

    measurement: dict[str, Any]
    center_lps_mm: list[float] | None = None


def finite_number(v: Any) -> float | None:
    """``v`` as a finite float, or None: the one check of a number read from findings.json.

    The file comes from another process or an older version, so a value may be missing,
    a string, NaN or a bool; a bool is never a measurement (``float(True)`` would show 1.0).
    """
    if isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


#: a source named at the start of an assumption or warning: "risk model: ", "Brock (nodules #1, #2): ", "Deep model: "
_SOURCE_PREFIX = re.compile(r"^\s*(?:risk model|deep model|brock(?:\s*\([^)]*\))?)\s*:\s*", re.IGNORECASE)


def _without_source(text: str) -> str:
    """``text`` without its leading source name(s), lower case: what the line says, whoever says it."""
    t = str(text)
    while True:
        m = _SOURCE_PREFIX.match(t)
        if not m:
            return t.strip().lower()
        t = t[m.end():]


@dataclass
class AnalysisState:
    """The findings of one analysis plus the reader's review of them.

    Observers (``subscribe``) are called with one event name:
    ``"findings"`` (a new result or cleared), ``"review"`` (a review state
    changed), ``"mask"`` (a nodule mask was edited), ``"identity"`` (the user
    confirmed a patient-identity conflict).
    """

    findings: dict[str, Any] = field(default_factory=dict)
    nodule_labels: np.ndarray | None = None
    lung_labels: np.ndarray | None = None
    volume: Volume | None = None
    out_dir: str | None = None
    identity_confirmed: bool = False
    _review: dict[int, str] = field(default_factory=dict)
    _edits: dict[int, _Edit] = field(default_factory=dict)
    #: the reader's call on a nodule's margin, where it differs from the analysis's
    _spiculated: dict[int, bool] = field(default_factory=dict)
    _observers: list[Observer] = field(default_factory=list)
    _issues: list[Issue] = field(default_factory=list)

    # ------------------------------------------------------------------ observers
    def subscribe(self, fn: Observer) -> Callable[[], None]:
        """Call ``fn(event)`` on every change; returns a function that unsubscribes."""
        self._observers.append(fn)

        def _unsub() -> None:
            if fn in self._observers:
                self._observers.remove(fn)

        return _unsub

    def _emit(self, event: str) -> None:
        for fn in list(self._observers):
            fn(event)

    # ------------------------------------------------------------------ loading
    @property
    def has_result(self) -> bool:
        return bool(self.findings)

    @property
    def analysed_at(self) -> datetime | None:
        """When the shown analysis was written (its findings.json's time; None without one).

        Why: the viewer may show an earlier analysis of the same inputs
        instead of running it again (:mod:`inference.analysis_cache`); the
        reader sees when it was made.
        """
        if not self.out_dir:
            return None
        try:
            return datetime.fromtimestamp((Path(self.out_dir) / "findings.json").stat().st_mtime)
        except OSError:
            return None

    @property
    def issues(self) -> list[Issue]:
        """Problems met while restoring a saved review (shown, never raised)."""
        return list(self._issues)

    def set_result(
        self,
        findings: dict[str, Any],
        nodule_labels: np.ndarray | None = None,
        lung_labels: np.ndarray | None = None,
        *,
        volume: Volume | None = None,
        out_dir: str | None = None,
        restore: bool = True,
    ) -> None:
        """Take a new analysis result and restore the saved review of its series.

        Review states come from each nodule's ``review`` key (default
        ``pending``), then from the saved review file when ``restore``.
        """
        self.findings = findings if isinstance(findings, dict) else {}
        self.nodule_labels = None if nodule_labels is None else np.array(nodule_labels, copy=True)
        self.lung_labels = lung_labels
        self.volume = volume
        self.out_dir = out_dir
        self._edits = {}
        self._spiculated = {}
        self._issues = []
        self._review = {}
        ident = self.findings.get("identity")
        self.identity_confirmed = bool(isinstance(ident, dict) and ident.get("confirmed"))
        for n in self._raw_nodules():
            r = n.get("review")
            self._review[int(n["id"])] = r if r in REVIEW_STATES else "pending"
        if restore:
            self.load_review()
        self._emit("findings")

    def clear(self) -> None:
        """Forget the current result (a new volume was opened)."""
        self.findings = {}
        self.nodule_labels = None
        self.lung_labels = None
        self.out_dir = None
        self._review = {}
        self._edits = {}
        self._spiculated = {}
        self.identity_confirmed = False
        self._emit("findings")

    # ------------------------------------------------------------------ nodules
    def _raw_nodules(self) -> list[dict[str, Any]]:
        out = []
        for n in self.findings.get("nodules") or []:
            if isinstance(n, dict) and isinstance(n.get("id"), (int, float)) and not isinstance(n.get("id"), bool):
                out.append(n)
        return out

    def all_nodules(self) -> list[dict[str, Any]]:
        """Every nodule (rejected ones included), merged with review and edits.

        Each dict is a copy of the worker's nodule with ``review`` set to the
        current state and, for edited nodules, the re-measured sizes plus
        ``edited: True`` and ``measurement_source``; where the reader called
        the margin, ``spiculated`` is theirs and ``spiculated_source`` says so; a
        nodule whose size in findings.json is unreadable keeps the analysis's
        Lung-RADS category with ``lung_rads_unverified`` saying why it is unchecked.
        Once the review changed anything the scores depend on (a rejection, an
        edit, a spiculation call), Brock and the changed nodules' Lung-RADS
        are re-scored from the reviewed values
        (:func:`inference.clinical.scoring.rescore_reviewed`); otherwise every
        number is the analysis's own.
        """
        out = []
        for n in self._raw_nodules():
            nid = int(n["id"])
            d = dict(n)
            d["id"] = nid
            d["review"] = self._review.get(nid, "pending")
            e = self._edits.get(nid)
            if e is not None:
                for k in ("volume_mm3", "long_axis_mm", "short_axis_mm", "mean_diameter_mm",
                          "center_voxel_zyx", "bbox_voxel_zyx"):
                    if e.measurement.get(k) is not None:
                        d[k] = e.measurement[k]
                if e.center_lps_mm is not None:
                    d["center_lps_mm"] = e.center_lps_mm
                d["edited"] = True
                d["measurement_source"] = "re-measured in viewer from the edited mask (axial long/short axis, voxel-count volume)"
            if nid in self._spiculated:
                d["spiculated"] = self._spiculated[nid]
                d["spiculated_source"] = "reader"
            if d.get("lung_rads") is not None and finite_number(d.get("mean_diameter_mm")) is None:
                # the category was written with a size this file no longer holds (another process, an
                # older version): shown as the analysis wrote it, never as if it had been checked
                d["lung_rads_unverified"] = "its size in findings.json is unreadable, so the category cannot be checked here"
            out.append(d)
        if self.review_changed_findings():
            rescore_reviewed(out, set(self._edits) | self._calls_since_analysis(),
                             prior_available=self.findings.get("prior") is not None)
        return out

    def nodules(self) -> list[dict[str, Any]]:
        """Nodules still in play (not rejected): what every list and count shows."""
        return [n for n in self.all_nodules() if n["review"] != "rejected"]

    def nodule(self, nodule_id: int) -> dict[str, Any] | None:
        for n in self.all_nodules():
            if n["id"] == int(nodule_id):
                return n
        return None

    def review_of(self, nodule_id: int) -> str:
        return self._review.get(int(nodule_id), "pending")

    def set_review(self, nodule_id: int, state: str, *, save: bool = True) -> None:
        """Accept, reject or reset one nodule; saved with the study at once
        (a crash must not lose a reader's work)."""
        if state not in REVIEW_STATES:
            raise ValueError(f"review state must be one of {REVIEW_STATES}, not {state!r}")
        nid = int(nodule_id)
        if nid not in self._review:
            raise KeyError(f"no nodule with id {nid}")
        if self._review[nid] == state:
            return
        self._review[nid] = state
        if save:
            self.save_review()
        self._emit("review")

    def set_spiculated(self, nodule_id: int, spiculated: bool, *, save: bool = True) -> None:
        """The reader's call on a nodule's margin; saved with the study at once.

        Why the reader decides: the analysis does not assess the margin (its
        shape heuristic got every flag it raised wrong, benchmarks/RESULTS.md),
        and spiculation raises the Brock odds 2.2-fold. Setting it back to the
        analysis's value removes the call.
        """
        nid = int(nodule_id)
        if nid not in self._review:
            raise KeyError(f"no nodule with id {nid}")
        worker = next((bool(n.get("spiculated")) for n in self._raw_nodules() if int(n["id"]) == nid), False)
        if bool(spiculated) == worker:
            if self._spiculated.pop(nid, None) is None:
                return
        elif self._spiculated.get(nid) == bool(spiculated):
            return
        else:
            self._spiculated[nid] = bool(spiculated)
        if save:
            self.save_review()
        self._emit("review")

    def visible_ids(self) -> list[int]:
        """Label values the nodule overlay shows: every nodule not rejected."""
        return [n["id"] for n in self.nodules()]

    def edited_ids(self) -> list[int]:
        return sorted(self._edits)

    def nodule_mask(self, nodule_id: int) -> np.ndarray | None:
        """Boolean (z, y, x) mask of one nodule from the (possibly edited) label map."""
        if self.nodule_labels is None:
            return None
        return self.nodule_labels == int(nodule_id)

    def set_nodule_mask(self, nodule_id: int, mask: np.ndarray, *, save: bool = True) -> dict[str, Any]:
        """Replace one nodule's mask (brush/erase result) and re-measure it.

        Voxels of other nodules are never overwritten. The edit marks the
        nodule ``accepted`` (the reader looked at it and corrected it).

        Returns
        -------
        The new measurement (see :func:`measure_mask`).
        """
        nid = int(nodule_id)
        if self.nodule_labels is None:
            raise ValueError("no nodule label map to edit")
        if nid not in self._review:
            raise KeyError(f"no nodule with id {nid}")
        m = np.asarray(mask, bool)
        if m.shape != self.nodule_labels.shape:
            raise ValueError(f"mask shape {m.shape} does not match the label map {self.nodule_labels.shape}")
        labels = self.nodule_labels
        labels[labels == nid] = 0
        labels[m & (labels == 0)] = nid
        spacing = self._spacing()
        meas = measure_mask(labels == nid, spacing)
        center = None
        if self.volume is not None and meas["center_voxel_zyx"] is not None:
            center = [round(float(v), 2) for v in self.volume.voxel_to_lps(meas["center_voxel_zyx"])]
        self._edits[nid] = _Edit(meas, center)
        if self._review.get(nid) == "pending":
            self._review[nid] = "accepted"
        if save:
            self.save_review()
        self._emit("mask")
        return meas

    def _spacing(self) -> tuple[float, float, float]:
        if self.volume is not None:
            return tuple(float(s) for s in self.volume.spacing)  # type: ignore[return-value]
        sp = (self.findings.get("series") or {}).get("spacing_zyx_mm")
        if isinstance(sp, (list, tuple)) and len(sp) == 3:
            return tuple(float(s) for s in sp)  # type: ignore[return-value]
        return (1.0, 1.0, 1.0)

    # ------------------------------------------------------------------ derived
    def summary(self) -> ScanSummary:
        """Counts exclude rejected nodules; lung numbers as the worker measured them."""
        all_n = self.all_nodules()
        lungs = self.findings.get("lungs") or {}
        return ScanSummary(
            nodule_count=sum(1 for n in all_n if n["review"] != "rejected"),
            rejected_count=sum(1 for n in all_n if n["review"] == "rejected"),
            pending_count=sum(1 for n in all_n if n["review"] == "pending"),
            right_lung_ml=finite_number(lungs.get("right_ml")),
            left_lung_ml=finite_number(lungs.get("left_ml")),
            emphysema_percent=finite_number(lungs.get("emphysema_laa950_percent")),
        )

    def review_changed_findings(self) -> bool:
        """True when the review differs from what the analysis was computed with (downstream numbers move).

        An analysis run with the saved review (the viewer's Analyze passes it,
        ``findings["reader_review"]`` records it) already left the rejected
        nodules out and used the spiculation calls; only what changed since,
        and edited masks (never applied by an analysis), count here.
        """
        given = self.findings.get("reader_review") if isinstance(self.findings.get("reader_review"), dict) else {}
        rejected_then = {int(i) for i in given.get("rejected") or [] if isinstance(i, int)}
        if {nid for nid, v in self._review.items() if v == "rejected"} != rejected_then:
            return True
        return bool(self._edits) or bool(self._calls_since_analysis())

    def _calls_since_analysis(self) -> set[int]:
        """Nodules whose margin the reader called otherwise than the analysis has it."""
        raw = {int(n["id"]): bool(n.get("spiculated")) for n in self._raw_nodules()}
        return {nid for nid, v in self._spiculated.items() if raw.get(nid) != v}

    def exam_category(self) -> ExamCategory:
        """The exam Lung-RADS category to display.

        Without rejections or edits this is the worker's. Otherwise it is
        recomputed with the guideline's rule (most suspicious finding) from the
        remaining nodules' own categories, and says so.
        """
        exam = (self.findings.get("exam") or {}).get("lung_rads") or {}
        version = exam.get("version") or "v2022"
        src = exam.get("source") or f"ACR Lung-RADS {version}"
        worker_cat = exam.get("category")
        if not self.review_changed_findings():
            return ExamCategory(worker_cat, exam.get("management"), src, False)
        remaining = [n for n in self.nodules() if lung_rads_rank(n.get("lung_rads")) >= 0]
        rejected = [n["id"] for n in self.all_nodules() if n["review"] == "rejected"]
        notes = []
        if rejected:
            notes.append("rejected nodule" + ("s " if len(rejected) > 1 else " ")
                         + ", ".join(f"#{i}" for i in rejected) + " excluded")
        called = self._calls_since_analysis()
        edited = [n["id"] for n in self.nodules() if n.get("edited") or n["id"] in called]
        if edited:
            notes.append("nodule" + ("s " if len(edited) > 1 else " ") + ", ".join(f"#{i}" for i in edited)
                         + " re-categorised as reviewed (size, margin)")
        if remaining:
            top = max(remaining, key=lambda n: lung_rads_rank(n.get("lung_rads")))
            cat = str(top.get("lung_rads"))
            notes.insert(0, f"most suspicious remaining finding: nodule #{top['id']}")
        elif self.nodules():
            cat = None
            notes.insert(0, "remaining nodules carry no per-nodule category")
        else:
            cat = "1"
            notes.insert(0, "no nodules remain after review")
        mgmt = exam.get("management") if (cat is not None and worker_cat is not None
                                          and lung_rads_rank(cat) == lung_rads_rank(worker_cat)) else None
        note = "recomputed from reviewed findings (" + "; ".join(notes) + ")"
        return ExamCategory(cat, mgmt, f"{src}, exam coded by its most suspicious finding", True, note)

    def stale_reasons(self) -> list[str]:
        """Why numbers computed by the worker no longer match the reviewed findings."""
        out = []
        if not self.review_changed_findings():
            return out
        nodules = self.all_nodules()
        # Brock and Lung-RADS follow the review (all_nodules re-scores them); what cannot follow is said here
        out.extend(f"Brock of nodule #{n['id']} was computed before your review (no terms to re-score it)"
                   for n in nodules if n.get("brock_stale") and n["review"] != "rejected")
        risk = self.findings.get("risk") or {}
        if risk.get("probability") is not None:
            rid = risk.get("nodule_id")
            if rid is not None and self._review.get(int(rid)) == "rejected":
                out.append(f"the deep model's probability is for nodule #{rid}, which you rejected")
            else:
                out.append("the deep model's probability was computed before review")
        fl = (self.findings.get("exam") or {}).get("fleischner")
        if isinstance(fl, dict) and fl.get("applies") and fl.get("recommendation"):
            out.append("the Fleischner recommendation was made before review")
        for n in nodules:
            if n.get("edited") and n["review"] != "rejected" and isinstance(n.get("growth"), dict):
                out.append(f"nodule #{n['id']} was edited: its growth status is from its AI size")
        return out

    def rejected_refs(self, suggestion: dict[str, Any]) -> list[int]:
        """Rejected nodules a suggestion is about ("nodule #3" in its text or
        rationale): such a suggestion no longer follows from the reviewed findings."""
        text = " ".join(str(suggestion.get(k) or "") for k in ("text", "rationale"))
        ids = {int(m) for m in re.findall(r"#(\d+)\b", text)}
        return sorted(i for i in ids if self._review.get(i) == "rejected")

    def missing_inputs(self) -> list[str]:
        """What was missing and what was assumed, from every place the worker says so."""
        lines: list[str] = []
        risk = self.findings.get("risk") or {}
        for m in risk.get("missing") or []:
            # the deep model masks a missing input (never fills it): say so
            line = str(m) if ":" in str(m) else f"Deep model: {m} not given (masked, not filled)"
            if line not in lines:
                lines.append(line)
        for note in risk.get("notes") or []:
            if str(note) not in lines:
                lines.append(str(note))
        # the same Brock assumption is usually made for every nodule: list it once
        per_assumption: dict[str, list[int]] = {}
        for n in self._raw_nodules():
            b = n.get("brock")
            if isinstance(b, dict):
                for a in b.get("assumptions") or []:
                    per_assumption.setdefault(str(a), []).append(int(n["id"]))
        for a, ids in per_assumption.items():
            which = ", ".join(f"#{i}" for i in ids)
            lines.append(f"Brock (nodule{'s' if len(ids) > 1 else ''} {which}): {a}")
        return lines

    def warnings(self) -> list[str]:
        return [str(w) for w in (self.findings.get("warnings") or [])]

    def unstated_warnings(self) -> list[str]:
        """The analysis warnings that :meth:`missing_inputs` does not already say.

        Why: the engine repeats the risk model's notes and the Brock assumptions in
        its warnings (the headless contract lists every warning), so a panel that
        shows both said each of them twice, in two wordings ("Brock: emphysema ..."
        and "Brock (nodules #1, #2): emphysema ..."). Compared without their source
        prefixes, case-insensitively.
        """
        said = {_without_source(line) for line in self.missing_inputs()}
        return [w for w in self.warnings() if _without_source(w) not in said]

    # ------------------------------------------------------------------ identity
    def identity_consistent(self) -> bool:
        ident = self.findings.get("identity")
        if not isinstance(ident, dict):
            return True
        return ident.get("consistent", True) is not False

    def identity_blocking(self) -> bool:
        """True while a conflict is unconfirmed: non-imaging inputs stay hidden."""
        return self.has_result and not self.identity_consistent() and not self.identity_confirmed

    def identity_lines(self) -> list[str]:
        """One line per conflicting field: which file says which patient."""
        ident = self.findings.get("identity") or {}
        lines = []
        for c in ident.get("conflicts") or []:
            if not isinstance(c, dict):
                continue
            vals = c.get("values") or {}
            parts = [f"{src} says {val!r}" for src, val in vals.items()]
            lines.append(f"{c.get('field', 'identity')}: " + ", ".join(parts))
        if not lines and not self.identity_consistent():
            lines.append("the inputs do not belong to the same patient")
        held = [str(x) for x in ident.get("withheld_sources") or []]
        if held:
            lines.append("held back: " + ", ".join(held))
        return lines

    def blocked_sections(self) -> set[str]:
        """Sections hidden until the user confirms identity.

        Imaging comes from the DICOM study the user opened and is kept; each
        conflicting non-DICOM source hides what it feeds. Suggestions and risk
        mix every source, so any conflict hides them (an unknown source name
        hides everything that is not imaging).
        """
        if not self.identity_blocking():
            return set()
        ident = self.findings.get("identity") or {}
        sources: set[str] = {str(x).lower() for x in ident.get("mismatched_sources") or []}
        if not sources:  # older workers: every source named in a conflict except the reference
            ref = str(ident.get("reference") or "dicom").lower()
            for c in ident.get("conflicts") or []:
                if isinstance(c, dict):
                    sources.update(str(k).lower() for k in (c.get("values") or {}))
            sources.discard(ref)
        blocked = {"suggestions"}
        for s in sources:
            kind = s.split(":", 1)[0]  # "genomics:tumour.vcf" -> "genomics"
            if kind in ("dicom", "ct", "imaging", "study", "prior"):
                continue
            if any(t in kind for t in ("genom", "vcf", "maf", "biomarker")):
                blocked.add("genomics")
            elif "lab" in kind:
                blocked.update({"labs", "derived"})
            elif "clin" in kind or "fhir" in kind:
                blocked.update({"clinical", "risk", "derived"})
            else:  # a source we cannot place: hide everything that is not imaging
                blocked.update({"genomics", "labs", "derived", "clinical", "risk"})
        if blocked == {"suggestions"}:
            blocked.update({"genomics", "labs", "derived", "clinical", "risk"})
        return blocked

    def confirm_identity(self) -> None:
        """The user confirmed the inputs belong together: show everything."""
        self.identity_confirmed = True
        self._emit("identity")

    # ------------------------------------------------------------------ persistence
    def series_uid(self) -> str | None:
        uid = (self.findings.get("series") or {}).get("series_instance_uid")
        if not uid and self.volume is not None and self.volume.series is not None:
            uid = self.volume.series.series_instance_uid
        return str(uid) if uid else None

    def review_path(self) -> Path | None:
        uid = self.series_uid()
        return review_path_for(uid) if uid else None

    def _reader_spiculation(self, nid: int, raw: dict[str, Any]) -> bool | None:
        """The reader's call on a margin: made in this session, or one the analysis was given."""
        if nid in self._spiculated:
            return self._spiculated[nid]
        return bool(raw.get("spiculated")) if raw.get("spiculated_source") == "reader" else None

    def save_review(self) -> Path | None:
        """Write review.json (+ edited_masks.npz) for this series; returns the path."""
        p = self.review_path()
        if p is None:
            return None
        p.parent.mkdir(parents=True, exist_ok=True)
        by_id = {n["id"]: n for n in self._raw_nodules()}
        entries = []
        for nid, state in sorted(self._review.items()):
            n = by_id.get(nid, {})
            e = self._edits.get(nid)
            entries.append({
                "id": nid,
                "review": state,
                "center_lps_mm": n.get("center_lps_mm"),
                "edited": e is not None,
                "measurement": e.measurement if e is not None else None,
                "spiculated": self._reader_spiculation(nid, n),  # None: the analysis's own flag
            })
        doc = {
            "schema": REVIEW_SCHEMA,
            "series_instance_uid": self.series_uid(),
            "saved": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "identity_confirmed": self.identity_confirmed,
            "nodules": entries,
        }
        masks = p.with_name("edited_masks.npz")
        if self._edits and self.nodule_labels is not None:
            keep = np.isin(self.nodule_labels, list(self._edits))
            arr = np.where(keep, self.nodule_labels, 0).astype(np.int16)
            np.savez_compressed(masks, labels=arr, ids=np.array(sorted(self._edits), dtype=np.int32))
            doc["edited_masks"] = masks.name
        elif masks.exists():
            masks.unlink()
        tmp = p.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(doc, indent=2))
        tmp.replace(p)  # atomic: a crash mid-write never leaves a half file
        return p

    def load_review(self) -> bool:
        """Restore a saved review of this series; problems become :attr:`issues`.

        Returns True when a review was found and applied.
        """
        p = self.review_path()
        if p is None or not p.exists():
            return False
        try:
            doc = json.loads(p.read_text())
        except (OSError, ValueError) as exc:
            self._issues.append(Issue(f"saved review unreadable, starting fresh ({exc})", path=str(p)))
            return False
        if not isinstance(doc, dict) or doc.get("schema") != REVIEW_SCHEMA:
            self._issues.append(Issue("not a clinview review file, ignored", path=str(p)))
            return False
        raw = self._raw_nodules()
        saved_labels = None
        saved_ids = None
        mpath = p.with_name(str(doc.get("edited_masks") or "edited_masks.npz"))
        if doc.get("edited_masks") and mpath.exists():
            try:
                with np.load(mpath) as z:
                    saved_labels = z["labels"]
                    saved_ids = [int(i) for i in z["ids"]]
            except (OSError, ValueError, KeyError) as exc:
                self._issues.append(Issue(f"edited masks unreadable, AI masks kept ({exc})", path=str(mpath)))
        # identity_confirmed is saved for the record but never restored: a
        # confirmation covers the files of that run, not whatever is opened later
        for entry in doc.get("nodules") or []:
            if not isinstance(entry, dict):
                continue
            nid = match_entry(entry, raw)
            if nid is None:
                self._issues.append(Issue(f"reviewed nodule #{entry.get('id')} not found in this analysis", path=str(p)))
                continue
            if entry.get("review") in REVIEW_STATES:
                self._review[nid] = entry["review"]
            if isinstance(entry.get("spiculated"), bool):
                self._spiculated[nid] = entry["spiculated"]
            if entry.get("edited") and saved_labels is not None and saved_ids is not None \
                    and self.nodule_labels is not None and int(entry.get("id", -1)) in saved_ids:
                if saved_labels.shape != self.nodule_labels.shape:
                    self._issues.append(Issue("edited masks belong to a different geometry, AI masks kept",
                                              path=str(mpath)))
                    saved_labels = None
                    continue
                mask = saved_labels == int(entry["id"])
                labels = self.nodule_labels
                labels[labels == nid] = 0
                labels[mask & (labels == 0)] = nid
                meas = measure_mask(labels == nid, self._spacing())
                center = None
                if self.volume is not None and meas["center_voxel_zyx"] is not None:
                    center = [round(float(v), 2) for v in self.volume.voxel_to_lps(meas["center_voxel_zyx"])]
                self._edits[nid] = _Edit(meas, center)
        return True
