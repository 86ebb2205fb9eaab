"""Risk dock: Lung-RADS, Fleischner, Brock per nodule, growth, and the deep
model's probability with its explanation.

Every number carries its source (guideline and version, or model name and
version) right under it, and every missing input is listed with what was
assumed: a reader must be able to tell a guideline statement from a model
output and a measured fact from an assumption.
"""

from __future__ import annotations

import html
from typing import Any, Sequence

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QPainter, QPen
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QScrollArea,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from viewer.model.analysis import AnalysisState
from viewer.widgets.identity_banner import (
    DOCK_QSS,
    PALETTE,
    BadgeDelegate,
    IdentityBanner,
    fmt_pct,
    lung_rads_badge_html,
    lung_rads_cell,
    lung_rads_color,
    not_available,
)

__all__ = ["RiskDock", "ContributionBars", "BROCK_SOURCE"]

BROCK_SOURCE = "Brock/PanCan model 2b, McWilliams NEJM 2013"
_GROWTH = {"grown": "grown", "stable": "stable", "shrunk": "shrunk", "new": "new"}


class ContributionBars(QWidget):
    """Horizontal bars: features that raised the risk in red (right of the
    axis), those that lowered it in green (left), longest first."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._items: list[tuple[str, float]] = []
        self._row_h = 22

    def set_contributions(self, items: Sequence[tuple[str, float]]) -> None:
        self._items = sorted(((str(f), float(v)) for f, v in items), key=lambda t: -abs(t[1]))
        self.setMinimumHeight(self._row_h * max(1, len(self._items)) + 8)
        self.updateGeometry()
        self.update()

    def contributions(self) -> list[tuple[str, float]]:
        return list(self._items)

    def sizeHint(self) -> QSize:
        return QSize(320, self._row_h * max(1, len(self._items)) + 8)

    def paintEvent(self, _ev: Any) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        w = self.width()
        label_w = int(w * 0.46)
        bar_x0 = label_w + 8
        bar_w = w - bar_x0 - 44
        mid = bar_x0 + bar_w / 2
        vmax = max((abs(v) for _, v in self._items), default=1.0) or 1.0
        font = QFont(self.font())
        font.setPointSizeF(max(8.0, font.pointSizeF() - 0.5))
        p.setFont(font)
        for i, (name, v) in enumerate(self._items):
            y = 4 + i * self._row_h
            p.setPen(QColor(PALETTE["text"]))
            p.drawText(QRectF(0, y, label_w, self._row_h), Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                       p.fontMetrics().elidedText(name, Qt.TextElideMode.ElideRight, label_w))
            length = (abs(v) / vmax) * (bar_w / 2 - 2)
            color = QColor(PALETTE["red"] if v > 0 else PALETTE["green"])
            rect = QRectF(mid if v > 0 else mid - length, y + 5, length, self._row_h - 10)
            p.fillRect(rect, QBrush(color))
            p.setPen(QColor(PALETTE["muted"]))
            tx = mid + length + 4 if v > 0 else mid - length - 40
            p.drawText(QRectF(tx, y, 40, self._row_h), Qt.AlignmentFlag.AlignVCenter |
                       (Qt.AlignmentFlag.AlignLeft if v > 0 else Qt.AlignmentFlag.AlignRight), f"{v:+.2f}")
        p.setPen(QPen(QColor(PALETTE["border"]), 1))
        p.drawLine(int(mid), 2, int(mid), self.height() - 2)
        p.end()


def _section(text: str) -> QLabel:
    lab = QLabel(text.upper())
    lab.setProperty("role", "section")
    return lab


def _rich(text: str = "", role: str | None = None) -> QLabel:
    lab = QLabel(text)
    lab.setTextFormat(Qt.TextFormat.RichText)
    lab.setWordWrap(True)
    lab.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    if role:
        lab.setProperty("role", role)
    return lab


class RiskDock(QWidget):
    """Risk panel (display only; review changes arrive through the state)."""

    def __init__(self, state: AnalysisState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("AnalysisDock")
        self.setStyleSheet(DOCK_QSS)
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.state = state
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        outer.addWidget(scroll)
        body = QWidget()
        body.setObjectName("AnalysisDock")
        scroll.setWidget(body)
        lay = QVBoxLayout(body)
        lay.setContentsMargins(10, 8, 10, 10)
        lay.setSpacing(6)

        self.banner = IdentityBanner(state)
        lay.addWidget(self.banner)

        self.stale_frame = QFrame()
        self.stale_frame.setObjectName("Stale")
        self.stale_frame.setStyleSheet(f"QFrame#Stale {{ background: {PALETTE['amber_bg']}; border: 1px solid "
                                       f"{PALETTE['amber']}; border-radius: 4px; }}")
        sl = QHBoxLayout(self.stale_frame)
        sl.setContentsMargins(8, 6, 8, 6)
        self.stale_label = _rich()
        sl.addWidget(self.stale_label, 1)
        lay.addWidget(self.stale_frame)

        lay.addWidget(_section("Exam — Lung-RADS"))
        self.exam_label = _rich()
        lay.addWidget(self.exam_label)
        self.exam_source = _rich(role="source")
        lay.addWidget(self.exam_source)

        lay.addWidget(_section("Fleischner"))
        self.fleischner_label = _rich()
        lay.addWidget(self.fleischner_label)
        self.fleischner_source = _rich(role="source")
        lay.addWidget(self.fleischner_source)

        lay.addWidget(_section("Per nodule"))
        self.table = QTableWidget(0, 5)
        self.table.setHorizontalHeaderLabels(["#", "Brock", "Lung-RADS", "Growth", "VDT"])
        self.table.horizontalHeaderItem(4).setToolTip("Volume doubling time (days)")
        self.table.horizontalHeaderItem(1).setToolTip(BROCK_SOURCE)
        self._badges = BadgeDelegate(self.table)
        self.table.setItemDelegateForColumn(2, self._badges)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.setShowGrid(False)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().setDefaultSectionSize(24)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        lay.addWidget(self.table)
        self.brock_source = _rich(role="source")
        lay.addWidget(self.brock_source)

        lay.addWidget(_section("Deep model"))
        self.model_label = _rich()
        lay.addWidget(self.model_label)
        self.bars = ContributionBars()
        lay.addWidget(self.bars)
        self.model_source = _rich(role="source")
        lay.addWidget(self.model_source)

        lay.addWidget(_section("Missing inputs and assumptions"))
        self.missing_label = _rich()
        lay.addWidget(self.missing_label)
        lay.addStretch(1)

        state.subscribe(lambda _e: self.refresh())
        self.refresh()

    # ------------------------------------------------------------------ display
    def refresh(self) -> None:
        st = self.state
        f = st.findings
        muted = PALETTE["muted"]
        if not st.has_result:
            for lab in (self.exam_label, self.fleischner_label, self.model_label, self.missing_label):
                lab.setText(not_available("no analysis yet"))
            for lab in (self.exam_source, self.fleischner_source, self.brock_source, self.model_source):
                lab.setText("")
            self.table.setRowCount(0)
            self.bars.set_contributions([])
            self.stale_frame.hide()
            return

        blocked = "risk" in st.blocked_sections()
        stale = st.stale_reasons()
        self.stale_frame.setVisible(bool(stale))
        if stale:
            self.stale_label.setText(
                "<b>Your review changed the findings.</b> Rejected nodules are left out of every list, Brock "
                "and Lung-RADS follow your review and the exam category is recomputed by the guideline's rule. "
                "These are still the analysis's own, from before your review: " + html.escape("; ".join(stale))
                + ". <b>Analyze</b> re-runs them with your review.")

        # ---- exam Lung-RADS (recomputed after review by the model's rule)
        exam = st.exam_category()
        if exam.category is None and not (f.get("exam") or {}).get("lung_rads"):
            self.exam_label.setText(not_available("the analysis reported no Lung-RADS category"))
            self.exam_source.setText("")
        else:
            bg, fg = lung_rads_color(exam.category)
            big = (f'<span style="background-color:{bg}; color:{fg}; font-size:17px; font-weight:700;">'
                   f'&nbsp;Lung-RADS {html.escape(str(exam.category))}&nbsp;</span>')
            if exam.management:
                mgmt = html.escape(exam.management)
            elif exam.recomputed:
                mgmt = (f'<span style="color:{PALETTE["amber"]};">Management for the recomputed category: '
                        f're-run the analysis for the guideline text.</span>')
            else:
                mgmt = not_available("no management text in the analysis")
            note = (f'<br><span style="color:{PALETTE["amber"]};">{html.escape(exam.note)}</span>'
                    if exam.recomputed else "")
            self.exam_label.setText(f"{big}&nbsp;&nbsp;{mgmt}{note}")
            self.exam_source.setText("Source: " + html.escape(exam.source))

        # ---- Fleischner
        fl = (f.get("exam") or {}).get("fleischner")
        if not isinstance(fl, dict):
            self.fleischner_label.setText(not_available("the analysis reported no Fleischner assessment"))
            self.fleischner_source.setText("")
        else:
            if fl.get("applies") is False or not fl.get("recommendation"):
                reason = fl.get("reason") or "no reason given"
                self.fleischner_label.setText(f'<span style="color:{muted};">Not applicable:</span> '
                                              f"{html.escape(str(reason))}")
            else:
                self.fleischner_label.setText(html.escape(str(fl["recommendation"])) + self._about(fl.get("nodule_id")))
            self.fleischner_source.setText("Source: " + html.escape(str(fl.get("source") or "Fleischner Society 2017")))

        # ---- per nodule
        nodules = st.nodules()
        self.table.setRowCount(len(nodules))
        sources = set()
        for r, n in enumerate(nodules):
            b = n.get("brock") if isinstance(n.get("brock"), dict) else {}
            p = b.get("probability", n.get("brock_probability"))
            if b.get("source") and p is not None:  # a nodule Brock does not score names no Brock source
                sources.add(str(b["source"]))
            brock_txt = "—" if blocked else fmt_pct(p)
            if not blocked and p is not None and n.get("brock_stale"):
                brock_txt += " ⚠"  # the analysis's own: it could not follow the review
            g = n.get("growth") if isinstance(n.get("growth"), dict) else {}
            status = _GROWTH.get(str(g.get("status")), None)
            growth = status or "—"  # None: no growth assessment (no prior, or not computed)
            tip = ""
            try:
                v1, v2 = float(g["prior_volume_mm3"]), float(n["volume_mm3"])
                if v1 > 0:
                    growth += f" {100 * (v2 - v1) / v1:+.0f} %"
                    tip = f"{v1:.0f} → {v2:.0f} mm³"
            except (KeyError, TypeError, ValueError):
                pass
            if g.get("days") and status != "new":
                tip += f" over {g['days']} days"
            vdt = g.get("volume_doubling_time_days")
            vdt_txt = f"{float(vdt):.0f} d" if isinstance(vdt, (int, float)) else "—"
            cells = [str(n["id"]), brock_txt, lung_rads_cell(n)[0], growth, vdt_txt]
            for c, text in enumerate(cells):
                it = QTableWidgetItem(text)
                if c in (0, 1, 4):
                    it.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if c == 1 and "⚠" in text:
                    it.setForeground(QBrush(QColor(PALETTE["amber"])))
                    it.setToolTip("computed before your review (the analysis recorded no terms to re-score it)")
                elif c == 1 and b.get("rescored_after_review"):
                    it.setToolTip("re-scored after your review: nodule count, size"
                                  + (" and your spiculation call" if n.get("spiculated_source") == "reader" else ""))
                if c == 2 and n.get("lung_rads") is not None:
                    bg, fg = lung_rads_color(n.get("lung_rads"))
                    it.setBackground(QBrush(QColor(bg)))
                    it.setForeground(QBrush(QColor(fg)))
                    it.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                    it.setToolTip(lung_rads_cell(n)[1])
                if c == 3 and tip:
                    it.setToolTip(tip)
                if c == 4 and isinstance(vdt, (int, float)) and vdt < 400:
                    it.setForeground(QBrush(QColor(PALETTE["red"])))
                    it.setToolTip("VDT < 400 days: in the range of most lung cancers")
                self.table.setItem(r, c, it)
        self.table.setFixedHeight(self.table.horizontalHeader().height() + 24 * max(1, len(nodules)) + 4)
        src = "; ".join(sorted(sources)) or BROCK_SOURCE
        has_brock = any((n.get("brock") or {}).get("probability") is not None if isinstance(n.get("brock"), dict)
                        else n.get("brock_probability") is not None for n in nodules)
        brock_line = f"Brock: {html.escape(src)}"
        if nodules and not has_brock:
            brock_line = "Brock: " + not_available("the analysis reported no Brock probability")
        if blocked:
            brock_line = "Brock hidden: it uses the clinical file of another patient (identity conflict)."
        self.brock_source.setText(brock_line + "<br>Lung-RADS per nodule: ACR Lung-RADS "
                                  + html.escape(str(((f.get("exam") or {}).get("lung_rads") or {}).get("version", "v2022")))
                                  + " · Growth and doubling time: V2/V1 exponential model (VDT = Δt·ln2/ln(V2/V1))")

        # ---- deep model
        risk = f.get("risk") if isinstance(f.get("risk"), dict) else None
        if blocked:
            self.model_label.setText(not_available("hidden until the patient identity is confirmed"))
            self.bars.set_contributions([])
            self.bars.hide()
            self.model_source.setText("")
        elif not risk or risk.get("probability") is None:
            why = (risk or {}).get("reason") or "the analysis reported no model probability"
            self.model_label.setText(not_available(str(why)))
            self.bars.set_contributions([])
            self.bars.hide()
            self.model_source.setText("")
        else:
            iv = risk.get("interval")
            iv_txt = ""
            if isinstance(iv, (list, tuple)) and len(iv) == 2:
                iv_txt = f'&nbsp;&nbsp;<span style="color:{muted};">interval {fmt_pct(iv[0], 0)} – {fmt_pct(iv[1], 0)}</span>'
            which = f" of nodule #{risk['nodule_id']}" if risk.get("nodule_id") is not None else ""
            self.model_label.setText(f'<span style="font-size:17px; font-weight:700;">{fmt_pct(risk["probability"])}</span>'
                                     f'&nbsp;<span style="color:{muted};">probability of malignancy{which}</span>{iv_txt}'
                                     f'{self._about(risk.get("nodule_id"), named=False)}'
                                     f'<br><span style="color:{muted};">Why (red raised the risk, green lowered it):</span>')
            items = []
            for c in risk.get("contributions") or []:
                if isinstance(c, dict) and isinstance(c.get("value"), (int, float)):
                    name = str(c.get("feature", "?"))
                    if c.get("input") not in (None, ""):
                        name += f" = {c['input']}"
                    items.append((name, float(c["value"])))
            self.bars.set_contributions(items)
            self.bars.setVisible(bool(items))
            m = risk.get("model") if isinstance(risk.get("model"), dict) else {}
            name = f"{m.get('name', 'unnamed model')} {m.get('version', '(no version)')}"
            sha = f", sha256 {str(m['sha256'])[:12]}" if m.get("sha256") else ""
            extra = f"<br>{html.escape(str(risk['source']))}" if risk.get("source") else ""
            self.model_source.setText(f"Model: {html.escape(name + sha)}{extra}")

        # ---- missing inputs
        lines = st.missing_inputs()
        warns = st.unstated_warnings()
        if lines or warns:
            items = [f"<li>{html.escape(x)}</li>" for x in lines]
            items += [f'<li style="color:{muted};">{html.escape(w)}</li>' for w in warns]
            self.missing_label.setText('<ul style="margin-left:-20px;">' + "".join(items) + "</ul>")
        else:
            self.missing_label.setText(f'<span style="color:{muted};">none reported</span>')

    def _about(self, nodule_id: Any, *, named: bool = True) -> str:
        """Which nodule a patient-level number is about and, while the reader has not reviewed it, a caution
        with the AI's detection probability.

        Why: the recommendation and the deep model follow the most suspicious finding, and before the review
        that can be a false positive (the demo's is a vessel segment the detector gave 22 %): the reader must
        see that the number rests on an unconfirmed finding. Accepting the finding removes the caution;
        rejecting it says the number is about a nodule the reader rejected.
        """
        if nodule_id is None:
            return ""
        n = self.state.nodule(int(nodule_id))
        text = f'<span style="color:{PALETTE["muted"]};"> for nodule #{int(nodule_id)}</span>' if named else ""
        review = self.state.review_of(int(nodule_id))
        if n is not None and review == "pending":
            p = n.get("probability")
            det = f", AI detection {fmt_pct(p, 0)}" if isinstance(p, (int, float)) else ""
            text += (f'<br><span style="color:{PALETTE["amber"]};">Nodule #{int(nodule_id)} is not reviewed yet{det}: '
                     "accept or reject it in Findings.</span>")
        elif review == "rejected":
            text += (f'<br><span style="color:{PALETTE["amber"]};">You rejected nodule #{int(nodule_id)}: this is from '
                     "before your review; <b>Analyze</b> re-runs it for the nodules you kept.</span>")
        return text

    def badge_text(self) -> str:
        """The exam Lung-RADS badge as displayed (for tests and accessibility)."""
        return lung_rads_badge_html(self.state.exam_category().category)
