"""The reading workspace: views, study browser, docks, menus and toolbar.

:class:`MainWindow` composes widgets around one :class:`ViewerModel` and one
:class:`LoaderService`; it holds no image logic itself.

Public API for the analysis layer (``viewer.analysis_panel.install_analysis``)
-------------------------------------------------------------------------------
These names are a contract; keep them stable.

``add_panel(title, widget, area=Qt.RightDockWidgetArea) -> QDockWidget``
    Put ``widget`` into the dock called ``title``. The four reserved docks
    ("Findings", "Risk", "Genomics & labs", "Treatment") exist from the start
    with a placeholder; ``add_panel`` replaces the placeholder. Other titles
    make a new dock tabified with "Findings".
``volume() -> Volume | None`` and the signal ``volume_loaded(Volume)``
    The volume on screen; the signal fires after it is shown.
``study_paths() -> dict``
    What was opened: ``{"study": Path}``; for the demo also ``"prior"``,
    ``"genomics"`` (list), ``"labs"`` (list), ``"clinical"``, ``"demo": True``.
``set_label_overlay(name, labels, colors, visible_ids=None)``
    A ``(z, y, x)`` label map aligned with the volume ("nodules", "lungs"),
    ``colors`` ``{label: (r, g, b)}``; ``labels=None`` removes it.
``set_markers(points_lps, labels)``
    Finding markers at LPS points (mm) with short labels.
``goto_lps(xyz)``
    Move the crosshair there and centre every view on it.
``status_message(text)`` and ``show_issues(lines)``
    One transient status line; persistent one-line warnings (with tooltip).
``add_toolbar_action(action)`` and ``add_file_action(action)``
    Add an action to the main toolbar / the File menu.
``set_busy(name, busy)``
    Long work (e.g. analysis) in progress; ``--screenshot`` waits for it.
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import (
    QComboBox, QDockWidget, QFileDialog, QLabel, QMainWindow, QMessageBox, QProgressBar, QPushButton, QTabWidget, QToolBar,
    QToolButton, QWidget,
)

from inference.types import ScanResult, SeriesInfo, Volume
from viewer.model.measurements import measurements_path
from viewer.model.overlays import Marker
from viewer.model.settings import Settings
from viewer.model.viewer_model import PRESET_KEYS, PRESETS, SLAB_CHOICES_MM, ViewerModel, plane_of
from viewer.services.loader import LoaderService
from viewer.services.settings_store import load_settings, save_settings
from viewer.widgets.measurement_list import MeasurementListWidget
from viewer.widgets.overlay_panel import OverlayPanel
from viewer.widgets.study_browser import StudyBrowser
from viewer.widgets.viewer_grid import ViewerGrid

__all__ = ["MainWindow", "RESERVED_PANELS", "DECISION_SUPPORT_NOTICE", "SHORTCUTS"]

RESERVED_PANELS = ("Findings", "Risk", "Genomics & labs", "Treatment")
DECISION_SUPPORT_NOTICE = "Decision support only — not for primary diagnosis"
CINE_FPS = 12

SHORTCUTS: list[tuple[str, str]] = [
    ("Mouse wheel / ↑ ↓ / PgUp PgDn", "Previous / next slice (PgUp/PgDn: 10 slices)"),
    ("Ctrl + wheel, right-drag", "Zoom"),
    ("Middle-drag", "Pan"),
    ("Left-drag", "Current tool: window/level, crosshair, line, ellipse, angle"),
    ("Left-click", "Move the linked crosshair (W/L and crosshair tools)"),
    ("Double-click", "Maximise / restore a view"),
    ("1 2 3 4", "Window presets: lung, mediastinum, bone, soft tissue"),
    ("W  X  L  E  A", "Tools: window/level, crosshair, line, ellipse ROI, angle"),
    ("F5  F6  F7", "Layouts: one view, MPR, 2×2 with MIP"),
    ("M", "Thick-slab MIP: off → 5 → 10 → 20 mm"),
    ("C", "Cine on / off (active view)"),
    ("R", "Reset zoom and pan"),
    ("H", "Hide / show patient annotations (screen sharing)"),
    ("A  R  E  S", "In the findings table: accept, reject, edit the mask, call the margin spiculated"),
    ("Ctrl+O", "Open folder"),
    ("Delete", "Delete the selected measurement"),
    ("Esc", "Cancel loading, or the angle being drawn"),
    ("F1", "This list"),
]


class MainWindow(QMainWindow):
    """The clinview main window (see the module docstring for its public API)."""

    volume_loaded = Signal(object)

    def __init__(self, *, settings: Settings | None = None, loader: LoaderService | None = None,
                 restore_window: bool = True) -> None:
        super().__init__()
        self.setObjectName("main_window")
        self.setWindowTitle("clinview")
        self.setAcceptDrops(True)
        self.settings = settings if settings is not None else load_settings()
        self.model = ViewerModel()
        self.model.sync_zoom = self.settings.sync_zoom
        self.model.slab_mm = self.settings.slab_mm
        self.model.show_annotations = self.settings.show_annotations
        self.model.layout = self.settings.layout
        if self.settings.preset in PRESETS:
            self.model.window = PRESETS[self.settings.preset]
        self.loader = loader if loader is not None else LoaderService(self)
        self._paths: dict[str, Any] = {}
        self._busy: set[str] = set()
        self._measure_uid: str | None = None
        self.panels: dict[str, QDockWidget] = {}
        self._issues: list[str] = []  # what the status bar shows: study issues + show_issues()
        self._study_issues: list[str] = []  # scan skips, volume warnings, unreadable measurements
        self._extra_issues: list[str] = []
        self.last_error: str | None = None  # the last load/scan failure, one line

        self.grid = ViewerGrid(self.model, self)
        self.setCentralWidget(self.grid)
        # The hint floats over the (black) views instead of sharing a layout
        # with them: hiding it on the first load must not resize every view.
        self.empty_hint = QLabel("Open a DICOM folder (Ctrl+O), drop one here, or pick a recent study from File.",
                                 self.grid)
        self.empty_hint.setObjectName("empty_hint")
        self.empty_hint.setAlignment(Qt.AlignCenter)
        self.empty_hint.setAttribute(Qt.WA_TransparentForMouseEvents)
        self.grid.resized.connect(lambda: self.empty_hint.setGeometry(0, self.grid.height() // 2 - 30, self.grid.width(), 60))

        self._build_docks()
        self._build_actions()
        self._build_menus()
        self._build_toolbar()
        self._build_statusbar()
        self._connect()
        self.cine_timer = QTimer(self)
        self.cine_timer.setInterval(int(1000 / CINE_FPS))
        self.cine_timer.timeout.connect(self._cine_step)
        self._sync_ui()
        self.resize(1600, 1000)
        if restore_window:
            self._restore_window()
        # Everything built so far lives as long as the window. Freezing it
        # takes those ~10^5 Qt/pyqtgraph objects out of the cyclic GC's
        # full collections, which otherwise hold the GIL for tens of ms when
        # a loader thread's allocations trigger one: a visible freeze.
        gc.freeze()

    # ======================================================================
    # construction
    # ======================================================================
    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        d = QDockWidget(title, self)
        d.setObjectName(f"dock_{title.lower().replace(' ', '_').replace('&', 'and')}")
        d.setWidget(widget)
        d.setFeatures(QDockWidget.DockWidgetMovable | QDockWidget.DockWidgetFloatable | QDockWidget.DockWidgetClosable)
        self.addDockWidget(area, d)
        self.panels[title] = d
        return d

    def _placeholder(self, title: str) -> QWidget:
        w = QLabel(f"{title}: appears after analysis.", self)
        w.setObjectName("placeholder")
        w.setProperty("role", "placeholder")
        w.setWordWrap(True)
        w.setAlignment(Qt.AlignTop | Qt.AlignLeft)
        w.setMargin(10)
        return w

    def _build_docks(self) -> None:
        self.setDockOptions(QMainWindow.AnimatedDocks | QMainWindow.AllowTabbedDocks | QMainWindow.AllowNestedDocks)
        self.setTabPosition(Qt.AllDockWidgetAreas, QTabWidget.North)
        self.browser = StudyBrowser(self)
        self.measurement_list = MeasurementListWidget(self.model, self)
        self.overlay_panel = OverlayPanel(self.model, self)
        studies = self._dock("Studies", self.browser, Qt.LeftDockWidgetArea)
        meas = self._dock("Measurements", self.measurement_list, Qt.LeftDockWidgetArea)
        ovl = self._dock("Overlays", self.overlay_panel, Qt.LeftDockWidgetArea)
        self.splitDockWidget(studies, meas, Qt.Vertical)
        self.tabifyDockWidget(meas, ovl)
        meas.raise_()
        first = None
        for title in RESERVED_PANELS:
            d = self._dock(title, self._placeholder(title), Qt.RightDockWidgetArea)
            if first is None:
                first = d
            else:
                self.tabifyDockWidget(first, d)
        assert first is not None
        first.raise_()
        self.resizeDocks([studies, first], [230, 380], Qt.Horizontal)
        self.resizeDocks([studies, meas], [520, 280], Qt.Vertical)

    def _act(self, text: str, slot: Any = None, shortcut: str | QKeySequence | None = None, *,
             checkable: bool = False, tip: str = "") -> QAction:
        a = QAction(text, self)
        if shortcut:
            a.setShortcut(QKeySequence(shortcut))
            a.setShortcutContext(Qt.WindowShortcut)
        a.setCheckable(checkable)
        if tip:
            a.setToolTip(tip)
            a.setStatusTip(tip)
        if slot is not None:
            (a.toggled if checkable else a.triggered).connect(slot)
        self.addAction(a)
        return a

    def _build_actions(self) -> None:
        self.act_open = self._act("Open folder…", self.open_folder_dialog, QKeySequence.Open, tip="Open a DICOM folder, DICOMDIR or .zip")
        self.act_quit = self._act("Quit", self.close, QKeySequence.Quit)
        self.act_layout = {}
        grp = QActionGroup(self)
        for name, text, key in (("single", "One view", "F5"), ("mpr", "MPR", "F6"), ("2x2", "2×2 + MIP", "F7")):
            a = self._act(text, None, key, checkable=True, tip=f"Layout: {text} ({key})")
            a.triggered.connect(lambda _c=False, n=name: self.model.set_layout(n))
            grp.addAction(a)
            self.act_layout[name] = a
        self.act_tool = {}
        tgrp = QActionGroup(self)
        for name, text, key in (("wl", "W/L", "W"), ("crosshair", "Crosshair", "X"), ("line", "Line", "L"),
                                ("ellipse", "Ellipse", "E"), ("angle", "Angle", "A")):
            a = self._act(text, None, key, checkable=True, tip=f"Left-drag tool: {text} ({key})")
            a.triggered.connect(lambda _c=False, n=name: self.model.set_tool(n))
            tgrp.addAction(a)
            self.act_tool[name] = a
        self.act_preset = {}
        for key, name in PRESET_KEYS.items():
            wl = PRESETS[name]
            a = self._act(f"{name.capitalize()}  ({wl.width:.0f}/{wl.level:.0f})", None, key)
            a.triggered.connect(lambda _c=False, n=name: self._apply_preset(n))
            self.act_preset[name] = a
        self.act_slab_cycle = self._act("Cycle thick-slab MIP", self._cycle_slab, "M")
        self.act_cine = self._act("Cine", self._toggle_cine, "C", checkable=True, tip="Play the active view (C)")
        self.act_sync = self._act("Sync zoom", self._set_sync_zoom, checkable=True, tip="Zoom all views together")
        self.act_reset = self._act("Reset view", self.model.reset_views, "R", tip="Zoom to fit, no pan (R)")
        self.act_annot = self._act("Patient annotations", self.model.set_show_annotations, "H", checkable=True,
                                   tip="Show / hide patient and study text (H)")
        self.act_shortcuts = self._act("Keyboard shortcuts", self.show_shortcuts, "F1")
        self.act_about = self._act("About clinview", self._about)
        self.act_models = self._act("AI models…", self.show_model_cards,
                                    tip="Versions, weights check, training, tests and limitations of the AI models")
        self.act_cancel = self._act("Cancel", self._escape, "Esc", tip="Cancel loading or the measurement being drawn (Esc)")

    def _build_menus(self) -> None:
        mb = self.menuBar()
        self.file_menu = mb.addMenu("&File")
        self.file_menu.addAction(self.act_open)
        self.recent_menu = self.file_menu.addMenu("Open recent")
        self._file_insert = self.file_menu.addSeparator()
        self.file_menu.addAction(self.act_quit)
        view = mb.addMenu("&View")
        for a in self.act_layout.values():
            view.addAction(a)
        view.addSeparator()
        wl = view.addMenu("Window preset")
        for a in self.act_preset.values():
            wl.addAction(a)
        slab = view.addMenu("Thick-slab MIP")
        self.act_slab = {}
        sgrp = QActionGroup(self)
        for mm in SLAB_CHOICES_MM:
            a = QAction("Off" if mm == 0 else f"{mm:.0f} mm", self, checkable=True)
            a.triggered.connect(lambda _c=False, v=mm: self._set_slab(v))
            sgrp.addAction(a)
            slab.addAction(a)
            self.act_slab[mm] = a
        view.addAction(self.act_cine)
        view.addAction(self.act_sync)
        view.addAction(self.act_reset)
        view.addAction(self.act_annot)
        view.addSeparator()
        self.panels_menu = view.addMenu("Panels")
        for d in self.panels.values():
            self.panels_menu.addAction(d.toggleViewAction())
        tools = mb.addMenu("&Tools")
        for a in self.act_tool.values():
            tools.addAction(a)
        helpm = mb.addMenu("&Help")
        helpm.addAction(self.act_shortcuts)
        helpm.addAction(self.act_models)
        helpm.addAction(self.act_about)
        self._rebuild_recent()

    def _build_toolbar(self) -> None:
        tb = QToolBar("Main", self)
        tb.setObjectName("main_toolbar")
        tb.setMovable(False)
        tb.setIconSize(QSize(18, 18))
        tb.setToolButtonStyle(Qt.ToolButtonTextOnly)
        self.addToolBar(Qt.TopToolBarArea, tb)
        self.toolbar = tb
        tb.addAction(self.act_open)
        tb.addSeparator()
        for a in self.act_layout.values():
            tb.addAction(a)
        tb.addSeparator()
        for a in self.act_tool.values():
            tb.addAction(a)
        tb.addSeparator()
        self.preset_combo = QComboBox(tb)
        self.preset_combo.setObjectName("preset_combo")
        self.preset_combo.addItem("Custom W/L", "")
        for key, name in PRESET_KEYS.items():
            self.preset_combo.addItem(f"{key}  {name.capitalize()}", name)
        self.preset_combo.activated.connect(self._on_preset_combo)
        tb.addWidget(self.preset_combo)
        self.slab_combo = QComboBox(tb)
        self.slab_combo.setObjectName("slab_combo")
        for mm in SLAB_CHOICES_MM:
            self.slab_combo.addItem("Slab off" if mm == 0 else f"MIP {mm:.0f} mm", mm)
        self.slab_combo.activated.connect(lambda i: self._set_slab(float(self.slab_combo.itemData(i))))
        tb.addWidget(self.slab_combo)
        tb.addSeparator()
        tb.addAction(self.act_cine)
        tb.addAction(self.act_sync)
        tb.addAction(self.act_reset)
        self._toolbar_slot = tb.addSeparator()

    def _build_statusbar(self) -> None:
        sb = self.statusBar()
        sb.setObjectName("status_bar")
        self.readout = QLabel("", sb)
        self.readout.setObjectName("readout")
        self.readout.setMinimumWidth(380)
        self.issue_label = QLabel("", sb)
        self.issue_label.setObjectName("issue_label")
        self.progress = QProgressBar(sb)
        self.progress.setObjectName("load_progress")
        self.progress.setRange(0, 1000)
        self.progress.setMaximumWidth(220)
        self.progress.setTextVisible(True)
        self.cancel_button = QPushButton("Cancel", sb)
        self.cancel_button.setObjectName("cancel_button")
        self.cancel_button.clicked.connect(self.loader.cancel)
        self.notice = QLabel(DECISION_SUPPORT_NOTICE, sb)
        self.notice.setObjectName("decision_support_notice")
        sb.addWidget(self.readout)
        sb.addWidget(self.issue_label, 1)
        sb.addPermanentWidget(self.progress)
        sb.addPermanentWidget(self.cancel_button)
        sb.addPermanentWidget(self.notice)
        self.progress.hide()
        self.cancel_button.hide()

    def _connect(self) -> None:
        m, ld = self.model, self.loader
        m.hover_changed.connect(self._update_readout)
        m.cursor_changed.connect(lambda _p: self._update_readout())
        m.layout_changed.connect(self._sync_ui)
        m.window_changed.connect(self._sync_ui)
        m.slab_changed.connect(self._sync_ui)
        m.tool_changed.connect(self._sync_ui)
        m.annotations_changed.connect(self._sync_ui)
        m.annotations_changed.connect(self._update_title)
        m.measurements.changed.connect(self._autosave_measurements)
        ld.busy.connect(self._on_busy)
        ld.progress.connect(self._on_progress)
        ld.scanned.connect(self._on_scanned)
        ld.thumbnail.connect(self.browser.set_thumbnail)
        ld.listed.connect(self._on_listed)
        ld.loaded.connect(self._on_loaded)
        ld.failed.connect(self._on_failed)
        ld.cancelled.connect(lambda: self.status_message("Loading cancelled; the previous series stays on screen."))
        self.browser.series_activated.connect(self.load_series)

    # ======================================================================
    # public API (see module docstring)
    # ======================================================================
    def add_panel(self, title: str, widget: QWidget, area: Qt.DockWidgetArea = Qt.RightDockWidgetArea) -> QDockWidget:
        """Show ``widget`` in the dock ``title``.

        The reserved docks exist from start-up so the layout does not jump
        when analysis results arrive; their placeholder is replaced (and
        deleted). A new title makes a new dock, tabified with "Findings" when
        it goes to the same area.

        Parameters
        ----------
        title
            Dock title, e.g. one of :data:`RESERVED_PANELS`.
        widget
            The panel; the window takes ownership.
        area
            Dock area for a new dock (ignored for an existing one).

        Returns
        -------
        QDockWidget
            The dock now holding ``widget``.
        """
        d = self.panels.get(title)
        if d is not None:
            old = d.widget()
            d.setWidget(widget)
            if old is not None and old is not widget:
                old.deleteLater()
            return d
        d = self._dock(title, widget, area)
        anchor = self.panels.get("Findings")
        if anchor is not None and area == self.dockWidgetArea(anchor):
            self.tabifyDockWidget(anchor, d)
        self.panels_menu.addAction(d.toggleViewAction())
        return d

    def volume(self) -> Volume | None:
        """The volume on screen, or None."""
        return self.model.volume

    def study_paths(self) -> dict[str, Any]:
        """What was opened (see module docstring); a copy."""
        return dict(self._paths)

    def set_study_paths(self, paths: dict[str, Any]) -> None:
        """Record what belongs to the open study (the demo adds its prior,
        genomics, labs and clinical files)."""
        self._paths = dict(paths)

    def set_label_overlay(self, name: str, labels: np.ndarray | None, colors: dict[int, tuple[int, int, int]],
                          visible_ids: set[int] | None = None) -> None:
        """Show a label map aligned with the volume as coloured fill/contour.

        Parameters
        ----------
        name
            "nodules", "lungs" or another layer name; a second call with the
            same name replaces the map but keeps the reader's opacity/mode.
        labels
            Integer array ``(z, y, x)`` with the volume's shape, or ``None``
            to remove the layer.
        colors
            ``{label: (r, g, b)}``; labels without a colour are not drawn.
        visible_ids
            Labels to show (``None``: all with a colour), e.g. without the
            findings the reader rejected.

        Raises
        ------
        ValueError
            If ``labels`` does not match the open volume: a shifted overlay
            would put a finding in the wrong place.
        """
        self.model.set_label_overlay(name, labels, colors, visible_ids)

    def set_markers(self, points_lps: list[tuple[float, float, float]], labels: list[str]) -> None:
        """Finding markers: a ring and a label at each LPS point (mm).

        Parameters
        ----------
        points_lps
            ``[(x, y, z), ...]`` in DICOM patient LPS millimetres.
        labels
            Short text per point ("N1 6 mm"); missing ones are blank.
        """
        labs = list(labels) + [""] * (len(points_lps) - len(labels))
        self.model.set_markers([Marker(tuple(float(c) for c in p), str(t)) for p, t in zip(points_lps, labs)])

    def goto_lps(self, xyz: tuple[float, float, float] | np.ndarray) -> None:
        """Move the crosshair to ``xyz`` (LPS mm), show its slice in every
        view and pan each view so the point is in the centre (zoom is kept:
        a reader who zoomed in on a nodule wants to stay zoomed)."""
        self.model.set_cursor_lps(xyz)
        self.model.centre_on_cursor()

    def status_message(self, text: str, timeout_ms: int = 8000) -> None:
        self.statusBar().showMessage(text, timeout_ms)

    def show_issues(self, lines: list[str]) -> None:
        """Persistent one-line warnings (e.g. from the analysis): the first in
        the status bar, all in its tooltip. Each call replaces the previous
        call's lines; the open study's own warnings (skipped files, loader
        warnings) stay until another study is opened."""
        self._extra_issues = [str(x) for x in lines]
        self._refresh_issues()

    def _set_study_issues(self, lines: list[str]) -> None:
        self._study_issues = [str(x) for x in lines]
        self._refresh_issues()

    def _refresh_issues(self) -> None:
        self._issues = list(dict.fromkeys(self._study_issues + self._extra_issues))
        if not self._issues:
            self.issue_label.setText("")
            self.issue_label.setToolTip("")
            return
        more = f"  (+{len(self._issues) - 1} more)" if len(self._issues) > 1 else ""
        self.issue_label.setText(f"⚠ {self._issues[0]}{more}")
        shown = self._issues[:40] + ([f"… and {len(self._issues) - 40} more"] if len(self._issues) > 40 else [])
        self.issue_label.setToolTip("\n".join(shown))

    def issues(self) -> list[str]:
        return list(self._issues)

    def add_toolbar_action(self, action: QAction) -> None:
        """Add ``action`` (e.g. Analyze) to the main toolbar."""
        self.toolbar.addAction(action)
        w = self.toolbar.widgetForAction(action)
        if isinstance(w, QToolButton):
            w.setObjectName("primary_action")

    def add_file_action(self, action: QAction) -> None:
        """Add ``action`` to the File menu (above Quit)."""
        self.file_menu.insertAction(self._file_insert, action)

    def set_busy(self, name: str, busy: bool) -> None:
        """Mark long work (``name``) running or done; screenshots wait for it."""
        if busy:
            self._busy.add(name)
        else:
            self._busy.discard(name)

    def is_busy(self) -> bool:
        return bool(self._busy) or self.loader.is_busy()

    # ======================================================================
    # opening studies
    # ======================================================================
    def open_folder_dialog(self) -> None:
        start = self.settings.last_folder or str(Path.home())
        path = QFileDialog.getExistingDirectory(self, "Open DICOM folder", start)
        if path:
            self.open_path(path)

    def open_path(self, path: str | Path, *, paths: dict[str, Any] | None = None,
                  also_list: dict[str, str | Path] | None = None) -> None:
        """Scan ``path`` in the background, list it and load its main series.

        Parameters
        ----------
        path
            DICOM folder, DICOMDIR or .zip.
        paths
            What belongs to this study for :meth:`study_paths` (default
            ``{"study": path}``).
        also_list
            ``{note: folder}`` listed in the study browser beside it without
            loading, e.g. ``{"prior": baseline}`` for the demo's baseline.
        """
        p = Path(path)
        self.settings.add_recent(str(p))
        self.settings.last_folder = str(p if p.is_dir() else p.parent)
        self._rebuild_recent()
        self._paths = dict(paths) if paths else {"study": p}
        self._scan_issues: list[str] = []
        self._autoload_after_scan = True
        self.loader.scan(p)
        self._listed: dict[str, ScanResult] = {}
        for note, folder in (also_list or {}).items():
            self.loader.scan(folder, channel=f"list:{note}")

    def _on_listed(self, channel: str, item: tuple) -> None:
        note = channel.split(":", 1)[-1]
        if item[0] == "scan":
            self._listed[note] = item[1]
            self.browser.add_scan(item[1], note=note)
        elif item[0] == "thumb":
            self.browser.set_thumbnail(item[1], item[2])

    def load_series(self, series: SeriesInfo) -> None:
        """Load one series (double-click in the browser)."""
        self.loader.load(series)

    def load_volume(self, volume: Volume) -> None:
        """Show an in-memory volume as if it had been loaded."""
        self._on_loaded(volume)

    def _on_scanned(self, result: ScanResult) -> None:
        self.browser.set_scan(result)
        for note, listed in getattr(self, "_listed", {}).items():  # a prior listed before the study arrived
            self.browser.add_scan(listed, note=note)
        self._scan_issues = [s.one_line() for s in result.skipped]
        self._set_study_issues(self._scan_issues)
        if not result.series:
            msg = f"{result.root}: no DICOM image series found"
            self._on_failed(msg)
            return
        if getattr(self, "_autoload_after_scan", False):
            self._autoload_after_scan = False
            best = max(result.series, key=lambda s: (s.modality == "CT", s.n_images))
            self.loader.load(best)

    def _on_loaded(self, volume: Volume) -> None:
        self._measure_uid = None
        self.model.set_volume(volume)
        uid = volume.series.series_instance_uid if volume.series else None
        if uid:
            issues = self.model.measurements.load(measurements_path(uid))
            self._measure_uid = uid
        else:
            issues = []
        lines = [w.one_line() for w in volume.warnings] + [i.one_line() for i in issues]
        self._extra_issues = []
        self._study_issues = getattr(self, "_scan_issues", []) + lines
        self._issues = list(dict.fromkeys(self._study_issues))
        # The rest of the chrome follows on the next turn of the event loop:
        # the first image is what the reader waits for, and splitting the work
        # keeps every turn short (the GUI never stalls while a volume arrives).
        QTimer.singleShot(0, lambda v=volume, u=uid: self._after_loaded(v, u))
        self.volume_loaded.emit(volume)

    def _after_loaded(self, volume: Volume, uid: str | None) -> None:
        if volume is not self.model.volume:
            return
        self.empty_hint.hide()
        self.browser.mark_loaded(uid)
        self._refresh_issues()
        self._update_title()
        z, y, x = volume.shape
        self.status_message(f"Loaded {x}×{y}×{z} voxels, spacing {volume.spacing[2]:.2f}×{volume.spacing[1]:.2f}×{volume.spacing[0]:.2f} mm")
        self._update_readout()

    def _update_title(self) -> None:
        """Patient name in the title bar only while annotations are shown: the
        title is visible when the screen is shared too."""
        vol = self.model.volume
        title = "clinview"
        if vol is not None and vol.series is not None:
            s = vol.series
            who = (s.patient.name or s.patient.patient_id or "") if self.model.show_annotations else "(hidden)"
            title += f" — {who} — {s.description or s.modality}"
        self.setWindowTitle(title)

    def _on_failed(self, msg: str) -> None:
        self.last_error = msg
        self._set_study_issues(self._study_issues + [msg])
        self.status_message(msg)

    def _on_busy(self, busy: bool) -> None:
        self.progress.setVisible(busy)
        self.cancel_button.setVisible(busy)
        if busy:
            self.progress.setValue(0)

    def _on_progress(self, frac: float, msg: str) -> None:
        self.progress.setValue(int(frac * 1000))
        self.progress.setFormat(f"{msg[:28]} %p%" if msg else "%p%")

    def _rebuild_recent(self) -> None:
        self.recent_menu.clear()
        for p in self.settings.recent:
            a = self.recent_menu.addAction(p)
            a.triggered.connect(lambda _c=False, path=p: self.open_path(path))
        self.recent_menu.setEnabled(bool(self.settings.recent))

    def _autosave_measurements(self) -> None:
        if self._measure_uid:
            self.model.measurements.save(measurements_path(self._measure_uid))

    # ======================================================================
    # view controls
    # ======================================================================
    def _escape(self) -> None:
        self.loader.cancel()
        for v in self.grid.views.values():
            v.cancel_pending()

    def _apply_preset(self, name: str) -> None:
        self.model.apply_preset(name)
        self.settings.preset = name

    def _on_preset_combo(self, index: int) -> None:
        name = self.preset_combo.itemData(index)
        if name:
            self._apply_preset(name)

    def _set_slab(self, mm: float) -> None:
        self.model.set_slab_mm(mm)
        self.settings.slab_mm = mm

    def _cycle_slab(self) -> None:
        i = SLAB_CHOICES_MM.index(self.model.slab_mm) if self.model.slab_mm in SLAB_CHOICES_MM else 0
        self._set_slab(SLAB_CHOICES_MM[(i + 1) % len(SLAB_CHOICES_MM)])

    def _set_sync_zoom(self, on: bool) -> None:
        self.model.set_sync_zoom(on)
        self.settings.sync_zoom = on

    def _toggle_cine(self, on: bool) -> None:
        if on and self.model.volume is not None:
            self.cine_timer.start()
        else:
            self.cine_timer.stop()

    def _cine_step(self) -> None:
        if self.model.volume is None:
            return
        plane = plane_of(self.model.active_view)
        g = self.model.geometry[plane]
        k = self.model.slice_index(plane) + 1
        self.model.set_slice(plane, 0 if k >= g.n_slices else k)

    def _sync_ui(self) -> None:
        m = self.model
        for name, a in self.act_layout.items():
            a.setChecked(name == m.layout)
        for name, a in self.act_tool.items():
            a.setChecked(name == m.tool)
        for mm, a in self.act_slab.items():
            a.setChecked(mm == m.slab_mm)
        self.act_sync.setChecked(m.sync_zoom)
        self.act_annot.setChecked(m.show_annotations)
        preset = m.preset_name()
        idx = self.preset_combo.findData(preset) if preset else 0
        self.preset_combo.setCurrentIndex(max(0, idx))
        si = self.slab_combo.findData(m.slab_mm)
        if si >= 0:
            self.slab_combo.setCurrentIndex(si)
        if not m.maximized:
            self.settings.layout = m.layout
        self.settings.show_annotations = m.show_annotations

    def _update_readout(self) -> None:
        r = self.model.hover_readout()
        if r is None:
            self.readout.setText("")
            return
        hu, _ = r
        idx = np.round(self.model.hover).astype(int)  # type: ignore[arg-type]
        lps = self.model.volume.voxel_to_lps(idx)  # type: ignore[union-attr]  # the voxel whose HU is shown
        self.readout.setText(f"{hu:.0f} HU   LPS ({lps[0]:.1f}, {lps[1]:.1f}, {lps[2]:.1f}) mm   "
                             f"voxel ({idx[2]}, {idx[1]}, {idx[0]})")

    def keyPressEvent(self, ev):  # type: ignore[no-untyped-def]  # noqa: N802
        if self.model.volume is None:
            return super().keyPressEvent(ev)
        plane = plane_of(self.model.active_view)
        step = {Qt.Key_Up: 1, Qt.Key_Down: -1, Qt.Key_Left: 1, Qt.Key_Right: -1,
                Qt.Key_PageUp: 10, Qt.Key_PageDown: -10}.get(ev.key())
        if step is not None:
            # Up / PgUp: towards the head (axial), as the mouse wheel.
            self.model.step_up(plane, step)
            return
        if ev.key() in (Qt.Key_Home, Qt.Key_End):
            g = self.model.geometry[plane]
            top = g.n_slices - 1 if g.up_sign > 0 else 0
            self.model.set_slice(plane, top if ev.key() == Qt.Key_Home else g.n_slices - 1 - top)
            return
        super().keyPressEvent(ev)

    # ======================================================================
    # drag and drop, help, close
    # ======================================================================
    def dragEnterEvent(self, ev):  # type: ignore[no-untyped-def]  # noqa: N802
        if ev.mimeData().hasUrls() and any(u.isLocalFile() for u in ev.mimeData().urls()):
            ev.acceptProposedAction()

    def dropEvent(self, ev):  # type: ignore[no-untyped-def]  # noqa: N802
        for u in ev.mimeData().urls():
            if u.isLocalFile():
                self.open_path(u.toLocalFile())
                ev.acceptProposedAction()
                return

    def shortcuts_text(self) -> str:
        rows = "".join(f"<tr><td><b>{k}</b>&nbsp;&nbsp;</td><td>{v}</td></tr>" for k, v in SHORTCUTS)
        return f"<table>{rows}</table>"

    def show_shortcuts(self) -> None:
        box = QMessageBox(self)
        box.setWindowTitle("Keyboard shortcuts")
        box.setTextFormat(Qt.RichText)
        box.setText(self.shortcuts_text())
        box.setStyleSheet("QLabel { min-width: 560px; }")
        box.open()

    def show_model_cards(self) -> None:
        """Help → AI models: each model's card, its weights checked against their SHA-256 as it opens."""
        from inference.api import model_cards
        from viewer.widgets.model_cards import ModelCardsDialog

        self._model_cards = ModelCardsDialog(model_cards(), self)
        # a new dialog each time (the weights are checked as it opens): the closed one is freed, not kept as a child
        self._model_cards.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self._model_cards.open()

    def _about(self) -> None:
        QMessageBox.about(self, "About clinview", f"clinview — chest CT viewer.\n\n{DECISION_SUPPORT_NOTICE}.")

    def _restore_window(self) -> None:
        """Size, position and dock arrangement of the last run (bad or
        missing values leave the defaults)."""
        from PySide6.QtCore import QByteArray

        if self.settings.window_geometry:
            self.restoreGeometry(QByteArray.fromBase64(self.settings.window_geometry.encode()))
        if self.settings.window_state:
            self.restoreState(QByteArray.fromBase64(self.settings.window_state.encode()))

    def closeEvent(self, ev):  # type: ignore[no-untyped-def]  # noqa: N802
        self.settings.window_geometry = bytes(self.saveGeometry().toBase64()).decode()
        self.settings.window_state = bytes(self.saveState().toBase64()).decode()
        self.cine_timer.stop()
        self.loader.cancel()
        self.loader.wait_idle(5000)
        save_settings(self.settings)
        gc.unfreeze()  # let the collector reclaim this window once it is gone
        super().closeEvent(ev)

