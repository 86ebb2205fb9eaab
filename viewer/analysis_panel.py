"""Wire the analysis layer into the main window.

:func:`install_analysis` is the only entry point. It uses nothing but the main
window's public API (``add_panel``, ``volume``, ``volume_loaded``,
``study_paths``, ``set_label_overlay``, ``set_markers``, ``goto_lps``,
``status_message``, ``show_issues``, ``add_toolbar_action``,
``add_file_action``, and ``set_busy`` when present), so the analysis can be
developed and tested apart from the viewer core.

Flow: a CT volume is shown → (if "Analyze automatically" is on, the default)
the worker process starts with the study's files → progress in the status bar
and in the Findings dock with a Cancel button → on success
``inference.api.load_analysis`` reads the result into the Qt-free
:class:`~viewer.model.analysis.AnalysisState` → the docks, the overlays and the
markers follow the state, including every review change.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PySide6.QtCore import QCoreApplication, QEvent, QObject, QSettings, Qt, QTimer
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

from inference import api, paths
from inference.errors import ClinviewError
from inference.types import Volume
from viewer.model.analysis import AnalysisState, lung_rads_rank, review_path_for
from viewer.services.analysis import AnalysisService
from viewer.widgets.clinical_dock import ClinicalDock
from viewer.widgets.findings_dock import FindingsDock
from viewer.widgets.identity_banner import confirm_identity_dialog, lung_rads_color
from viewer.widgets.review_tools import MaskEditorDialog
from viewer.widgets.risk_dock import RiskDock
from viewer.widgets.treatment_dock import TreatmentDock

__all__ = ["install_analysis", "AnalysisPanel", "PANEL_TITLES", "LUNG_COLORS"]

PANEL_TITLES = ("Findings", "Risk", "Genomics & labs", "Treatment")
#: 1 = right lung, 2 = left lung (contract); muted so nodules stand out.
LUNG_COLORS: dict[int, tuple[int, int, int]] = {1: (70, 150, 190), 2: (150, 120, 200)}
_AUTO_KEY = "analysis/auto_run"
_SPARE_KEY = "analysis/spare_worker"


def _hex_rgb(h: str) -> tuple[int, int, int]:
    h = h.lstrip("#")
    return (int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16))


def _settings() -> QSettings:
    """Analysis preferences in the user data folder (tests redirect it)."""
    return QSettings(str(paths.data_dir() / "analysis.ini"), QSettings.Format.IniFormat)


class AnalysisPanel(QObject):
    """Owns the analysis state, the worker client, the four docks and the actions.

    Parameters
    ----------
    window : the main window (public API only).
    command : worker argv override (tests); default ``inference.api.worker_command()``.
    """

    def __init__(self, window: Any, *, command: list[str] | None = None) -> None:
        super().__init__(window)
        self.window = window
        self.state = AnalysisState()
        # the real worker is kept one step ahead (a spare: see viewer.services.analysis); a test's
        # protocol script is started with its request
        keep_spare = _settings().value(_SPARE_KEY, True, type=bool)
        self.service = AnalysisService(self, command=command, spare=command is None and keep_spare)
        self.extra: dict[str, Any] = {"genomics": [], "labs": [], "clinical": None}
        self.confirm_identity = False
        self._dialog: QMessageBox | None = None
        self._editor: MaskEditorDialog | None = None

        self.findings = FindingsDock(self.state)
        self.risk = RiskDock(self.state)
        self.clinical = ClinicalDock(self.state)
        self.treatment = TreatmentDock(self.state)
        self.docks = {}
        for title, w in zip(PANEL_TITLES, (self.findings, self.risk, self.clinical, self.treatment)):
            self.docks[title] = window.add_panel(title, w)

        self.act_analyze = QAction("Analyze", self)
        self.act_analyze.setToolTip("Run (or re-run) nodule detection, risk, genomics and labs on the open study")
        self.act_analyze.triggered.connect(lambda: self.start())
        self.act_cancel = QAction("Cancel analysis", self)
        self.act_cancel.setEnabled(False)
        self.act_cancel.triggered.connect(self.service.cancel)
        self.act_auto = QAction("Analyze automatically on open", self)
        self.act_auto.setCheckable(True)
        self.act_auto.setChecked(_settings().value(_AUTO_KEY, True, type=bool))
        self.act_auto.toggled.connect(lambda on: _settings().setValue(_AUTO_KEY, bool(on)))
        self.act_spare = QAction("Keep an analysis worker ready", self)
        self.act_spare.setToolTip("Start the next analysis worker ahead of time (about 3 s less to wait, "
                                  "one idle process of about 0.5 GB)")
        self.act_spare.setCheckable(True)
        self.act_spare.setChecked(keep_spare)
        self.act_spare.toggled.connect(self._set_spare)
        self.act_genomics = QAction("Open genomics file…", self)
        self.act_genomics.triggered.connect(lambda: self._pick("genomics", "Genomic files (*.vcf *.vcf.gz *.maf *.tsv *.csv *.json);;All files (*)"))
        self.act_labs = QAction("Open labs file…", self)
        self.act_labs.triggered.connect(lambda: self._pick("labs", "Lab files (*.csv *.json *.ndjson);;All files (*)"))
        self.act_clinical = QAction("Open clinical file…", self)
        self.act_clinical.triggered.connect(lambda: self._pick("clinical", "Clinical files (*.json *.csv *.yaml);;All files (*)"))
        window.add_toolbar_action(self.act_analyze)
        # Cancel lives next to the progress bar in the Findings dock (and in
        # the File menu): a permanently visible toolbar button would be dead
        # most of the time.
        for a in (self.act_genomics, self.act_labs, self.act_clinical, self.act_auto, self.act_spare, self.act_cancel):
            window.add_file_action(a)

        self.service.progress.connect(self._on_progress)
        self.service.finished.connect(self._on_finished)
        self.service.failed.connect(self._on_failed)
        self.service.cancelled.connect(self._on_cancelled)
        self.findings.goto_requested.connect(self._goto)
        self.findings.edit_requested.connect(self.edit_nodule)
        self.findings.cancel_requested.connect(self.service.cancel)
        for d in (self.findings, self.risk, self.clinical, self.treatment):
            d.banner.confirm_requested.connect(self.ask_identity)
        self.state.subscribe(self._on_state)
        window.volume_loaded.connect(self._on_volume)
        app = QCoreApplication.instance()
        if app is not None:  # never leave a worker (and its children) running after the viewer quits
            app.aboutToQuit.connect(self.service.shutdown)
        if isinstance(window, QObject):  # closing the window ends the viewer even without an event loop
            window.installEventFilter(self)  # (a screenshot run): no spare worker outlives it
        self.service.prestart()

    def _set_spare(self, on: bool) -> None:
        _settings().setValue(_SPARE_KEY, bool(on))
        self.service.set_spare(on)

    def eventFilter(self, obj: QObject, ev: QEvent) -> bool:  # noqa: N802 -- Qt's name
        """The main window is closing: cancel the analysis and stop the spare worker."""
        if obj is self.window and ev.type() == QEvent.Type.Close:
            self.service.shutdown()
        return False

    # ------------------------------------------------------------------ requests
    def build_request(self) -> dict[str, Any] | None:
        """The worker request for the open study, or None (with a status line)."""
        vol: Volume | None = self.window.volume()
        sp = self.window.study_paths()
        study = sp.get("study")
        if vol is None or not study:
            self.window.status_message("Analysis needs an open CT study.")
            return None

        def as_list(v: Any) -> list[str]:
            if v is None:
                return []
            return [str(x) for x in (v if isinstance(v, (list, tuple)) else [v])]

        out = self._analyses_root(vol) / datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        uid = vol.series.series_instance_uid if vol.series is not None else None
        req = {
            "command": "analyze",
            "study": str(study),
            "out": str(out),
            "series_uid": uid,
            "prior": str(sp["prior"]) if sp.get("prior") else None,
            "genomics": as_list(sp.get("genomics")) + self.extra["genomics"],
            "labs": as_list(sp.get("labs")) + self.extra["labs"],
            "clinical": str(self.extra["clinical"] or sp.get("clinical") or "") or None,
            "device": "auto",
            "confirm_identity": bool(self.confirm_identity),
        }
        # the reader's saved review of this series: the analysis starts from it, so the deep model,
        # Fleischner and the suggestions leave out what was rejected (a changed review: a new key)
        review = review_path_for(uid) if uid else None
        if review is not None and review.is_file():
            req["review"] = str(review)
        req["cache_key"], req["inputs_key"] = api.analysis_keys(req)
        return req

    @staticmethod
    def _analyses_root(vol: Volume) -> Path:
        """Where the analyses of ``vol``'s series are written, one folder per run."""
        uid = vol.series.series_instance_uid if vol.series is not None else None
        safe = "".join(c if c.isalnum() or c in ".-_" else "_" for c in (uid or "unknown"))
        return paths.cache_dir() / "analyses" / safe

    def start(self, *, reuse: bool = False) -> bool:
        """(Re-)run the analysis of the open study; a running one is cancelled.

        ``reuse`` (the automatic run after a study is opened): show the newest
        finished analysis of the same inputs, code and models instead of running
        again, when there is one (:mod:`inference.analysis_cache`). The Analyze
        button always runs.
        """
        req = self.build_request()
        if req is None:
            return False
        vol = self.window.volume()
        # reviewed since the last analysis: reopening still shows that analysis at once (the review is
        # restored on it, Brock and Lung-RADS follow it, what cannot is marked) rather than running the
        # whole pipeline again; Analyze runs it with the review
        done, same_review = (api.find_reusable_analysis(self._analyses_root(vol), req) if reuse and vol is not None
                             else (None, False))
        since = "" if same_review else ", made before your last review"
        if done is not None:
            self._on_finished(str(done))
            when = self.state.analysed_at
            text = (f"Analysis of {when:%Y-%m-%d %H:%M} shown" if when else "An earlier analysis shown") + \
                f": same CT, inputs and models{since}. Analyze runs it again."
            # after the window's own "loaded" line, which follows this call when a study was just opened
            QTimer.singleShot(0, lambda: self.window.status_message(text))
            return True
        self.service.start(req)
        self._set_running(True)
        self.window.status_message("Analysis started…")
        return True

    def _pick(self, kind: str, filt: str) -> None:
        parent = self.window if isinstance(self.window, QWidget) else None
        if kind == "clinical":
            path, _ = QFileDialog.getOpenFileName(parent, "Open clinical file", "", filt)
            files = [path] if path else []
        else:
            files, _ = QFileDialog.getOpenFileNames(parent, f"Open {kind} file", "", filt)
        if files:
            self.add_files(kind, files)

    def add_files(self, kind: str, files: list[str]) -> None:
        """Add genomics / labs files (or set the clinical file) and re-run."""
        if kind == "clinical":
            self.extra["clinical"] = str(files[-1])
        else:
            self.extra[kind] = list(dict.fromkeys(self.extra[kind] + [str(f) for f in files]))
        if self.window.volume() is not None:
            self.start()

    # ------------------------------------------------------------------ service
    def _set_running(self, running: bool) -> None:
        self.act_cancel.setEnabled(running)
        self.findings.set_running(running)
        set_busy: Callable[[str, bool], None] | None = getattr(self.window, "set_busy", None)
        if set_busy is not None:
            set_busy("analysis", running)

    def _on_progress(self, frac: float, msg: str) -> None:
        self.findings.set_progress(frac, msg)
        self.window.status_message(f"Analysis {100 * frac:.0f} % — {msg}")

    def _on_cancelled(self) -> None:
        if not self.service.is_running():
            self._set_running(False)
        self.window.status_message("Analysis cancelled.")

    def _on_failed(self, msg: str) -> None:
        self._set_running(False)
        self.findings.show_failure(msg)
        self.window.status_message(f"Analysis failed: {msg}")
        self.window.show_issues([f"Analysis failed: {msg}"])

    def _on_finished(self, out_dir: str) -> None:
        self._set_running(False)
        vol = self.window.volume()
        issues: list[str] = []
        try:
            findings, nod, lun = api.load_analysis(out_dir, vol) if vol is not None else (None, None, None)
        except ImportError as exc:
            # label maps unreadable in this build: the findings alone are still useful
            findings, nod, lun = self._findings_only(out_dir, issues, f"label maps not loaded ({exc})")
        except (ClinviewError, OSError, ValueError, RuntimeError) as exc:  # RuntimeError: SimpleITK read errors
            msg = exc.one_line() if isinstance(exc, ClinviewError) else str(exc).replace("\n", " ")
            self._on_failed(f"{out_dir}: results unreadable: {msg}")
            return
        if findings is None:
            self._on_failed("no volume is open to show the results on")
            return
        # The user may have opened another series while the worker ran: results
        # of one series are never drawn on another (same shape or not).
        done_uid = ((findings.get("series") or {}).get("series_instance_uid")) if isinstance(findings, dict) else None
        open_uid = vol.series.series_instance_uid if vol is not None and vol.series is not None else None
        if done_uid and open_uid and done_uid != open_uid:
            self.window.status_message(f"Analysis of series {done_uid} finished after another series was opened; not shown.")
            return
        if vol is not None:
            for name, arr in (("nodules", nod), ("lungs", lun)):
                if arr is not None and arr.shape != vol.shape:
                    issues.append(f"{out_dir}: {name} label map has shape {arr.shape}, CT {vol.shape}; not shown")
            nod = nod if nod is not None and nod.shape == vol.shape else None
            lun = lun if lun is not None and lun.shape == vol.shape else None
        confirmed = bool((self.service.request or {}).get("confirm_identity"))
        self.state.set_result(findings, nod, lun, volume=vol, out_dir=out_dir)
        if confirmed and self.state.identity_blocking():
            # the user already confirmed these inputs for this run
            self.state.confirm_identity()
        self.push_overlays(lungs=True)
        issues += [i.one_line() for i in self.state.issues] + self.state.warnings()
        if issues:
            self.window.show_issues(issues)
        s = self.state.summary()
        self.window.status_message(f"Analysis done: {s.nodule_count} nodule{'s' if s.nodule_count != 1 else ''}.")
        if self.state.identity_blocking():
            self.ask_identity()

    @staticmethod
    def _findings_only(out_dir: str, issues: list[str], why: str) -> tuple[dict[str, Any], None, None]:
        p = Path(out_dir) / "findings.json"
        findings = json.loads(p.read_text())
        issues.append(f"{out_dir}: {why}")
        return findings, None, None

    # ------------------------------------------------------------------ state → window
    def _on_volume(self, vol: Volume) -> None:
        if self.service.is_running():
            self.service.cancel()
        self.state.clear()
        self.confirm_identity = False
        # results of the previous study must never sit on top of the new one
        self.window.set_label_overlay("nodules", None, {})
        self.window.set_label_overlay("lungs", None, {})
        self.window.set_markers([], [])
        modality = vol.series.modality if vol is not None and vol.series is not None else "CT"
        if modality != "CT":
            self.window.status_message(f"No automatic analysis: the open series is {modality}, the models read chest CT.")
            return
        if self.act_auto.isChecked():
            self.start(reuse=True)

    def _on_state(self, event: str) -> None:
        if event in ("review", "mask"):
            self.push_overlays(lungs=False)

    def push_overlays(self, *, lungs: bool = True) -> None:
        """Show the state on the window: lung and nodule label maps (rejected
        nodules hidden, each nodule in its Lung-RADS colour) and markers."""
        st = self.state
        w = self.window
        vol = w.volume()
        if vol is None:
            return
        if lungs:
            w.set_label_overlay("lungs", st.lung_labels, LUNG_COLORS)
        if st.nodule_labels is not None:
            # each nodule in its Lung-RADS colour; uncategorised ones in a bright
            # amber, never the badge's grey, which vanishes on lung parenchyma
            colors = {n["id"]: (_hex_rgb(lung_rads_color(n.get("lung_rads"))[0]) if lung_rads_rank(n.get("lung_rads")) >= 0
                                else (255, 170, 40)) for n in st.all_nodules()}
            w.set_label_overlay("nodules", st.nodule_labels, colors, visible_ids=set(st.visible_ids()))
        else:
            w.set_label_overlay("nodules", None, {})
        pts, labels = [], []
        for n in st.nodules():
            c = n.get("center_lps_mm")
            if isinstance(c, (list, tuple)) and len(c) == 3:
                pts.append(tuple(float(v) for v in c))
                labels.append(f"#{n['id']}" + (f" {n['lung_rads']}" if n.get("lung_rads") else ""))
        w.set_markers(pts, labels)

    def _goto(self, xyz: tuple[float, float, float]) -> None:
        self.window.goto_lps(np.asarray(xyz, float))

    # ------------------------------------------------------------------ review tools
    def edit_nodule(self, nodule_id: int) -> MaskEditorDialog | None:
        """Open the brush/erase editor on a nodule (non-blocking dialog)."""
        if self.state.nodule_labels is None:
            self.window.status_message("No nodule mask to edit in this analysis.")
            return None
        parent = self.window if isinstance(self.window, QWidget) else None
        dlg = MaskEditorDialog(self.state, nodule_id, parent)
        dlg.setWindowModality(Qt.WindowModality.WindowModal)
        dlg.editor.applied.connect(lambda nid: self.window.status_message(
            f"Nodule #{nid} re-measured: {self.state.nodule(nid)['mean_diameter_mm']:.1f} mm, "
            f"{self.state.nodule(nid)['volume_mm3']:.0f} mm³ (saved with the study)."))
        self._editor = dlg
        dlg.open()
        return dlg

    # ------------------------------------------------------------------ identity
    def ask_identity(self) -> QMessageBox:
        """Open the modal identity question; *confirm* re-runs with confirmation."""
        if self._dialog is not None and self._dialog.isVisible():
            return self._dialog
        parent = self.window if isinstance(self.window, QWidget) else None
        box = confirm_identity_dialog(parent, self.state.identity_lines())
        box.finished.connect(lambda code, b=box: self._identity_answer(b, code))
        self._dialog = box
        box.open()
        return box

    def _identity_answer(self, box: QMessageBox, _code: int) -> None:
        if box.clickedButton() is box.button(QMessageBox.StandardButton.Yes):
            self.state.confirm_identity()
            self.confirm_identity = True
            self.window.status_message("Identity confirmed by the user; re-running with confirmation.")
            self.start()
        else:
            self.window.status_message("Results of the mismatched file stay hidden.")


def install_analysis(window: Any, *, command: list[str] | None = None) -> AnalysisPanel:
    """Install the analysis docks, actions and worker client into ``window``.

    Returns the :class:`AnalysisPanel` (callers that only need the side effect
    may ignore it); it is parented to the window, which keeps it alive.
    """
    return AnalysisPanel(window, command=command)

