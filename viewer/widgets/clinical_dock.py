"""Genomics & labs dock: variant table, lab table with H/L flags, a trend plot
per analyte with its reference band, and the derived eGFR with its source."""

from __future__ import annotations

import html
from datetime import date, datetime, timezone
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QSplitter,
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
    evidence_color,
    not_available,
)

__all__ = ["ClinicalDock", "GENOMICS_COLUMNS", "LAB_COLUMNS", "lab_series"]

# depth last: in a narrow dock the least decisive column is the one that scrolls off
GENOMICS_COLUMNS = ("Gene", "Variant", "VAF", "Origin", "Actionable", "Depth")
LAB_COLUMNS = ("Test", "Value", "Unit", "Date", "Reference", "Flag")


def _date(s: Any) -> date | None:
    try:
        return date.fromisoformat(str(s)[:10])
    except ValueError:
        return None


def _epoch(d: date) -> float:
    return datetime(d.year, d.month, d.day, tzinfo=timezone.utc).timestamp()


def _ref_text(lab: dict[str, Any]) -> str:
    lo, hi = lab.get("ref_low"), lab.get("ref_high")
    if lo is not None and hi is not None:
        return f"{lo}–{hi}"
    if hi is not None:
        return f"< {hi}"
    if lo is not None:
        return f"> {lo}"
    return "—"


def lab_series(labs: list[dict[str, Any]], key: str, unit: str | None = None) -> list[tuple[date, float, dict[str, Any]]]:
    """All dated numeric values of one analyte (by LOINC, else by name), oldest
    first. With ``unit``, only values in that unit: a value whose unit was not
    understood (or differs) is not comparable and must not bend the trend."""
    out = []
    for lab in labs:
        if not isinstance(lab, dict):
            continue
        if lab.get("unit_status") == "unit not understood":
            continue
        if unit is not None and str(lab.get("unit") or "") != unit:
            continue
        k = str(lab.get("loinc") or lab.get("name") or "")
        d = _date(lab.get("date"))
        v = lab.get("value")
        if k == key and d is not None and isinstance(v, (int, float)) and not isinstance(v, bool):
            out.append((d, float(v), lab))
    out.sort(key=lambda t: t[0])
    return out


def _table(cols: tuple[str, ...], stretch: int) -> QTableWidget:
    t = QTableWidget(0, len(cols))
    t.setHorizontalHeaderLabels(list(cols))
    t.verticalHeader().setVisible(False)
    t.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    t.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    t.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    t.setAlternatingRowColors(True)
    t.setShowGrid(False)
    t.verticalHeader().setDefaultSectionSize(24)
    t.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    t.horizontalHeader().setSectionResizeMode(stretch, QHeaderView.ResizeMode.Stretch)
    return t


class ClinicalDock(QWidget):
    """Genomics and labs of the analysed patient (hidden per source while an
    identity conflict is unconfirmed)."""

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

        split = QSplitter(Qt.Orientation.Vertical)
        split.setChildrenCollapsible(False)
        lay.addWidget(split, 1)

        gen = QWidget()
        gl = QVBoxLayout(gen)
        gl.setContentsMargins(0, 0, 0, 0)
        self.genomics_header = QLabel()
        self.genomics_header.setTextFormat(Qt.TextFormat.RichText)
        self.genomics_header.setWordWrap(True)
        gl.addWidget(self.genomics_header)
        self.genomics = _table(GENOMICS_COLUMNS, 1)
        # the variant text must stay readable: scroll sideways in a narrow dock
        self.genomics.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        self.genomics.horizontalHeader().setStretchLastSection(True)
        self._badges = BadgeDelegate(self.genomics)
        self.genomics.setItemDelegateForColumn(4, self._badges)
        gl.addWidget(self.genomics)
        split.addWidget(gen)

        labs = QWidget()
        ll = QVBoxLayout(labs)
        ll.setContentsMargins(0, 0, 0, 0)
        self.labs_header = QLabel()
        self.labs_header.setTextFormat(Qt.TextFormat.RichText)
        self.labs_header.setWordWrap(True)
        ll.addWidget(self.labs_header)
        self.labs = _table(LAB_COLUMNS, 0)
        self.labs.itemSelectionChanged.connect(self._plot_selected)
        ll.addWidget(self.labs, 1)
        self.egfr = QLabel()
        self.egfr.setTextFormat(Qt.TextFormat.RichText)
        self.egfr.setWordWrap(True)
        ll.addWidget(self.egfr)
        split.addWidget(labs)

        self.plot = pg.PlotWidget(axisItems={"bottom": pg.DateAxisItem(orientation="bottom")})
        self.plot.setBackground(PALETTE["panel"])
        self.plot.showGrid(x=True, y=True, alpha=0.15)
        self.plot.setMinimumHeight(150)
        for ax in ("left", "bottom"):
            self.plot.getAxis(ax).setTextPen(PALETTE["muted"])
            self.plot.getAxis(ax).setPen(PALETTE["border"])
        self.plot.setMenuEnabled(False)
        split.addWidget(self.plot)
        split.setSizes([140, 250, 180])
        self.plotted_key: str | None = None
        self.plotted_points: list[tuple[date, float]] = []

        state.subscribe(lambda _e: self.refresh())
        self.refresh()

    # ------------------------------------------------------------------ display
    def refresh(self) -> None:
        st = self.state
        f = st.findings
        blocked = st.blocked_sections()
        muted = PALETTE["muted"]

        # ---- genomics
        g = f.get("genomics")
        self.genomics.setRowCount(0)
        if not st.has_result:
            self.genomics_header.setText(f"<b>Genomics</b> — {not_available('no analysis yet')}")
        elif "genomics" in blocked:
            self.genomics_header.setText(f"<b>Genomics</b> — {not_available('hidden: the genomic file names another patient')}")
        elif not isinstance(g, dict):
            self.genomics_header.setText(f"<b>Genomics</b> — {not_available('the analysis returned no genomics (no file given, or not computed)')}")
        elif not g:
            self.genomics_header.setText(f"<b>Genomics</b> — {not_available('the genomic file was held back (patient identity conflict)')}")
        else:
            variants = [v for v in g.get("variants") or [] if isinstance(v, dict)]
            # IHC / expression biomarkers (PD-L1 TPS ...) sit in the same table
            for b in g.get("biomarkers") or []:
                if isinstance(b, dict):
                    val = b.get("value")
                    variants.append({**b, "protein_change": " ".join(str(x) for x in (b.get("alteration"), val)
                                                                     if x not in (None, "")),
                                     "origin": b.get("origin") or "biomarker"})
            build = g.get("build") or "build not stated"
            self.genomics_header.setText(
                f'<b>Genomics</b>&nbsp;&nbsp;<span style="color:{muted};">{html.escape(str(g.get("source") or "source?"))}'
                f" · {html.escape(str(build))} · {len(variants)} variant{'s' if len(variants) != 1 else ''}</span>")
            self.genomics.setRowCount(len(variants))
            for r, v in enumerate(variants):
                vaf = v.get("vaf")
                vaf_txt = f"{100 * float(vaf):.0f} %" if isinstance(vaf, (int, float)) else "—"
                depth = v.get("depth")
                act = v.get("actionable")
                drugs = ", ".join(str(d) for d in v.get("drugs") or [])
                level = v.get("evidence_level")
                if act:
                    act_txt = (f"Level {level}" if str(level)[:1].isdigit() else str(level)) if level else "yes"
                elif act is None:
                    act_txt = "—"
                else:
                    act_txt = "no"
                cells = [str(v.get("gene") or "?"), str(v.get("protein_change") or v.get("hgvs_c") or "—"),
                         vaf_txt, str(v.get("origin") or "—"), act_txt, f"{depth}×" if depth is not None else "—"]
                for c, text in enumerate(cells):
                    it = QTableWidgetItem(text)
                    if c in (2, 5):
                        it.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                    if c == 0:
                        fnt = QFont()
                        fnt.setBold(True)
                        it.setFont(fnt)
                    if c == 1:
                        it.setToolTip(" ".join(str(x) for x in (v.get("gene"), v.get("hgvs_c"), v.get("protein_change")) if x))
                    if c == 3 and v.get("origin") == "germline":
                        it.setForeground(QBrush(QColor("#c39bd3")))
                        it.setToolTip("Germline: inherited, relevant for the family and for drug dosing")
                    if c == 4 and act:
                        bg, fg = evidence_color(level if level else "")
                        it.setBackground(QBrush(QColor(bg)))
                        it.setForeground(QBrush(QColor(fg)))
                        it.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                        it.setToolTip(("Evidence level " + str(level) if level else "Actionable")
                                      + (f"; drugs: {drugs}" if drugs else ""))
                    elif c == 4:
                        it.setForeground(QBrush(QColor(muted)))
                    self.genomics.setItem(r, c, it)

        # ---- labs
        labs = f.get("labs")
        self.labs.setRowCount(0)
        self._labs_rows: list[dict[str, Any]] = []
        if not st.has_result:
            self.labs_header.setText(f"<b>Labs</b> — {not_available('no analysis yet')}")
        elif "labs" in blocked:
            self.labs_header.setText(f"<b>Labs</b> — {not_available('hidden: the lab file names another patient')}")
        elif not isinstance(labs, list) or not labs:
            self.labs_header.setText(f"<b>Labs</b> — {not_available('the analysis returned no lab results (no file given, or not computed)')}")
        else:
            rows = [x for x in labs if isinstance(x, dict)]
            # newest first: the value a clinician acts on is at the top
            rows.sort(key=lambda x: (str(x.get("name", "")), str(x.get("date", ""))), reverse=False)
            rows.sort(key=lambda x: str(x.get("date", "")), reverse=True)
            self._labs_rows = rows
            n_flag = sum(1 for x in rows if x.get("flag") in ("H", "L"))
            self.labs_header.setText(f'<b>Labs</b>&nbsp;&nbsp;<span style="color:{muted};">{len(rows)} results'
                                     f"{f' · {n_flag} out of range' if n_flag else ''} · select a row for its trend</span>")
            self.labs.setRowCount(len(rows))
            for r, lab in enumerate(rows):
                flag = lab.get("flag") or ""
                val = lab.get("value")
                cells = [str(lab.get("name") or lab.get("loinc") or "?"), "—" if val is None else f"{val:g}"
                         if isinstance(val, (int, float)) else str(val), str(lab.get("unit") or ""),
                         str(lab.get("date") or "—"), _ref_text(lab), {"H": "H ▲", "L": "L ▼"}.get(flag, flag)]
                for c, text in enumerate(cells):
                    it = QTableWidgetItem(text)
                    if c == 1:
                        it.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                    if flag in ("H", "L") and c in (1, 5):
                        it.setForeground(QBrush(QColor(PALETTE["red"] if flag == "H" else "#5aa9ff")))
                        fnt = QFont()
                        fnt.setBold(True)
                        it.setFont(fnt)
                    if c == 5 and flag:
                        it.setToolTip("above the reference range" if flag == "H" else "below the reference range")
                    self.labs.setItem(r, c, it)

        d = f.get("derived") if isinstance(f.get("derived"), dict) else {}
        egfr = d.get("egfr_ckd_epi_2021")
        if not st.has_result:
            self.egfr.setText("")
        elif "derived" in blocked:
            self.egfr.setText(f"<b>eGFR</b> — {not_available('hidden until the identity is confirmed')}")
        elif isinstance(egfr, (int, float)):
            src = d.get("egfr_source") or "CKD-EPI 2021 race-free creatinine equation"
            self.egfr.setText(f'<b>eGFR</b> {egfr:.0f} mL/min/1.73 m²&nbsp;&nbsp;<span style="color:{muted};'
                              f' font-size:11px;">Source: {html.escape(str(src))}</span>')
        else:
            why = d.get("egfr_reason") or "needs a serum creatinine, age and sex"
            self.egfr.setText(f"<b>eGFR</b> — {not_available(str(why))}")

        if self._labs_rows:
            keys = [str(x.get("loinc") or x.get("name") or "") for x in self._labs_rows]
            key = self.plotted_key
            if key not in keys:
                # open on the most telling trend: a flagged analyte with history, else any history
                def score(i: int) -> tuple[int, int]:
                    n = len(lab_series(self._labs_rows, keys[i]))
                    return (int(n > 1 and self._labs_rows[i].get("flag") in ("H", "L")), int(n > 1))
                best = max(range(len(keys)), key=lambda i: (score(i), -i))
                key = keys[best]
            self.labs.selectRow(keys.index(key))
        else:
            self._clear_plot()

    def _clear_plot(self) -> None:
        self.plot.clear()
        self.plot.setTitle("")
        self.plotted_key = None
        self.plotted_points = []

    def _plot_selected(self) -> None:
        rows = self.labs.selectionModel().selectedRows()
        if not rows or rows[0].row() >= len(self._labs_rows):
            return
        lab = self._labs_rows[rows[0].row()]
        key = str(lab.get("loinc") or lab.get("name") or "")
        series = lab_series(self._labs_rows, key, str(lab.get("unit") or ""))
        self.plot.clear()
        self.plotted_key = key
        self.plotted_points = [(d, v) for d, v, _ in series]
        unit = lab.get("unit") or ""
        self.plot.setTitle(f'<span style="color:{PALETTE["text"]};">{html.escape(str(lab.get("name") or key))}'
                           f' ({html.escape(str(unit))})</span>', size="10pt")
        if not series:
            return
        xs = [_epoch(d) for d, _, _ in series]
        ys = [v for _, v, _ in series]
        lo, hi = lab.get("ref_low"), lab.get("ref_high")
        pad = 20 * 86400
        x0, x1 = min(xs) - pad, max(xs) + pad
        if lo is not None or hi is not None:
            span = max(ys + [v for v in (lo, hi) if v is not None]) - min(ys + [v for v in (lo, hi) if v is not None])
            band_lo = float(lo) if lo is not None else min(0.0, min(ys) - span)
            band_hi = float(hi) if hi is not None else max(ys) + span
            band = pg.LinearRegionItem(values=(band_lo, band_hi), orientation="horizontal", movable=False,
                                       brush=pg.mkBrush(63, 185, 80, 40), pen=pg.mkPen(63, 185, 80, 90))
            band.setZValue(-10)
            self.plot.addItem(band)
        pen = pg.mkPen(PALETTE["accent"], width=2)
        brushes = []
        for _, _, x in series:
            flag = x.get("flag")
            brushes.append(pg.mkBrush(PALETTE["red"] if flag == "H" else "#5aa9ff" if flag == "L" else PALETTE["text"]))
        self.plot.plot(xs, ys, pen=pen, symbol="o", symbolSize=8, symbolBrush=brushes, symbolPen=None)
        self.plot.setXRange(x0, x1, padding=0)
        vals = ys + [float(v) for v in (lo, hi) if v is not None]
        span = (max(vals) - min(vals)) or abs(max(vals)) or 1.0
        self.plot.setYRange(min(vals) - 0.15 * span, max(vals) + 0.15 * span, padding=0)
