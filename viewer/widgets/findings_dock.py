"""Findings dock: the nodule table, the per-scan summary and the review buttons.

The widget displays :class:`~viewer.model.analysis.AnalysisState` and emits
intents (go to a nodule, edit it); review decisions go straight into the model,
which saves them and tells every other dock.
"""

from __future__ import annotations

import html
from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QKeyEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from viewer.model.analysis import AnalysisState, finite_number
from viewer.widgets.identity_banner import (
    DOCK_QSS,
    PALETTE,
    BadgeDelegate,
    IdentityBanner,
    badge_html,
    fmt_pct,
    lung_rads_cell,
    lung_rads_color,
)

__all__ = ["FindingsDock", "COLUMNS"]

COLUMNS: tuple[str, ...] = ("#", "⌀ mm", "Type", "Lobe", "AI", "Lung-RADS", "Review")
_HEADER_TIPS = ("Nodule id (voxel value in the label map)", "Mean diameter (long + short axis) / 2, mm",
                "solid, part-solid, ground-glass or calcified", "Lobe: RUL, RML, RLL, LUL, LLL",
                "The nodule model's probability for this finding", "ACR Lung-RADS v2022 category of this nodule",
                "Your review: pending, accepted or rejected")

_REVIEW_STYLE = {
    "pending": ("pending", PALETTE["amber"]),
    "accepted": ("✓ accepted", PALETTE["green"]),
    "rejected": ("✗ rejected", PALETTE["red"]),
}


_LOBE_ABBR = {"upper": "U", "middle": "M", "lower": "L"}


def _location(n: dict[str, Any]) -> tuple[str, str]:
    """Short radiology form (RUL, LLL ...) and the words for the tooltip."""
    loc = n.get("location") or {}
    side = str(loc.get("side") or "").lower()
    lobe = str(loc.get("lobe") or "").lower()
    if side not in ("right", "left"):
        return ("—", "location not reported")
    words = f"{side.capitalize()} {lobe} lobe" if lobe in _LOBE_ABBR else f"{side.capitalize()} lung, lobe not reported"
    short = f"{side[0].upper()}{_LOBE_ABBR[lobe]}L" if lobe in _LOBE_ABBR else side.capitalize()
    if loc.get("lobe_estimated") and lobe in _LOBE_ABBR:
        short += "*"
        words += " (estimated from the position, no fissure segmentation)"
    return (short, words)


def _size(n: dict[str, Any]) -> str:
    d = finite_number(n.get("mean_diameter_mm"))
    if d is None:
        return "—"
    return f"{d:.1f}" + (" ✎" if n.get("edited") else "")


def _type(n: dict[str, Any]) -> str:
    """The type as the table shows it; a part-solid nodule with its solid component's size, which sets
    its Lung-RADS category (v2022 part-solid table) and Brock's part-solid term."""
    t = str(n.get("type") or "—")
    sol = finite_number(n.get("solid_component_mm"))
    if t == "part-solid" and sol is not None and sol > 0:
        t += f", solid {sol:.1f} mm"
    return t + (", spiculated" if n.get("spiculated") else "")


#: what the probability cell adds for a finding the classifier did not report itself
_SOURCE_TAG = {"mass rule": " · mass", "dense network": " · 2nd"}


class FindingsDock(QWidget):
    """Nodule table with Accept / Reject / Edit / Spiculated (keys A / R / E / S).

    Signals
    -------
    goto_requested(object)
        LPS ``(x, y, z)`` in mm of the nodule the user clicked.
    edit_requested(int)
        The user wants to brush/erase this nodule's mask.
    cancel_requested()
        The Cancel button of the progress strip.
    """

    goto_requested = Signal(object)
    edit_requested = Signal(int)
    cancel_requested = Signal()

    def __init__(self, state: AnalysisState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("AnalysisDock")
        self.setStyleSheet(DOCK_QSS)
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.state = state
        lay = QVBoxLayout(self)
        lay.setContentsMargins(8, 8, 8, 8)
        lay.setSpacing(6)
        self.banner = IdentityBanner(state)
        lay.addWidget(self.banner)

        self.progress_row = QWidget()
        pr = QHBoxLayout(self.progress_row)
        pr.setContentsMargins(0, 0, 0, 0)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(True)
        pr.addWidget(self.progress, 1)
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setToolTip("Stop the running analysis (the worker process is ended)")
        self.cancel_btn.clicked.connect(self.cancel_requested)
        pr.addWidget(self.cancel_btn)
        self.progress_row.hide()
        lay.addWidget(self.progress_row)

        self.summary = QLabel()
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        self.summary.setWordWrap(True)
        lay.addWidget(self.summary)

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        for c, tip in enumerate(_HEADER_TIPS):
            self.table.horizontalHeaderItem(c).setToolTip(tip)
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.setShowGrid(False)
        self.table.verticalHeader().setDefaultSectionSize(26)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.setWordWrap(False)
        hh = self.table.horizontalHeader()
        hh.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        hh.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)  # type text may elide, not the badge
        self._badges = BadgeDelegate(self.table)
        self.table.setItemDelegateForColumn(5, self._badges)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        self.table.cellClicked.connect(lambda r, _c: self._goto_row(r))
        lay.addWidget(self.table, 1)

        # The filter sits under the table it filters, not in the action row: four
        # review buttons plus it held the dock 566 px wide at least, more than a
        # laptop screen can give a side panel beside three views.
        below = QHBoxLayout()
        self.resolved = QLabel()
        self.resolved.setProperty("role", "muted")
        self.resolved.setWordWrap(True)
        below.addWidget(self.resolved, 1)
        self.show_rejected = QCheckBox("Show rejected")
        self.show_rejected.setChecked(True)
        self.show_rejected.setStyleSheet(f"color: {PALETTE['muted']};")
        self.show_rejected.toggled.connect(lambda _v: self.refresh())
        below.addWidget(self.show_rejected, 0, Qt.AlignmentFlag.AlignTop)
        lay.addLayout(below)
        self.source = QLabel()
        self.source.setProperty("role", "source")
        self.source.setWordWrap(True)
        lay.addWidget(self.source)

        row = QHBoxLayout()
        self.accept_btn = QPushButton("Accept  (A)")
        self.reject_btn = QPushButton("Reject  (R)")
        self.edit_btn = QPushButton("Edit mask  (E)")
        self.accept_btn.setToolTip("Confirm this finding (key A)")
        self.reject_btn.setToolTip("Reject: removes it from the overlay, counts, risk and suggestions (key R)")
        self.edit_btn.setToolTip("Brush / erase the nodule mask; size is re-measured (key E)")
        self.accept_btn.clicked.connect(lambda: self._review("accepted"))
        self.reject_btn.clicked.connect(lambda: self._review("rejected"))
        self.edit_btn.clicked.connect(self._edit)
        self.spic_btn = QPushButton("Spiculated  (S)")
        self.spic_btn.setCheckable(True)
        self.spic_btn.setToolTip("Your call on the margin (key S): spiculation raises the Brock odds 2.2-fold "
                                 "and changes the Lung-RADS rule for juxtapleural nodules. The analysis does "
                                 "not assess it: check the margin on the image.")
        self.spic_btn.clicked.connect(self._toggle_spiculated)
        for b in (self.accept_btn, self.reject_btn, self.edit_btn, self.spic_btn):
            row.addWidget(b)
        row.addStretch(1)
        lay.addLayout(row)

        # A / R / E are also window shortcuts of the viewer (angle, reset, ellipse
        # tools); while the findings table has focus they mean review. Claiming
        # them in ShortcutOverride keeps the window's shortcut from firing.
        self._keys = {Qt.Key.Key_A: lambda: self._review("accepted"),
                      Qt.Key.Key_R: lambda: self._review("rejected"),
                      Qt.Key.Key_E: self._edit,
                      Qt.Key.Key_S: self._toggle_spiculated}
        self.table.installEventFilter(self)

        state.subscribe(self._on_state)
        self.refresh()

    def eventFilter(self, obj: QObject, ev: QEvent) -> bool:  # noqa: N802
        if obj is self.table and ev.type() in (QEvent.Type.ShortcutOverride, QEvent.Type.KeyPress):
            key_ev: QKeyEvent = ev  # type: ignore[assignment]
            fn = self._keys.get(Qt.Key(key_ev.key()))
            if fn is not None and not (key_ev.modifiers() & ~Qt.KeyboardModifier.KeypadModifier):
                ev.accept()
                if ev.type() == QEvent.Type.KeyPress:
                    fn()
                return True
        # QObject.eventFilter only returns False; returning the result of
        # super().eventFilter() here trips a PySide6 6.12 refcount bug
        # ("bool_dealloc" fatal error at interpreter exit).
        return False

    # ------------------------------------------------------------------ progress
    def set_running(self, running: bool) -> None:
        """Show or hide the analysis progress strip."""
        self.progress_row.setVisible(running)
        if running:
            self.progress.setValue(0)
            self.progress.setFormat("starting analysis…")

    def show_failure(self, message: str) -> None:
        """Say in the dock why there are no findings (the window also lists it)."""
        if not self.state.has_result:
            self.summary.setText(f'<span style="color:{PALETTE["red"]}; font-weight:600;">Analysis failed</span><br>'
                                 f'<span style="color:{PALETTE["muted"]};">{html.escape(message)}</span>')

    def set_progress(self, fraction: float, message: str) -> None:
        self.progress.setValue(int(round(fraction * 1000)))
        self.progress.setFormat(f"{message} — %p%" if message else "%p%")

    # ------------------------------------------------------------------ intents
    def selected_id(self) -> int | None:
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        if not rows:
            return None
        item = self.table.item(rows[0].row(), 0)
        return None if item is None else int(item.data(Qt.ItemDataRole.UserRole))

    def select_nodule(self, nodule_id: int) -> bool:
        for r in range(self.table.rowCount()):
            it = self.table.item(r, 0)
            if it is not None and int(it.data(Qt.ItemDataRole.UserRole)) == int(nodule_id):
                self.table.selectRow(r)
                return True
        # QObject.eventFilter only returns False; returning the result of
        # super().eventFilter() here trips a PySide6 6.12 refcount bug
        # ("bool_dealloc" fatal error at interpreter exit).
        return False

    def _goto_row(self, row: int) -> None:
        it = self.table.item(row, 0)
        if it is None:
            return
        n = self.state.nodule(int(it.data(Qt.ItemDataRole.UserRole)))
        c = (n or {}).get("center_lps_mm")
        if isinstance(c, (list, tuple)) and len(c) == 3:
            self.goto_requested.emit(tuple(float(v) for v in c))

    def _review(self, state: str) -> None:
        nid = self.selected_id()
        if nid is None:
            return
        self.state.set_review(nid, state)
        self.select_nodule(nid)

    def _edit(self) -> None:
        nid = self.selected_id()
        if nid is not None and self.state.nodule_labels is not None:
            self.edit_requested.emit(nid)

    def _toggle_spiculated(self) -> None:
        nid = self.selected_id()
        n = self.state.nodule(nid) if nid is not None else None
        if n is None or n.get("type") == "calcified":
            return
        self.state.set_spiculated(nid, not bool(n.get("spiculated")))
        self.select_nodule(nid)

    def _selection_changed(self) -> None:
        nid = self.selected_id()
        has = nid is not None
        self.accept_btn.setEnabled(has)
        self.reject_btn.setEnabled(has)
        self.edit_btn.setEnabled(has and self.state.nodule_labels is not None)
        n = self.state.nodule(nid) if nid is not None else None
        # a calcified nodule's margin does not enter Brock or its Lung-RADS category
        self.spic_btn.setEnabled(n is not None and n.get("type") != "calcified")
        self.spic_btn.setChecked(bool(n and n.get("spiculated")))

    def _on_state(self, _event: str) -> None:
        keep = self.selected_id()
        self.refresh()
        if keep is not None:
            self.select_nodule(keep)

    # ------------------------------------------------------------------ display
    def refresh(self) -> None:
        st = self.state
        if not st.has_result:
            self.summary.setText(f'<span style="color:{PALETTE["muted"]};">No analysis yet — open a CT or press '
                                 f'<b>Analyze</b>.</span>')
            self.table.setRowCount(0)
            self.resolved.setText("")
            self.source.setText("")
            self._selection_changed()
            return
        s = st.summary()
        muted = PALETTE["muted"]

        def ml(v: float | None) -> str:
            return f"{v:,.0f} mL" if v is not None else "n/a"

        extra = []
        if s.rejected_count:
            extra.append(f"{s.rejected_count} rejected")
        if s.pending_count:
            extra.append(f"{s.pending_count} to review")
        emph = f"{s.emphysema_percent:.1f} %" if s.emphysema_percent is not None else "n/a"
        exam = st.exam_category()
        exam_html = ""
        if exam.category is not None:
            bg, fg = lung_rads_color(exam.category)
            exam_html = (f'&nbsp;&nbsp;&nbsp;<span style="color:{muted};">Exam</span>&nbsp;'
                         + badge_html(f"Lung-RADS {exam.category}" + (" *" if exam.recomputed else ""), bg, fg))
        self.summary.setToolTip(f"* {exam.note}" if exam.recomputed else "")
        self.summary.setText(
            f'<span style="font-size:15px; font-weight:600;">{s.nodule_count} nodule'
            f'{"s" if s.nodule_count != 1 else ""}</span>'
            f'<span style="color:{muted};">&nbsp;&nbsp;{html.escape(" · ".join(extra))}</span>'
            f'{exam_html}<br>'
            f'<span style="color:{muted};">Lungs</span>&nbsp;R&nbsp;{ml(s.right_lung_ml).replace(" ", "&nbsp;")}'
            f' · L&nbsp;{ml(s.left_lung_ml).replace(" ", "&nbsp;")} &nbsp; '
            f'<span style="color:{muted};">Emphysema&nbsp;(LAA-950)</span>&nbsp;{emph.replace(" ", "&nbsp;")}')

        rows = [n for n in st.all_nodules() if self.show_rejected.isChecked() or n["review"] != "rejected"]
        # rejected last, then by AI probability: the reader works top-down
        # (a mass reported by the mass rule carries the classifier's low probability: it goes first, not last)
        rows.sort(key=lambda n: (n["review"] == "rejected", n.get("detected_by") != "mass rule",
                                 -(n.get("probability") or 0.0), n["id"]))
        self.table.setRowCount(len(rows))
        # the rule's thresholds as the analysis recorded them (findings model.candidates)
        mdl = st.findings.get("model") if isinstance(st.findings.get("model"), dict) else {}
        rule = (mdl.get("candidates") or {}).get("mass_rule") or {}
        dm = mdl.get("dense_model") if isinstance(mdl.get("dense_model"), dict) else {}
        dense_name = f"{dm.get('name', '?')} {dm.get('version', '')}".strip()
        rule_words = (f"at least {rule['min_diameter_mm']:g} mm, round, mostly surrounded by lung"
                      if isinstance(rule.get("min_diameter_mm"), (int, float)) else "a large round mass in the lung")
        for r, n in enumerate(rows):
            rejected = n["review"] == "rejected"
            loc_short, loc_words = _location(n)
            cells = [str(n["id"]), _size(n), _type(n), loc_short,
                     fmt_pct(n.get("probability"), 0) + _SOURCE_TAG.get(str(n.get("detected_by")), ""),
                     lung_rads_cell(n)[0],
                     _REVIEW_STYLE.get(n["review"], (n["review"], muted))[0]]
            for c, text in enumerate(cells):
                it = QTableWidgetItem(text)
                it.setData(Qt.ItemDataRole.UserRole, n["id"])
                if c in (0, 1, 4):
                    it.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if c == 5 and n.get("lung_rads") is not None:
                    # a rejected nodule's badge goes grey: it no longer codes the exam
                    bg, fg = ("#30353c", "#6b737d") if rejected else lung_rads_color(n.get("lung_rads"))
                    it.setBackground(QBrush(QColor(bg)))
                    it.setForeground(QBrush(QColor(fg)))
                    it.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                    f = QFont()
                    f.setBold(True)
                    it.setFont(f)
                    it.setToolTip(lung_rads_cell(n)[1])
                elif c == 6:
                    it.setForeground(QBrush(QColor(_REVIEW_STYLE.get(n["review"], ("", muted))[1])))
                if c == 3:
                    it.setToolTip(loc_words)
                if c == 4 and n.get("detected_by") == "mass rule":
                    it.setToolTip(f"Reported by the mass rule ({rule_words}), not by the classifier: its "
                                  f"probability for this finding is {fmt_pct(n.get('probability'), 0)}")
                elif c == 4 and n.get("detected_by") == "dense network":
                    it.setToolTip(f"Reported by the second reader, the dense network {dense_name}, where the "
                                  f"classifier reported nothing: {fmt_pct(n.get('probability'), 0)} is that "
                                  "network's highest voxel probability in the finding, not calibrated like the "
                                  "classifier's")
                if c == 1 and n.get("edited"):
                    it.setToolTip(str(n.get("measurement_source", "")))
                if c == 2:
                    src = n.get("spiculated_source")
                    it.setToolTip(("spiculated" if n.get("spiculated") else "not marked spiculated") + " — "
                                  + ("your call (S toggles it)" if src == "reader" else
                                     f"{src or 'from the analysis'}; S marks it"))
                if rejected and c != 6:
                    it.setForeground(QBrush(QColor("#6b737d")))
                    f = it.font()
                    f.setStrikeOut(True)
                    it.setFont(f)
                self.table.setItem(r, c, it)
        src = []
        if mdl.get("name"):
            secs = (mdl.get("seconds") or {}).get("total") if isinstance(mdl.get("seconds"), dict) else None
            when = st.analysed_at
            run = ", ".join(x for x in (str(mdl.get("device") or ""), f"{float(secs):.1f} s" if secs else "",
                                        f"{when:%Y-%m-%d %H:%M}" if when else "") if x)
            src.append(f"AI: {mdl['name']} {mdl.get('version', '(no version)')}" + (f" ({run})" if run else ""))
        else:
            src.append("AI: model not named in the analysis")
        cand = mdl.get("candidates") if isinstance(mdl.get("candidates"), dict) else {}
        if cand.get("version"):
            src.append(f"candidates {cand['version']}"
                       + (f", mass rule ≥ {rule['min_diameter_mm']:g} mm" if "at least" in rule_words else ""))
        if dm.get("name"):
            src.append(f"second reader {dense_name}")
        src.append("⌀: mean of long and short axis (Lung-RADS v2022 measurement)")
        # where the reader learns what the detector misses (ground glass most of all)
        src.append("what the AI misses: Help › AI models")
        self.source.setText(html.escape(" · ".join(src)))
        res = [x for x in st.findings.get("resolved_nodules") or [] if isinstance(x, dict)]
        lines = []
        for status, title in (("resolved", "Resolved since the prior study"),
                              ("not-confirmed", "Not found on this CT, but tissue remains at the prior site (check)")):
            parts = []
            for x in res:
                if x.get("status", "resolved") == status:
                    d = x.get("prior_mean_diameter_mm")
                    parts.append(f"prior #{x.get('prior_id', '?')}" + (f" ({float(d):.1f} mm)" if d else ""))
            if parts:
                lines.append(f"{title}: {', '.join(parts)}")
        self.resolved.setText("\n".join(lines))
        self._selection_changed()
