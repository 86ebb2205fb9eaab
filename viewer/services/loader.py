"""Background loading: folder scans, series loads and thumbnails.

The GUI thread never reads a file. Each request runs in its own
:class:`QThread` with a cancel token that the loader polls between slices
(``inference.api`` takes ``cancel=`` and raises ``CancelledError``). A newer
request on the same channel cancels the older one and the older one's result
is dropped even if it arrives, so a reader who double-clicks three series in a
row sees the last one, never a flicker through the first two.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
import warnings
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PySide6.QtCore import QObject, QThread, Signal

from inference import api
from inference.errors import CancelledError, ClinviewError
from inference.types import Progress, ScanResult, SeriesInfo, Volume

__all__ = ["Job", "LoaderService", "thumbnail_of"]

# At most one progress signal per interval: a 400-slice series would otherwise
# post 400 events and the progress bar, not the loader, would stall the GUI.
PROGRESS_INTERVAL_S = 0.03
THUMB_SIZE = 64


class Job(QThread):
    """One background call ``fn(progress=..., cancel=...)``.

    Signals are emitted from the worker thread and delivered queued to
    receivers living in the GUI thread.
    """

    progress = Signal(float, str)
    partial = Signal(object)
    done = Signal(object)
    failed = Signal(str)
    cancelled = Signal()
    crashed = Signal(object)

    def __init__(self, fn: Callable[..., Any], label: str = "") -> None:
        super().__init__()
        self._fn = fn
        self.label = label
        self._cancel = threading.Event()
        self._last_progress = 0.0

    def cancel(self) -> None:
        self._cancel.set()

    def is_cancelled(self) -> bool:
        return self._cancel.is_set()

    def _progress(self, p: Progress) -> None:
        now = time.monotonic()
        if now - self._last_progress >= PROGRESS_INTERVAL_S or p.fraction >= 1.0:
            self._last_progress = now
            self.progress.emit(float(p.fraction), str(p.message))

    def run(self) -> None:  # noqa: D102 - QThread entry
        try:
            result = self._fn(progress=self._progress, cancel=self.is_cancelled, partial=self.partial.emit)
        except CancelledError:
            self.cancelled.emit()
            return
        except ClinviewError as e:
            self.failed.emit(e.one_line())
            return
        except Exception as e:  # noqa: BLE001 - forwarded to the app's one error dialog
            self.crashed.emit(e)
            return
        if self.is_cancelled():
            self.cancelled.emit()
        else:
            self.done.emit(result)


def thumbnail_of(series: SeriesInfo, size: int = THUMB_SIZE) -> np.ndarray | None:
    """A small uint8 lung-window image of the series' middle file, or None.

    Read through ``inference.api.load_series`` on that one file: the project's
    fast native reader, not pydicom, whose first import holds the GIL for
    ~0.2 s and would freeze the GUI. Thumbnails are a convenience: a file that
    cannot be read just gives none.
    """
    if not series.files:
        return None
    one = dataclasses.replace(series, files=(series.files[len(series.files) // 2],))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            vol = api.load_series(one)
    except (ClinviewError, OSError, ValueError):
        return None
    arr = vol.array[vol.array.shape[0] // 2]
    step = max(1, max(arr.shape) // size)
    small = np.asarray(arr[::step, ::step], np.float32)
    lo, hi = (-1350.0, 150.0) if series.modality == "CT" else (float(small.min()), float(small.max()) or 1.0)
    return np.clip((small - lo) / max(hi - lo, 1.0) * 255, 0, 255).astype(np.uint8)


class LoaderService(QObject):
    """Starts and cancels background scans and loads; the only thread owner.

    Signals
    -------
    progress(float, str)
        fraction and message of the running job (load or scan).
    busy(bool)
        a job started / all jobs ended (show / hide the progress bar).
    scanned(ScanResult)
        a folder was indexed.
    thumbnail(str, ndarray)
        a series' thumbnail (SeriesInstanceUID, uint8 image).
    listed(str, tuple)
        the same two for a scan on another channel: ``("scan", ScanResult)``
        or ``("thumb", uid, image)``.
    loaded(Volume)
        a series was loaded (only the newest request's result).
    failed(str)
        one line saying what could not be read and where.
    cancelled()
        the load was cancelled; the previously shown volume stays.
    """

    progress = Signal(float, str)
    busy = Signal(bool)
    scanned = Signal(object)
    thumbnail = Signal(str, object)
    listed = Signal(str, object)
    loaded = Signal(object)
    failed = Signal(str)
    cancelled = Signal()

    def __init__(self, parent: QObject | None = None, *,
                 scan_fn: Callable[..., ScanResult] | None = None,
                 load_fn: Callable[..., Volume] | None = None) -> None:
        super().__init__(parent)
        # Injected for tests that need a controllable source; defaults are the real API.
        self._scan_fn = scan_fn or api.scan
        self._load_fn = load_fn or api.load_series
        self._current: dict[str, Job | None] = {"scan": None, "load": None, "task": None}
        self._task_done: dict[Job, Callable[[Any], None]] = {}
        self._running: set[Job] = set()

    # -- requests ----------------------------------------------------------
    def scan(self, path: str | Path, *, thumbnails: bool = True, channel: str = "scan") -> Job:
        """Index ``path`` in the background; ``scanned`` then ``thumbnail``s.

        A newer scan on the same ``channel`` cancels the older one; a second
        channel (e.g. "list" for a prior study shown beside the open one)
        runs alongside.
        """
        scan_fn = self._scan_fn

        def work(progress: Callable, cancel: Callable, partial: Callable) -> ScanResult:
            result = scan_fn(path, progress=progress)
            if cancel():
                raise CancelledError()
            partial(("scan", result))
            if thumbnails:
                for s in result.series[:200]:
                    if cancel():
                        break
                    img = thumbnail_of(s)
                    if img is not None:
                        partial(("thumb", s.series_instance_uid, img))
            return result

        return self._start(channel, work, f"Scanning {path}")

    def load(self, source: SeriesInfo | str | Path, *, series_uid: str | None = None) -> Job:
        """Load a series in the background; ``loaded`` delivers the Volume.

        Parameters
        ----------
        source
            A :class:`SeriesInfo` from a scan, or a folder / archive path.
        series_uid
            With a path holding several series, the one to load.

        Returns
        -------
        Job
            The running job (``cancel()`` stops it). An older load is
            cancelled and its result, should it still arrive, is dropped.
        """
        load_fn = self._load_fn

        def work(progress: Callable, cancel: Callable, partial: Callable) -> Volume:
            return load_fn(source, series_uid=series_uid, progress=progress, cancel=cancel)

        desc = source.description if isinstance(source, SeriesInfo) else str(source)
        return self._start("load", work, f"Loading {desc or 'series'}")

    def run(self, work: Callable[..., Any], label: str, on_done: Callable[[Any], None] | None = None) -> Job:
        """Run any ``work(progress, cancel, partial)`` in the background (e.g.
        preparing the demo patient); ``on_done(result)`` runs in the GUI thread."""
        job = self._start("task", work, label)
        if on_done is not None:
            self._task_done[job] = on_done
        return job

    def cancel(self) -> None:
        """Cancel the running jobs; results still in flight are dropped."""
        for ch in list(self._current):
            job = self._current.get(ch)
            if job is not None:
                job.cancel()

    def is_busy(self) -> bool:
        return any(j is not None for j in self._current.values())

    def wait_idle(self, timeout_ms: int = 30000) -> bool:
        """Block until every worker thread ended (used at exit and by tests)."""
        deadline = time.monotonic() + timeout_ms / 1000
        for job in list(self._running):
            left = max(0, int((deadline - time.monotonic()) * 1000))
            if not job.wait(left):
                return False
        return True

    # -- plumbing -------------------------------------------------------------
    def _start(self, channel: str, work: Callable[..., Any], label: str) -> Job:
        was_busy = self.is_busy()
        old = self._current.get(channel)
        if old is not None:
            old.cancel()
        job = Job(work, label)
        self._current[channel] = job
        self._running.add(job)
        job.progress.connect(lambda f, m, j=job: self._on_progress(j, f, m))
        job.partial.connect(lambda item, j=job, c=channel: self._on_partial(j, c, item))
        job.done.connect(lambda r, j=job, c=channel: self._on_done(j, c, r))
        job.failed.connect(lambda msg, j=job, c=channel: self._on_failed(j, c, msg))
        job.cancelled.connect(lambda j=job, c=channel: self._on_cancelled(j, c))
        job.crashed.connect(lambda e, j=job, c=channel: self._on_crashed(j, c, e))
        job.finished.connect(lambda j=job: self._forget(j))
        job.start()
        if not was_busy:
            self.busy.emit(True)
        self.progress.emit(0.0, label)
        return job

    def _forget(self, job: Job) -> None:
        self._running.discard(job)
        self._task_done.pop(job, None)

    def _is_current(self, job: Job, channel: str | None = None) -> bool:
        if channel is None:
            return job in self._current.values()
        return self._current.get(channel) is job

    def _finish(self, channel: str, job: Job) -> None:
        if self._current.get(channel) is job:
            self._current[channel] = None
            if not self.is_busy():
                self.busy.emit(False)

    def _on_progress(self, job: Job, frac: float, msg: str) -> None:
        if self._is_current(job) and not job.is_cancelled():
            self.progress.emit(frac, msg)

    def _on_partial(self, job: Job, channel: str, item: tuple) -> None:
        if not self._is_current(job, channel) or job.is_cancelled():
            return
        if channel != "scan":
            self.listed.emit(channel, item)
        elif item[0] == "scan":
            self.scanned.emit(item[1])
        elif item[0] == "thumb":
            self.thumbnail.emit(item[1], item[2])

    def _on_done(self, job: Job, channel: str, result: object) -> None:
        if not self._is_current(job, channel):
            return
        self._finish(channel, job)
        if channel == "load":
            self.loaded.emit(result)
        elif channel == "task":
            cb = self._task_done.pop(job, None)
            if cb is not None:
                cb(result)

    def _on_failed(self, job: Job, channel: str, msg: str) -> None:
        if self._is_current(job, channel):
            self._finish(channel, job)
            self.failed.emit(msg)

    def _on_cancelled(self, job: Job, channel: str) -> None:
        if self._is_current(job, channel):
            self._finish(channel, job)
            if channel == "load":
                self.cancelled.emit()

    def _on_crashed(self, job: Job, channel: str, exc: BaseException) -> None:
        if self._is_current(job, channel):
            self._finish(channel, job)
        sys.excepthook(type(exc), exc, exc.__traceback__)
