"""Treatment dock: decision-support suggestions grouped by kind, each with its
evidence level, the facts it used and its source.

The banner comes first and stays visible: these are prompts to check against
current guidelines, never orders.
"""

from __future__ import annotations

import html
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QLabel, QScrollArea, QVBoxLayout, QWidget

from viewer.model.analysis import AnalysisState
from viewer.widgets.identity_banner import DOCK_QSS, PALETTE, IdentityBanner, badge_html, evidence_color, not_available

__all__ = ["TreatmentDock", "KIND_TITLES", "BANNER_TEXT"]

BANNER_TEXT = "Decision support: verify against current guidelines"

#: Display order and titles of suggestion kinds (the contract's short names).
KIND_TITLES: dict[str, str] = {
    "workup": "Work-up",
    "therapy": "Therapy",
    "caution": "Caution",
    "pgx": "Pharmacogenomics",
}
_KIND_COLORS = {"workup": "#4c9aff", "therapy": "#3fb950", "caution": "#f0a020", "pgx": "#b07fe0"}


def _card(s: dict[str, Any], kind: str, rejected: list[int]) -> QFrame:
    card = QFrame()
    card.setProperty("role", "card")
    card.setObjectName("SuggestionCard")
    color = _KIND_COLORS.get(kind, PALETTE["muted"])
    card.setStyleSheet(f"QFrame#SuggestionCard {{ background: {PALETTE['panel']}; border: 1px solid {PALETTE['border']};"
                       f" border-left: 4px solid {color}; border-radius: 4px; }}")
    lay = QVBoxLayout(card)
    lay.setContentsMargins(10, 6, 8, 6)
    lay.setSpacing(3)
    level = s.get("evidence_level")
    bg, fg = evidence_color(level)
    badge = badge_html(f"Level {level}" if level and str(level)[0].isdigit() else str(level or "no level"), bg, fg)
    text = html.escape(str(s.get("text") or "(no text)"))
    if rejected:
        which = ", ".join(f"#{i}" for i in rejected)
        text = (f'<span style="color:{PALETTE["amber"]};">⚠ about rejected nodule {which}; no longer follows from '
                f'your review</span><br><span style="color:#6b737d; text-decoration:line-through;">{text}</span>')
    title = QLabel(f'{badge}&nbsp;&nbsp;<span style="font-weight:600;">{text}</span>')
    title.setTextFormat(Qt.TextFormat.RichText)
    title.setWordWrap(True)
    title.setObjectName("SuggestionText")
    lay.addWidget(title)
    muted = PALETTE["muted"]
    lines = []
    drugs = [str(d) for d in s.get("drugs") or []]
    if drugs:
        lines.append(f'<span style="color:{muted};">Drugs:</span> {html.escape(", ".join(drugs))}')
    if s.get("rationale"):
        lines.append(f'<span style="color:{muted};">Facts used:</span> {html.escape(str(s["rationale"]))}')
    lines.append(f'<span style="color:{muted};">Source:</span> '
                 f'{html.escape(str(s.get("source") or "not stated by the knowledge base"))}')
    body = QLabel("<br>".join(lines))
    body.setTextFormat(Qt.TextFormat.RichText)
    body.setWordWrap(True)
    body.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    body.setStyleSheet("font-size: 12px;")
    lay.addWidget(body)
    return card


class TreatmentDock(QWidget):
    """Suggestions from ``findings["suggestions"]`` grouped by kind."""

    def __init__(self, state: AnalysisState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("AnalysisDock")
        self.setStyleSheet(DOCK_QSS)
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.state = state
        lay = QVBoxLayout(self)
        lay.setContentsMargins(8, 8, 8, 8)
        lay.setSpacing(6)
        self.decision_banner = QLabel(f"⚕ {BANNER_TEXT}")
        self.decision_banner.setObjectName("DecisionBanner")
        self.decision_banner.setStyleSheet(f"QLabel#DecisionBanner {{ background: {PALETTE['amber_bg']}; color: #ffd68a;"
                                           f" border: 1px solid {PALETTE['amber']}; border-radius: 4px; padding: 6px 8px;"
                                           " font-weight: 600; }")
        lay.addWidget(self.decision_banner)
        self.banner = IdentityBanner(state)
        lay.addWidget(self.banner)
        self.status = QLabel()
        self.status.setTextFormat(Qt.TextFormat.RichText)
        self.status.setWordWrap(True)
        lay.addWidget(self.status)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self._body = QWidget()
        self._body.setObjectName("AnalysisDock")
        self._list = QVBoxLayout(self._body)
        self._list.setContentsMargins(0, 0, 4, 0)
        self._list.setSpacing(6)
        scroll.setWidget(self._body)
        lay.addWidget(scroll, 1)
        self.cards: list[QFrame] = []
        self.group_titles: list[str] = []
        state.subscribe(lambda _e: self.refresh())
        self.refresh()

    def refresh(self) -> None:
        while self._list.count():
            item = self._list.takeAt(0)
            w = item.widget()
            if w is not None:
                # hide at once: deleteLater runs on the next event-loop turn and a
                # removed-but-visible card would be painted over the new list
                w.hide()
                w.setParent(None)
                w.deleteLater()
        self.cards = []
        self.group_titles = []
        st = self.state
        if not st.has_result:
            self.status.setText(not_available("no analysis yet"))
            return
        if "suggestions" in st.blocked_sections():
            self.status.setText(not_available("hidden until the patient identity is confirmed"))
            return
        sugg = st.findings.get("suggestions")
        if not isinstance(sugg, list):
            self.status.setText(not_available("the analysis produced no suggestions section"))
            return
        items = [s for s in sugg if isinstance(s, dict)]
        n_stale = sum(1 for s in items if st.rejected_refs(s))
        if n_stale or st.edited_ids():
            why = []
            if n_stale:
                why.append(f"{n_stale} refer{'s' if n_stale == 1 else ''} to a nodule you rejected (struck out below)")
            if st.edited_ids():
                why.append("edited nodules keep the sizes the suggestions were made from")
            self.status.setText(f'<span style="color:{PALETTE["amber"]};">Suggestions were made before your review: '
                                f'{html.escape("; ".join(why))}.</span>')
        else:
            self.status.setText(f'<span style="color:{PALETTE["muted"]};">{len(items)} suggestion'
                                f'{"s" if len(items) != 1 else ""}</span>')
        if not items:
            self.status.setText(f'<span style="color:{PALETTE["muted"]};">No suggestions in this analysis.</span>')
        kinds = list(KIND_TITLES) + sorted({str(s.get("kind")) for s in items} - set(KIND_TITLES))
        for kind in kinds:
            group = [s for s in items if str(s.get("kind")) == kind]
            if not group:
                continue
            title = KIND_TITLES.get(kind, kind.capitalize())
            lab = QLabel(f"{title.upper()}  ·  {len(group)}")
            lab.setProperty("role", "section")
            lab.setStyleSheet(f"color: {_KIND_COLORS.get(kind, PALETTE['muted'])};")
            self._list.addWidget(lab)
            self.group_titles.append(title)
            for s in group:
                card = _card(s, kind, st.rejected_refs(s))
                self._list.addWidget(card)
                self.cards.append(card)
        self._list.addStretch(1)
