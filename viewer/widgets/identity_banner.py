"""Patient-identity guard: a red bar across the top of each analysis dock and
the modal confirmation dialog.

When the worker reports that the inputs belong to different patients
(``findings["identity"]["consistent"] is False``), showing a genomic result or a
lab value from the wrong patient next to this CT is the one mistake a viewer
must not make. Nothing from the mismatched source is displayed (the model's
:meth:`~viewer.model.analysis.AnalysisState.blocked_sections`) until the user
confirms in a modal dialog; the panel then re-runs the analysis with
``confirm_identity=True``.

Also home of the small shared palette and badge helpers of the analysis docks,
so that every dock draws Lung-RADS and evidence badges the same way.
"""

from __future__ import annotations

import html
from typing import Any, Sequence

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QPainter, QPen
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QWidget,
)

from viewer.model.analysis import AnalysisState, lung_rads_rank

__all__ = [
    "IdentityBanner",
    "confirm_identity_dialog",
    "PALETTE",
    "lung_rads_color",
    "lung_rads_cell",
    "badge_html",
    "lung_rads_badge_html",
    "evidence_color",
    "fmt_pct",
    "not_available",
    "DOCK_QSS",
    "BadgeDelegate",
]

#: Dark clinical palette, matched to the main window's dark theme.
PALETTE: dict[str, str] = {
    "bg": "#15181c",
    "panel": "#171a1e",
    "panel_alt": "#1b1f24",
    "border": "#2c333b",
    "text": "#d5d9de",
    "muted": "#8d97a1",
    "accent": "#3d7fb8",
    "red": "#e5484d",
    "red_bg": "#5c1d21",
    "green": "#3fb950",
    "amber": "#f0b65a",
    "amber_bg": "#3d2f12",
}

# Lung-RADS has no official colours; these follow the traffic-light convention
# most reporting tools use, so 4B/4X read as urgent at a glance.
_LR_COLORS: dict[str, tuple[str, str]] = {
    "0": ("#5b6b7f", "#ffffff"),
    "1": ("#2e7d32", "#ffffff"),
    "2": ("#43a047", "#ffffff"),
    "3": ("#f2c318", "#1b1e23"),
    "4A": ("#f57c00", "#1b1e23"),
    "4B": ("#e53935", "#ffffff"),
    "4X": ("#ad1457", "#ffffff"),
}

#: Stylesheet shared by the analysis docks (dark, readable at 1080p).
DOCK_QSS = f"""
QWidget#AnalysisDock {{ background: {PALETTE['bg']}; color: {PALETTE['text']}; }}
QLabel {{ color: {PALETTE['text']}; background: transparent; }}
QLabel[role="muted"] {{ color: {PALETTE['muted']}; }}
QLabel[role="section"] {{ color: {PALETTE['muted']}; font-weight: 600; letter-spacing: 1px;
    padding-top: 6px; border-bottom: 1px solid {PALETTE['border']}; }}
QLabel[role="source"] {{ color: {PALETTE['muted']}; font-size: 11px; }}
QTableWidget {{ background: {PALETTE['panel']}; alternate-background-color: {PALETTE['panel_alt']};
    color: {PALETTE['text']}; gridline-color: {PALETTE['border']}; border: 1px solid {PALETTE['border']};
    selection-background-color: #2f4f7a; selection-color: #ffffff; }}
QHeaderView::section {{ background: {PALETTE['panel_alt']}; color: {PALETTE['muted']};
    border: none; border-right: 1px solid {PALETTE['border']}; padding: 4px 6px; font-weight: 600; }}
QPushButton {{ background: {PALETTE['panel_alt']}; color: {PALETTE['text']}; border: 1px solid {PALETTE['border']};
    border-radius: 4px; padding: 4px 10px; }}
QPushButton:hover {{ border-color: {PALETTE['accent']}; }}
QPushButton:disabled {{ color: #5d6570; }}
QScrollArea {{ border: none; background: {PALETTE['bg']}; }}
QFrame[role="card"] {{ background: {PALETTE['panel']}; border: 1px solid {PALETTE['border']}; border-radius: 6px; }}
"""


def lung_rads_color(category: Any) -> tuple[str, str]:
    """(background, foreground) hex colours of a Lung-RADS category."""
    c = str(category).upper().replace(" ", "").rstrip("S") if category is not None else ""
    if lung_rads_rank(c) < 0:
        return ("#4a5058", "#dfe3e8")
    return _LR_COLORS.get(c, ("#4a5058", "#dfe3e8"))


def lung_rads_cell(nodule: dict[str, Any]) -> tuple[str, str]:
    """(text, tooltip) of a nodule's Lung-RADS category in a table: "—" when it has none, a "?" and
    the reason when the analysis's category could not be checked (``lung_rads_unverified``, set by
    :meth:`viewer.model.analysis.AnalysisState.all_nodules`)."""
    cat = nodule.get("lung_rads")
    if cat is None:
        return ("—", "")
    why = nodule.get("lung_rads_unverified")
    tip = f"Lung-RADS v2022 category {cat}"
    return (f"{cat} ?", f"{tip} as the analysis wrote it; {why} (run Analyze again)") if why else (str(cat), tip)


def evidence_color(level: Any) -> tuple[str, str]:
    """Badge colours of an evidence level: OncoKB 1/2 strong, 3/4 weaker, R resistance."""
    s = str(level or "").upper()
    if s.startswith("R"):
        return ("#8e2430", "#ffffff")
    if s in ("1", "2") or s.startswith("CPIC A") or s == "GUIDELINE":
        return ("#1f6f43", "#ffffff")
    if s.startswith("3") or s.startswith("CPIC B"):
        return ("#2d5d8a", "#ffffff")
    if s.startswith("4"):
        return ("#4a4f7a", "#ffffff")
    return ("#4a5058", "#dfe3e8")


def badge_html(text: str, bg: str, fg: str = "#ffffff") -> str:
    """An inline coloured badge for a rich-text QLabel."""
    return (f'<span style="background-color:{bg}; color:{fg}; font-weight:600;">'
            f'&nbsp;{html.escape(str(text))}&nbsp;</span>')


def lung_rads_badge_html(category: Any) -> str:
    bg, fg = lung_rads_color(category)
    return badge_html(f"Lung-RADS {category}" if category is not None else "Lung-RADS n/a", bg, fg)


def fmt_pct(p: Any, digits: int = 1) -> str:
    """0.182 → '18.2 %'; anything unusable → '—'."""
    try:
        v = float(p)
    except (TypeError, ValueError):
        return "—"
    return f"{100 * v:.{digits}f} %"


def not_available(why: str) -> str:
    return f'<span style="color:{PALETTE["muted"]};">not available: {html.escape(why)}</span>'


class BadgeDelegate(QStyledItemDelegate):
    """Draws a cell as a coloured badge that stays coloured when its row is
    selected (a selected 4B must still read as red), with a thin selection frame."""

    def paint(self, painter: QPainter, option: QStyleOptionViewItem,
              index: QModelIndex | QPersistentModelIndex) -> None:
        bg = index.data(Qt.ItemDataRole.BackgroundRole)
        if not isinstance(bg, (QBrush, QColor)):
            super().paint(painter, option, index)
            return
        painter.save()
        r = option.rect.adjusted(3, 3, -3, -3)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(bg if isinstance(bg, QBrush) else QBrush(bg))
        painter.drawRoundedRect(r, 3, 3)
        if option.state & QStyle.StateFlag.State_Selected:
            painter.setPen(QPen(QColor("#ffffff"), 1.2))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRoundedRect(r, 3, 3)
        fg = index.data(Qt.ItemDataRole.ForegroundRole)
        painter.setPen(fg.color() if isinstance(fg, QBrush) else QColor(fg) if fg else QColor(PALETTE["text"]))
        f = option.font
        f.setBold(True)
        painter.setFont(f)
        painter.drawText(r, Qt.AlignmentFlag.AlignCenter, str(index.data(Qt.ItemDataRole.DisplayRole) or ""))
        painter.restore()


class IdentityBanner(QFrame):
    """Red bar shown while an identity conflict is unconfirmed.

    Emits :attr:`confirm_requested` when the user asks to review and confirm.
    """

    confirm_requested = Signal()

    def __init__(self, state: AnalysisState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("IdentityBanner")
        self._state = state
        self.setStyleSheet(f"QFrame#IdentityBanner {{ background: {PALETTE['red']}; border-radius: 4px; }}"
                           "QFrame#IdentityBanner QLabel { color: white; font-weight: 600; background: transparent; }"
                           "QFrame#IdentityBanner QPushButton { background: white; color: #7a1116;"
                           " border: none; border-radius: 3px; padding: 3px 10px; font-weight: 600; }")
        lay = QHBoxLayout(self)
        lay.setContentsMargins(10, 6, 8, 6)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextFormat(Qt.TextFormat.RichText)
        lay.addWidget(self.label, 1)
        self.button = QPushButton("Review identity…")
        self.button.clicked.connect(self.confirm_requested)
        lay.addWidget(self.button, 0, Qt.AlignmentFlag.AlignTop)
        state.subscribe(lambda _e: self.refresh())
        self.refresh()

    def refresh(self) -> None:
        blocking = self._state.identity_blocking()
        self.setVisible(blocking)
        if blocking:
            lines = "<br>".join(html.escape(s) for s in self._state.identity_lines())
            hidden = ", ".join(sorted(self._state.blocked_sections()))
            self.label.setText(f"⚠ Inputs belong to different patients — hidden until confirmed: "
                               f"{html.escape(hidden)}<br>{lines}")


def confirm_identity_dialog(parent: QWidget | None, lines: Sequence[str]) -> QMessageBox:
    """The modal question; the caller ``open()``s it and reacts to ``accepted``.

    ``open()`` (window-modal, not ``exec()``) keeps the event loop running so
    the worker's progress keeps arriving and tests can drive the dialog.
    The *Yes* button confirms; the safe default is *No*.
    """
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle("Patient identity conflict")
    box.setText("The inputs of this analysis do not belong to the same patient.")
    box.setInformativeText("\n".join(lines) + "\n\nShow the results of every file anyway? Only confirm if you have "
                           "checked that these files belong to this patient.")
    box.setStandardButtons(QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No)
    box.setDefaultButton(QMessageBox.StandardButton.No)
    box.button(QMessageBox.StandardButton.Yes).setText("Same patient — confirm and re-run")
    box.button(QMessageBox.StandardButton.No).setText("Keep hidden")
    box.setWindowModality(Qt.WindowModality.WindowModal)
    return box

