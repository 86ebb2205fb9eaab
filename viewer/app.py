"""Application start-up: QApplication, dark theme, the one error dialog, and
:func:`run_viewer` (called by ``clinview``, ``clinview PATH`` and ``clinview demo``).

Only this module (and :mod:`clinview.cli`) turns exceptions into UI: typed
:class:`inference.errors.ClinviewError` become a one-line message, anything
else an "internal error" with the traceback behind "Show details". The GUI
never imports torch or monai (start-up time, and a crash in a model must not
take the viewer down): analysis runs in a worker process.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from pathlib import Path
from types import TracebackType
from typing import Any

from PySide6.QtCore import QCoreApplication, QEventLoop
from PySide6.QtGui import QColor, QIcon, QPalette
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

from inference.errors import ClinviewError

__all__ = ["run_viewer", "make_app", "apply_theme", "ErrorReporter", "build_window", "wait_until", "take_screenshot"]

STYLE = Path(__file__).resolve().parents[1] / "resources" / "styles" / "dark.qss"
SCREENSHOT_SIZE = (1600, 1000)


def apply_theme(app: QApplication) -> None:
    """Fusion style + dark palette (for widgets QSS does not reach) + QSS."""
    app.setStyle("Fusion")
    pal = QPalette()
    for role, col in (
        (QPalette.Window, "#15181c"), (QPalette.WindowText, "#d5d9de"), (QPalette.Base, "#171a1e"),
        (QPalette.AlternateBase, "#1a1e22"), (QPalette.Text, "#d5d9de"), (QPalette.Button, "#232a31"),
        (QPalette.ButtonText, "#d5d9de"), (QPalette.Highlight, "#24415f"), (QPalette.HighlightedText, "#ffffff"),
        (QPalette.ToolTipBase, "#22272d"), (QPalette.ToolTipText, "#e6e9ec"), (QPalette.PlaceholderText, "#6f7a85"),
    ):
        pal.setColor(role, QColor(col))
    app.setPalette(pal)
    if STYLE.exists():
        app.setStyleSheet(STYLE.read_text())


def make_app(argv: list[str] | None = None) -> QApplication:
    """The QApplication (reused when one exists, e.g. under pytest-qt)."""
    # Worker threads (loading, thumbnails) run Python between numpy calls; the
    # GUI thread waits for the GIL up to one switch interval each time it
    # needs it. 2 ms instead of CPython's 5 ms keeps those waits well under
    # a frame at negligible cost.
    sys.setswitchinterval(0.002)
    QCoreApplication.setOrganizationName("clinview")
    QCoreApplication.setApplicationName("clinview")
    app = QApplication.instance()
    if app is None:
        app = QApplication(argv if argv is not None else [sys.argv[0]])
    apply_theme(app)  # type: ignore[arg-type]
    icon = STYLE.parents[1] / "icons" / "clinview.svg"
    if icon.exists():
        app.setWindowIcon(QIcon(str(icon)))  # type: ignore[union-attr]
    return app  # type: ignore[return-value]


class ErrorReporter:
    """The one error dialog. Installed as ``sys.excepthook``.

    Errors that arrive while the dialog is open are appended to it instead of
    stacking dialogs. In offscreen/headless runs (screenshots, tests) the
    message goes to stderr as one line and is remembered in ``errors``.
    """

    def __init__(self, parent: QWidget | None = None, *, interactive: bool | None = None) -> None:
        self.parent = parent
        self.errors: list[str] = []
        self._box: QMessageBox | None = None
        self.interactive = (os.environ.get("QT_QPA_PLATFORM") != "offscreen") if interactive is None else interactive
        self._previous = sys.excepthook

    def install(self) -> None:
        sys.excepthook = self

    def uninstall(self) -> None:
        if sys.excepthook is self:
            sys.excepthook = self._previous

    @staticmethod
    def describe(exc: BaseException) -> str:
        if isinstance(exc, ClinviewError):
            return exc.one_line()
        return f"internal error: {type(exc).__name__}: {exc}".replace("\n", " ")

    def __call__(self, etype: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if issubclass(etype, KeyboardInterrupt):
            QApplication.quit()
            return
        line = self.describe(exc)
        self.errors.append(line)
        details = "".join(traceback.format_exception(etype, exc, tb))
        if os.environ.get("CLINVIEW_DEBUG"):
            sys.stderr.write(details)
        if not self.interactive:
            sys.stderr.write(f"clinview: {line}\n")
            return
        if self._box is not None and self._box.isVisible():
            self._box.setText(self._box.text() + "\n" + line)
            self._box.setDetailedText((self._box.detailedText() or "") + "\n" + details)
            return
        box = QMessageBox(QMessageBox.Critical, "clinview", line, QMessageBox.Ok, self.parent)
        if not isinstance(exc, ClinviewError):
            box.setInformativeText("Your work is kept. Please report this with the details below.")
            box.setDetailedText(details)
        self._box = box
        box.open()


def wait_until(predicate: Any, timeout_s: float, poll_ms: int = 20) -> bool:
    """Run the event loop until ``predicate()`` is true or time runs out."""
    app = QApplication.instance()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        app.processEvents(QEventLoop.AllEvents, poll_ms)  # type: ignore[union-attr]
        time.sleep(poll_ms / 1000 / 4)
    return bool(predicate())


def _install_analysis(window: Any) -> None:
    """Hand the window to the analysis layer when it is installed.

    ``viewer.analysis_panel`` is optional while the analysis issue lands; its
    absence is not an error, anything it raises is (and goes to the dialog).
    """
    import importlib

    try:
        analysis_panel = importlib.import_module("viewer.analysis_panel")
    except ModuleNotFoundError as e:
        if e.name not in ("viewer.analysis_panel",):
            raise
        return
    analysis_panel.install_analysis(window)


def build_window(*, path: str | None = None, demo: bool = False, layout: str | None = None,
                 with_analysis: bool = True, restore_window: bool = True) -> Any:
    """Create the main window, open ``path`` or the demo, install analysis.

    ``restore_window=False`` ignores the last run's window size and docks
    (screenshots must not depend on how someone left the window).
    """
    from viewer.main_window import MainWindow

    window = MainWindow(restore_window=restore_window)
    if layout:
        window.model.set_layout(layout)
    if with_analysis:
        _install_analysis(window)
    if demo:
        _open_demo(window)
    elif path:
        window.open_path(path)
    return window


def _open_demo(window: Any) -> None:
    """Generate (first time, in the background) and open the demo patient:
    the follow-up CT is shown, the baseline is recorded as its prior."""
    from inference import api

    def work(progress: Any, cancel: Any, partial: Any) -> Any:
        from inference.types import Progress

        progress(Progress(0.0, "Preparing the demo patient"))
        return api.demo_patient()

    def ready(dp: Any) -> None:
        window.open_path(dp.followup_dir, paths={
            "study": dp.followup_dir, "prior": dp.baseline_dir, "genomics": [dp.vcf],
            "labs": [dp.labs_fhir, dp.labs_csv], "clinical": dp.clinical_fhir, "truth": dp.truth_json,
            "demo": True, "patient_id": dp.patient_id,
        }, also_list={"prior": dp.baseline_dir})
        window.status_message(f"Demo patient {dp.patient_id}: follow-up CT, baseline as prior")

    window.loader.run(work, "Preparing the demo patient", ready)


def run_viewer(path: str | None = None, *, demo: bool = False, screenshot: str | None = None,
               layout: str | None = None) -> int:
    """Start the viewer; returns the process exit code.

    With ``screenshot``, the window is rendered at 1600×1000 after the volume
    (and any analysis) is shown and saved as PNG, then the function returns
    (use ``QT_QPA_PLATFORM=offscreen`` on machines without a display).
    """
    if path and not Path(path).exists():
        raise ClinviewError("no such file or folder", where=str(path), fix="give a DICOM folder, DICOMDIR or .zip")
    if screenshot and not os.environ.get("QT_QPA_PLATFORM") and not os.environ.get("DISPLAY"):
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    app = make_app()
    reporter = ErrorReporter()
    reporter.install()
    try:
        window = build_window(path=path, demo=demo, layout=layout, restore_window=not screenshot)
        reporter.parent = window
        if screenshot:
            return take_screenshot(window, screenshot, reporter=reporter)
        window.show()
        return int(app.exec())
    finally:
        reporter.uninstall()


def take_screenshot(window: Any, out: str | Path, *, reporter: ErrorReporter | None = None,
                    timeout_s: float | None = None) -> int:
    """Render ``window`` at 1600×1000 into a PNG once its work is done.

    Waits until the opened study's volume is shown and nothing is busy
    (loading, analysis via ``window.set_busy``), at most ``timeout_s``
    (default ``$CLINVIEW_SCREENSHOT_TIMEOUT`` or 600 s), then grabs the whole
    window, so README screenshots are made by the real program. When the
    analysis placed finding markers, the views show the first one.

    Returns
    -------
    int
        0, or 2 when an error reached the error reporter meanwhile.
    """
    window.resize(*SCREENSHOT_SIZE)
    window.show()
    timeout = timeout_s if timeout_s is not None else float(os.environ.get("CLINVIEW_SCREENSHOT_TIMEOUT", "600"))
    wants_volume = bool(window.study_paths()) or window.loader.is_busy()
    errors = reporter.errors if reporter is not None else []
    ok = wait_until(lambda: (not wants_volume or window.volume() is not None or errors or window.last_error)
                    and not window.is_busy(), timeout)
    if not ok:
        sys.stderr.write(f"clinview: screenshot taken after a {timeout:.0f} s timeout; work was still running\n")
    if window.model.markers:
        # a picture of the findings, not of whatever slice is in the middle
        # (slices through it; no pan, so the whole chest stays in view)
        window.model.set_cursor_lps(window.model.markers[0].lps)
    wait_until(lambda: False, 0.3)  # let the last repaints land
    img = window.grab()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    if not img.save(str(out)):
        raise ClinviewError("could not write the screenshot", where=str(out), fix="check the folder is writable")
    window.close()
    return 0 if not errors else 2
