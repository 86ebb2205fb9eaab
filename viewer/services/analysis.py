"""Client of the background analysis worker (torch never runs in the GUI).

The worker (``inference.api.worker_command()``) is started in a
:class:`QProcess`; the JSON request goes to its stdin, and it answers with JSON
lines on stdout::

    {"type": "progress", "fraction": 0.42, "message": "segmenting lungs"}
    {"type": "result", "out_dir": "...", "findings": ".../findings.json"}
    {"type": "error", "message": "one line"}

Why a process and not a thread: a crash, an out-of-memory kill or a hung CUDA
call in the model cannot take the viewer down, and cancelling is a kill of the
process tree (as SlicerMONAIAuto3DSeg does) instead of waiting for a
cooperative check. The child runs in its own session/process group so that
grandchildren (data loaders, converters) die with it.

Only one analysis runs at a time: a newer :meth:`AnalysisService.start`
cancels the older one, which reports :attr:`cancelled` before the new one
starts, so a late answer of the old worker can never overwrite a newer result.

**The spare worker.** A worker first imports torch and MONAI and loads the
nodule network (``{"type": "ready"}``) -- 3.0-3.8 s on two idle cores,
7-8 s when they are busy (benchmarks/RESULTS.md) -- and only then reads its
request. With ``spare=True`` the service keeps one such worker
started *ahead* of the request -- at :meth:`prestart` (the viewer calls it
when it opens) and again after each analysis ends -- and hands the next
request to it, so that time is spent while the user is still choosing a
study or reading the last result (it is started after the last result was
handed on, not before: its warm-up would take the cores from drawing it). It is one idle process (~0.5 GB resident
on the CPU build); a spare that died meanwhile is replaced by a fresh worker
at :meth:`start`, and :meth:`shutdown` kills it and starts no other. Cancelling an analysis kills
only that analysis' worker. ``CLINVIEW_SPARE_WORKER=0`` turns it off for every session, the viewer's
File menu ("Keep an analysis worker ready", :meth:`set_spare`) for this user.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, Signal

from inference import api

__all__ = ["AnalysisService", "REQUEST_DEFAULTS", "normalise_request"]

#: Every request field the worker understands, with the value used when the
#: caller leaves it out.
REQUEST_DEFAULTS: dict[str, Any] = {
    "command": "analyze",
    "study": None,
    "out": None,
    "series_uid": None,
    "prior": None,
    "genomics": [],
    "labs": [],
    "clinical": None,
    "device": "auto",
    "confirm_identity": False,
    "cache_key": None,
}


def normalise_request(request: dict[str, Any]) -> dict[str, Any]:
    """Fill defaults and check the fields the worker cannot do without.

    Raises
    ------
    ValueError
        ``study`` or ``out`` is missing (a programming error in the caller).
    """
    req = dict(REQUEST_DEFAULTS)
    req.update({k: v for k, v in request.items() if v is not None or k not in req})
    for k in ("study", "out"):
        if not req.get(k):
            raise ValueError(f"analysis request needs {k!r}")
    for k in ("study", "out", "prior", "clinical"):
        if req.get(k) is not None:
            req[k] = str(req[k])
    req["genomics"] = [str(p) for p in req.get("genomics") or []]
    req["labs"] = [str(p) for p in req.get("labs") or []]
    req["confirm_identity"] = bool(req.get("confirm_identity"))
    return req


@dataclass
class _Job:
    """One worker process and what it has said so far."""

    process: QProcess
    request: dict[str, Any] | None  # None: a spare, waiting for its request
    stdout_buf: bytes = b""
    stderr_tail: list[str] = field(default_factory=list)
    result: dict[str, Any] | None = None
    error: str | None = None
    cancelled: bool = False
    done: bool = False
    ready: bool = False
    pid: int = 0  # kept: QProcess forgets it once the process has exited


class AnalysisService(QObject):
    """Start, follow and cancel one analysis in a worker process.

    Parameters
    ----------
    command : argv of the worker; default ``inference.api.worker_command()``.
        Tests pass a small script that speaks the same protocol.
    parent : Qt parent.

    Signals
    -------
    progress(float, str)
        Fraction 0..1 and a human message.
    finished(str)
        The output folder, once the worker has exited after a result.
    failed(str)
        One line for the user: the worker's error, or the last stderr line of
        a crash.
    cancelled()
        The running analysis was cancelled (by :meth:`cancel` or a newer
        :meth:`start`) and its process is gone.
    """

    progress = Signal(float, str)
    finished = Signal(str)
    failed = Signal(str)
    cancelled = Signal()

    def __init__(self, parent: QObject | None = None, *, command: Sequence[str] | None = None,
                 spare: bool = False) -> None:
        super().__init__(parent)
        self._command = list(command) if command else api.worker_command()
        self._job: _Job | None = None
        self._spare: _Job | None = None
        self._use_spare = bool(spare) and os.environ.get("CLINVIEW_SPARE_WORKER", "1") != "0"
        self.last_result: dict[str, Any] | None = None
        #: why the last spare worker died before it was used (None: none did)
        self.last_spare_error: str | None = None

    # ------------------------------------------------------------------ public
    def is_running(self) -> bool:
        return self._job is not None and not self._job.done

    def pid(self) -> int | None:
        """Process id of the running worker (None when idle)."""
        if self._job is None or self._job.done:
            return None
        pid = int(self._job.process.processId())
        return pid or None

    @property
    def request(self) -> dict[str, Any] | None:
        """The request of the running (or last) analysis."""
        return None if self._job is None or self._job.request is None else dict(self._job.request)

    def spare_pid(self) -> int | None:
        """Process id of the spare worker waiting for the next request (None when there is none)."""
        sp = self._spare
        if sp is None or sp.done or sp.process.state() == QProcess.ProcessState.NotRunning:
            return None
        return int(sp.process.processId()) or None

    def spare_ready(self) -> bool:
        """The spare has imported the analysis and loaded its network (it said ``ready``)."""
        return self.spare_pid() is not None and self._spare is not None and self._spare.ready

    def prestart(self) -> None:
        """Start the spare worker now, if the service keeps one and none is alive."""
        if self._use_spare and self.spare_pid() is None:
            self._spare = self._spawn(None)

    def set_spare(self, on: bool) -> None:
        """Keep a spare worker (and start it now), or stop keeping one (and kill the idle one)."""
        self._use_spare = bool(on)
        if on:
            self.prestart()
            return
        sp, self._spare = self._spare, None
        if sp is not None and not sp.done:
            sp.cancelled = True  # our kill, not a death to report
            self._kill_tree(sp.process)
            sp.process.waitForFinished(5000)
            self._finish(sp)

    def shutdown(self) -> None:
        """Cancel the running analysis and kill the spare (the viewer is quitting)."""
        self._use_spare = False  # first: cancel() would start another
        self.cancel()
        self.set_spare(False)

    def start(self, request: dict[str, Any]) -> None:
        """Start an analysis; a running one is cancelled first.

        The request goes to the spare worker when one is alive (see the
        module docstring), else to a worker started for it.

        Raises
        ------
        ValueError
            The request lacks ``study`` or ``out``.
        """
        req = normalise_request(request)
        if self.is_running():
            self.cancel()
        job, self._spare = self._spare, None
        if job is not None and not job.done:
            job.process.waitForFinished(0)  # lets Qt notice a spare that died since (finished -> done)
        if job is None or job.done or job.process.state() != QProcess.ProcessState.Running:
            if job is not None and not job.done:  # still starting, or gone: not worth waiting for
                job.cancelled = True
                self._kill_tree(job.process)
                self._finish(job)
            job = self._spawn(req)
        job.request = req
        self._job = job
        if job.process.state() != QProcess.ProcessState.NotRunning:
            job.process.write((json.dumps(req) + "\n").encode())
            job.process.closeWriteChannel()

    def _spawn(self, req: dict[str, Any] | None) -> _Job:
        """Start a worker process (its request, if any, is written by :meth:`start`)."""
        proc = QProcess(self)
        env = QProcessEnvironment.systemEnvironment()
        # the worker must import the same `inference` as this process even
        # when clinview runs from a source checkout that is not installed
        root = str(Path(api.__file__).resolve().parents[1])
        old = env.value("PYTHONPATH", "")
        env.insert("PYTHONPATH", root + (os.pathsep + old if old else ""))
        env.insert("PYTHONUNBUFFERED", "1")
        proc.setProcessEnvironment(env)
        if sys.platform != "win32":
            params = QProcess.UnixProcessParameters()
            params.flags = QProcess.UnixProcessFlag.CreateNewSession
            proc.setUnixProcessParameters(params)
        job = _Job(proc, req)
        proc.readyReadStandardOutput.connect(lambda j=job: self._on_stdout(j))
        proc.readyReadStandardError.connect(lambda j=job: self._on_stderr(j))
        proc.finished.connect(lambda code, status, j=job: self._on_finished(j, code, status))
        proc.errorOccurred.connect(lambda err, j=job: self._on_error(j, err))
        proc.started.connect(lambda j=job: setattr(j, "pid", int(j.process.processId())))
        proc.start(self._command[0], self._command[1:])
        if req is None:
            proc.waitForStarted(5000)
        return job

    def cancel(self) -> None:
        """Kill the worker and everything it started; emits :attr:`cancelled`
        once the process is gone. No-op when idle."""
        job = self._job
        if job is None or job.done:
            return
        job.cancelled = True
        self._kill_tree(job.process)
        job.process.waitForFinished(5000)
        self._finish(job)
        self.cancelled.emit()
        self.prestart()

    # ------------------------------------------------------------------ internals
    @staticmethod
    def _kill_tree(proc: QProcess) -> None:
        pid = int(proc.processId())
        if pid <= 0:
            return
        if sys.platform == "win32":
            subprocess.run(["taskkill", "/T", "/F", "/PID", str(pid)], capture_output=True, check=False)
            return
        try:
            os.killpg(pid, signal.SIGKILL)  # the child leads its own session: kills the tree
        except ProcessLookupError:
            pass
        except PermissionError:
            proc.kill()

    def _finish(self, job: _Job) -> None:
        if job.done:
            return
        job.done = True
        for sig in (job.process.readyReadStandardOutput, job.process.readyReadStandardError,
                    job.process.finished, job.process.errorOccurred):
            try:
                sig.disconnect()
            except (RuntimeError, TypeError):
                pass
        try:
            job.process.deleteLater()
        except RuntimeError:  # Qt already deleted it (its parent went first)
            pass

    def _on_stdout(self, job: _Job) -> None:
        job.stdout_buf += bytes(job.process.readAllStandardOutput().data())
        *lines, job.stdout_buf = job.stdout_buf.split(b"\n")
        for raw in lines:
            self._handle_line(job, raw)

    def _on_stderr(self, job: _Job) -> None:
        text = bytes(job.process.readAllStandardError().data()).decode("utf-8", "replace")
        for line in text.splitlines():
            if line.strip():
                job.stderr_tail.append(line.strip())
        del job.stderr_tail[:-20]

    def _handle_line(self, job: _Job, raw: bytes) -> None:
        text = raw.decode("utf-8", "replace").strip()
        if not text:
            return
        try:
            msg = json.loads(text)
        except ValueError:
            return  # a stray print from a library: not part of the protocol
        if not isinstance(msg, dict):
            return
        kind = msg.get("type")
        if kind == "ready":
            job.ready = True
            return
        if job.cancelled or job is not self._job:
            return
        if kind == "progress":
            try:
                frac = min(1.0, max(0.0, float(msg.get("fraction", 0.0))))
            except (TypeError, ValueError):
                frac = 0.0
            self.progress.emit(frac, str(msg.get("message", "")))
        elif kind == "result":
            job.result = msg
        elif kind == "error":
            job.error = str(msg.get("message") or "analysis failed").replace("\n", " ")

    def _on_error(self, job: _Job, err: QProcess.ProcessError) -> None:
        if job.request is None:  # a spare that failed to start: start() will try a fresh worker
            self._finish(job)
            return
        if err == QProcess.ProcessError.FailedToStart and not job.done and not job.cancelled:
            self._finish(job)
            self.failed.emit(f"could not start the analysis worker ({' '.join(self._command)}): "
                             f"{job.process.errorString()}")

    def _on_finished(self, job: _Job, code: int, status: QProcess.ExitStatus) -> None:
        if job.done:
            return
        if job.request is None:  # a spare exited before it was used: forget it (start() spawns anew)
            self._on_stderr(job)
            self._finish(job)
            if not job.cancelled:
                self._note_dead_spare(job, code, status)
            return
        self._on_stdout(job)
        if job.stdout_buf.strip():
            self._handle_line(job, job.stdout_buf)
            job.stdout_buf = b""
        self._on_stderr(job)
        self._finish(job)
        if job.cancelled:
            return
        self._report(job, code, status)
        # the next worker is started once the result has been handed on (the viewer reads and draws
        # it in its finished slot): started before, its warm-up took the two cores from that drawing
        # and `clinview demo --screenshot` took ~5 s longer (benchmarks/RESULTS.md)
        if not self.is_running():
            self.prestart()

    def _note_dead_spare(self, job: _Job, code: int, status: QProcess.ExitStatus) -> None:
        """A spare that died unasked (out of memory, a broken install): one line on stderr, kept in
        :attr:`last_spare_error`.

        Why not a dialog: nothing the user asked for failed -- the next request
        gets a fresh worker, and if that one fails the same way, *it* reports
        the error. But the reason must not vanish with the process (the spare's
        stderr is read by nobody else), or a workstation whose worker dies at
        every start-up leaves IT nothing to go on.
        """
        why = "crashed" if status == QProcess.ExitStatus.CrashExit else f"exited with code {code}"
        last = job.stderr_tail[-1] if job.stderr_tail else "no message"
        self.last_spare_error = f"the spare analysis worker (pid {job.pid}) {why} before it was used: {last}"
        sys.stderr.write(f"clinview: {self.last_spare_error}\n")

    def _report(self, job: _Job, code: int, status: QProcess.ExitStatus) -> None:
        """Emit what the finished worker said: :attr:`finished`, or :attr:`failed` with one line."""
        if job.result is not None and job.error is None:
            assert job.request is not None
            self.last_result = job.result
            out_dir = job.result.get("out_dir") or job.request.get("out") or ""
            self.finished.emit(str(out_dir))
            return
        if job.error is not None:
            self.failed.emit(job.error)
            return
        last = job.stderr_tail[-1] if job.stderr_tail else ""
        if status == QProcess.ExitStatus.CrashExit:
            why = "the analysis worker crashed"
        else:
            why = f"the analysis worker exited with code {code} without a result"
        self.failed.emit(f"{why}: {last}" if last else why)
