"""AnalysisService against a real subprocess that speaks the worker protocol.

The script below is not a stand-in for the product's analysis: it exercises the
client's protocol handling (progress, result, error, crash, cancel of a
process tree, a newer request cancelling an older one) with a real process.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
import time
from pathlib import Path

import pytest

from viewer.services.analysis import AnalysisService, normalise_request

PROTOCOL_WORKER = textwrap.dedent(
    r'''
    import json, os, subprocess, sys, time
    print(json.dumps({"type": "ready", "seconds": 0.0, "device": "cpu"}), flush=True)
    req = json.loads(sys.stdin.readline())
    out = req["out"]
    mode = os.path.basename(req["study"])
    os.makedirs(out, exist_ok=True)
    def say(**m):
        print(json.dumps(m), flush=True)
    print("a library printing to stdout", flush=True)
    say(type="progress", fraction=0.1, message="loading " + mode)
    if mode == "ok":
        say(type="progress", fraction=0.6, message="nodules")
        with open(os.path.join(out, "findings.json"), "w") as f:
            json.dump({"schema": "clinview.findings/1", "request": req}, f)
        say(type="result", out_dir=out, findings=os.path.join(out, "findings.json"))
    elif mode == "error":
        say(type="error", message="study: no CT series found (3 files skipped)")
        sys.exit(2)
    elif mode == "crash":
        sys.stderr.write("Traceback (most recent call last):\n  ...\nMemoryError: cannot allocate 4 GiB\n")
        sys.stderr.flush()
        os._exit(3)
    elif mode == "hang":
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        with open(os.path.join(out, "pids"), "w") as f:
            f.write(f"{os.getpid()} {child.pid}")
        say(type="progress", fraction=0.2, message="started child")
        time.sleep(600)
    '''
)


@pytest.fixture
def worker_script(tmp_path: Path) -> list[str]:
    p = tmp_path / "protocol_worker.py"
    p.write_text(PROTOCOL_WORKER)
    return [sys.executable, str(p)]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for our purposes (killed, waiting to be reaped by init)
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


def test_progress_and_result(qtbot, tmp_path: Path, worker_script: list[str]) -> None:
    svc = AnalysisService(command=worker_script)
    seen: list[tuple[float, str]] = []
    svc.progress.connect(lambda f, m: seen.append((f, m)))
    out = tmp_path / "out"
    with qtbot.waitSignal(svc.finished, timeout=20000) as blocker:
        svc.start({"study": str(tmp_path / "ok"), "out": str(out), "genomics": [tmp_path / "a.vcf"]})
    assert blocker.args == [str(out)]
    assert [m for _, m in seen] == ["loading ok", "nodules"]
    assert seen[0][0] == pytest.approx(0.1)
    # the worker received the full request with defaults filled in
    sent = json.loads((out / "findings.json").read_text())["request"]
    assert sent["command"] == "analyze" and sent["device"] == "auto"
    assert sent["genomics"] == [str(tmp_path / "a.vcf")] and sent["confirm_identity"] is False
    assert svc.last_result["findings"] == str(out / "findings.json")
    assert not svc.is_running()


def test_error_line_becomes_failed(qtbot, tmp_path: Path, worker_script: list[str]) -> None:
    svc = AnalysisService(command=worker_script)
    with qtbot.waitSignal(svc.failed, timeout=20000) as blocker:
        svc.start({"study": str(tmp_path / "error"), "out": str(tmp_path / "o")})
    assert blocker.args == ["study: no CT series found (3 files skipped)"]


def test_crash_reports_last_stderr_line(qtbot, tmp_path: Path, worker_script: list[str]) -> None:
    svc = AnalysisService(command=worker_script)
    finished: list[str] = []
    svc.finished.connect(finished.append)
    with qtbot.waitSignal(svc.failed, timeout=20000) as blocker:
        svc.start({"study": str(tmp_path / "crash"), "out": str(tmp_path / "o")})
    msg = blocker.args[0]
    assert "MemoryError: cannot allocate 4 GiB" in msg and "code 3" in msg
    assert "\n" not in msg and finished == []


def test_cancel_kills_the_process_tree(qtbot, tmp_path: Path, worker_script: list[str]) -> None:
    svc = AnalysisService(command=worker_script)
    out = tmp_path / "o"
    with qtbot.waitSignal(svc.progress, timeout=20000, check_params_cb=lambda f, m: m == "started child"):
        svc.start({"study": str(tmp_path / "hang"), "out": str(out)})
    parent, child = (int(x) for x in (out / "pids").read_text().split())
    assert _alive(parent) and _alive(child)
    failed: list[str] = []
    svc.failed.connect(failed.append)
    with qtbot.waitSignal(svc.cancelled, timeout=10000):
        svc.cancel()
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(parent)
    assert not _alive(child), "the worker's own child survived the cancel"
    qtbot.wait(100)
    assert failed == [] and not svc.is_running()


def test_newer_request_cancels_the_older(qtbot, tmp_path: Path, worker_script: list[str]) -> None:
    svc = AnalysisService(command=worker_script)
    old_out = tmp_path / "old"
    with qtbot.waitSignal(svc.progress, timeout=20000, check_params_cb=lambda f, m: m == "started child"):
        svc.start({"study": str(tmp_path / "hang"), "out": str(old_out)})
    old_pid = int((old_out / "pids").read_text().split()[0])
    events: list[str] = []
    svc.cancelled.connect(lambda: events.append("cancelled"))
    svc.finished.connect(lambda d: events.append("finished " + Path(d).name))
    with qtbot.waitSignal(svc.finished, timeout=20000):
        svc.start({"study": str(tmp_path / "ok"), "out": str(tmp_path / "new")})
    assert events == ["cancelled", "finished new"]
    assert not _alive(old_pid)


def test_the_spare_worker_takes_the_next_request_and_is_replaced(qtbot, tmp_path: Path, worker_script: list[str]) -> None:
    """The request goes to the worker started ahead of it; once that analysis is over, a new spare waits."""
    svc = AnalysisService(command=worker_script, spare=True)
    svc.prestart()
    qtbot.waitUntil(svc.spare_ready, timeout=20000)
    spare = svc.spare_pid()
    assert spare is not None and svc.pid() is None  # waiting, not analysing
    used: list[int | None] = []
    svc.progress.connect(lambda *_: used.append(svc.pid()))
    with qtbot.waitSignal(svc.finished, timeout=20000):
        svc.start({"study": str(tmp_path / "ok"), "out": str(tmp_path / "o")})
    assert set(used) == {spare}
    qtbot.waitUntil(lambda: svc.spare_pid() not in (None, spare), timeout=20000)
    nxt = svc.spare_pid()
    svc.shutdown()
    assert nxt is not None and not _alive(nxt) and svc.spare_pid() is None


def test_a_dead_spare_is_not_used(qtbot, tmp_path: Path, worker_script: list[str]) -> None:
    """A spare killed while idle (out of memory, a user's kill) costs the user nothing but the warm-up."""
    import signal

    svc = AnalysisService(command=worker_script, spare=True)
    svc.prestart()
    qtbot.waitUntil(svc.spare_ready, timeout=20000)
    dead = svc.spare_pid()
    assert dead is not None
    os.kill(dead, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while _alive(dead) and time.monotonic() < deadline:
        time.sleep(0.02)
    failed: list[str] = []
    svc.failed.connect(failed.append)
    with qtbot.waitSignal(svc.finished, timeout=20000) as blocker:
        svc.start({"study": str(tmp_path / "ok"), "out": str(tmp_path / "o")})  # no event processed since the kill
    assert blocker.args == [str(tmp_path / "o")] and failed == []
    svc.shutdown()


def test_a_spare_that_dies_during_warm_up_says_why(qtbot, tmp_path: Path, capfd) -> None:
    """A worker that dies before its request (a broken install, out of memory) leaves its reason on the
    viewer's stderr instead of vanishing with the process; nothing the user asked for failed."""
    p = tmp_path / "dies.py"
    p.write_text("import sys\nsys.stderr.write('ImportError: libtorch_cpu.so: cannot open shared object file\\n')\n"
                 "sys.exit(3)\n")
    svc = AnalysisService(command=[sys.executable, str(p)], spare=True)
    failed: list[str] = []
    svc.failed.connect(failed.append)
    svc.prestart()
    qtbot.waitUntil(lambda: svc.last_spare_error is not None, timeout=20000)
    assert "exited with code 3" in svc.last_spare_error and "libtorch_cpu.so" in svc.last_spare_error
    assert "libtorch_cpu.so" in capfd.readouterr().err
    assert failed == [] and svc.spare_pid() is None
    # a spare the service itself stops (File menu, quitting) is not reported as dead
    svc2 = AnalysisService(command=[sys.executable, "-c", "import time; time.sleep(60)"], spare=True)
    svc2.prestart()
    assert svc2.spare_pid() is not None
    svc2.shutdown()
    qtbot.wait(200)
    assert svc2.last_spare_error is None


def test_cancel_spares_the_spare(qtbot, tmp_path: Path, worker_script: list[str]) -> None:
    svc = AnalysisService(command=worker_script, spare=True)
    out = tmp_path / "o"
    svc.prestart()
    with qtbot.waitSignal(svc.progress, timeout=20000, check_params_cb=lambda f, m: m == "started child"):
        svc.start({"study": str(tmp_path / "hang"), "out": str(out)})
    worker = svc.pid()
    with qtbot.waitSignal(svc.cancelled, timeout=10000):
        svc.cancel()
    assert worker is not None and not _alive(worker)
    spare = svc.spare_pid()
    assert spare is not None and spare != worker and _alive(spare)
    # quitting during an analysis: that worker and the spare die, and no new spare is started
    with qtbot.waitSignal(svc.progress, timeout=20000, check_params_cb=lambda f, m: m == "started child"):
        svc.start({"study": str(tmp_path / "hang"), "out": str(tmp_path / "o2")})
    assert svc.pid() == spare
    svc.shutdown()
    assert not _alive(spare) and svc.spare_pid() is None and not svc.is_running()
    svc.prestart()
    assert svc.spare_pid() is None


def test_the_spare_can_be_turned_off_and_on(qtbot, tmp_path: Path, worker_script: list[str]) -> None:
    svc = AnalysisService(command=worker_script, spare=True)
    svc.prestart()
    first = svc.spare_pid()
    assert first is not None
    svc.set_spare(False)  # the idle one is killed and none is started after an analysis
    assert not _alive(first) and svc.spare_pid() is None
    with qtbot.waitSignal(svc.finished, timeout=20000):
        svc.start({"study": str(tmp_path / "ok"), "out": str(tmp_path / "o")})
    qtbot.wait(200)
    assert svc.spare_pid() is None
    svc.set_spare(True)
    assert svc.spare_pid() is not None
    svc.shutdown()


@pytest.mark.parametrize("spare", [False, True])
def test_missing_worker_program_fails_with_one_line(qtbot, tmp_path: Path, spare: bool) -> None:
    svc = AnalysisService(command=[str(tmp_path / "no-such-worker")], spare=spare)
    svc.prestart()  # a spare that cannot start is dropped quietly; the request meets the same error and says it
    with qtbot.waitSignal(svc.failed, timeout=10000) as blocker:
        svc.start({"study": str(tmp_path), "out": str(tmp_path / "o")})
    assert "could not start the analysis worker" in blocker.args[0]


def test_request_needs_study_and_out() -> None:
    with pytest.raises(ValueError, match="study"):
        normalise_request({"out": "/x"})
    assert normalise_request({"study": "/s", "out": "/o"})["labs"] == []
