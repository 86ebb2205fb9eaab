"""The worker process protocol, run as the viewer runs it (a real subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.dicomgen import write_ct_series

REPO = Path(__file__).resolve().parents[2]


def _run(request: dict | str, tmp_path: Path) -> tuple[int, list[dict], str]:
    from inference.api import worker_command

    raw = request if isinstance(request, str) else json.dumps(request)
    p = subprocess.run(worker_command(), input=raw, capture_output=True, text=True, cwd=REPO, timeout=300)
    lines = [json.loads(line) for line in p.stdout.splitlines() if line.strip()]  # every stdout line is JSON
    return p.returncode, lines, p.stderr


def test_worker_progress_then_result(tmp_path: Path) -> None:
    hu = np.full((10, 48, 48), -1000, np.int16)
    hu[:, 6:42, 6:42] = 30
    write_ct_series(tmp_path / "ct", hu, spacing=(3.0, 2.0, 2.0))
    out = tmp_path / "out"
    rc, lines, _ = _run({"command": "analyze", "study": str(tmp_path / "ct"), "out": str(out), "series_uid": None,
                         "prior": None, "genomics": [], "labs": [], "clinical": None, "device": "cpu",
                         "confirm_identity": False}, tmp_path)
    assert rc == 0
    kinds = [line["type"] for line in lines]
    # first "ready" (imports done, nodule network loaded: what the viewer's spare worker waits for)
    assert kinds[0] == "ready" and lines[0]["device"] == "cpu" and lines[0]["seconds"] > 0
    assert kinds[-1] == "result" and set(kinds[1:-1]) == {"progress"}
    fr = [line["fraction"] for line in lines[1:-1]]
    assert fr == sorted(fr) and 0 <= fr[0] and fr[-1] == 1.0
    assert all(isinstance(line["message"], str) for line in lines[1:-1])
    assert Path(lines[-1]["findings"]) == out / "findings.json"
    assert json.loads((out / "findings.json").read_text())["nodules"] == []


def test_worker_bad_study_gives_one_error_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "junk.dcm").write_bytes(b"\x00" * 50)
    rc, lines, stderr = _run({"command": "analyze", "study": str(tmp_path), "out": str(tmp_path / "o")}, tmp_path)
    assert rc == 2
    assert lines[-1]["type"] == "error" and "\n" not in lines[-1]["message"]
    assert "Traceback" not in json.dumps(lines)
    assert not (tmp_path / "o" / "findings.json").exists()


def test_worker_rejects_garbage_request(tmp_path: Path) -> None:
    rc, lines, _ = _run("{not json", tmp_path)
    assert rc == 2 and [line["type"] for line in lines] == ["ready", "error"]
    rc, lines, _ = _run({"command": "explode"}, tmp_path)
    assert rc == 2 and "unknown command" in lines[-1]["message"]


def test_a_worker_started_ahead_answers_when_the_request_comes(tmp_path: Path) -> None:
    """The viewer's spare: started, warmed up (``ready``), and only later given its request."""
    import time

    from inference.api import worker_command

    hu = np.full((10, 48, 48), -1000, np.int16)
    hu[:, 6:42, 6:42] = 30
    write_ct_series(tmp_path / "ct", hu, spacing=(3.0, 2.0, 2.0))
    p = subprocess.Popen(worker_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, cwd=REPO)
    assert p.stdin is not None and p.stdout is not None
    ready = json.loads(p.stdout.readline())
    assert ready["type"] == "ready" and ready["device"] in ("cpu", "cuda")
    time.sleep(0.5)  # idle, waiting: still alive
    assert p.poll() is None
    out, err = p.communicate(json.dumps({"command": "analyze", "study": str(tmp_path / "ct"), "out": str(tmp_path / "o"),
                                         "device": "cpu"}), timeout=300)
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert p.returncode == 0 and lines[-1]["type"] == "result", err[-2000:]
    assert (tmp_path / "o" / "findings.json").exists()


def test_killed_worker_leaves_no_findings(tmp_path: Path) -> None:
    """Cancel = the GUI kills the process: no half-written findings.json."""
    import time

    from inference.api import worker_command

    hu = np.full((10, 48, 48), -1000, np.int16)
    hu[:, 6:42, 6:42] = 30
    write_ct_series(tmp_path / "ct", hu, spacing=(3.0, 2.0, 2.0))
    out = tmp_path / "out"
    p = subprocess.Popen(worker_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, cwd=REPO)
    assert p.stdin is not None and p.stdout is not None
    p.stdin.write(json.dumps({"command": "analyze", "study": str(tmp_path / "ct"), "out": str(out), "device": "cpu"}))
    p.stdin.close()
    assert json.loads(p.stdout.readline())["type"] == "ready"
    first = p.stdout.readline()  # it has started working
    assert json.loads(first)["type"] == "progress"
    p.kill()
    p.wait(timeout=30)
    time.sleep(0.1)
    assert not (out / "findings.json").exists()
    p.stdout.close()
    p.stderr.close()  # type: ignore[union-attr]


def test_altered_weights_the_warm_up_meets_are_reported_by_the_request(tmp_path: Path, monkeypatch, capsys) -> None:
    """The warm-up never fails the worker; the request meets the same refusal and says it in one line."""
    import io
    import shutil

    import inference.models.catalogue as catalogue
    from inference.pipeline.imaging import clear_model_cache
    from inference.worker import handle, warm_up

    res = tmp_path / "resources"
    shutil.copytree(REPO / "resources" / "models" / "nodules", res / "models" / "nodules")
    w = res / "models" / "nodules" / "model.safetensors"
    data = bytearray(w.read_bytes())
    data[-1] ^= 0x01
    w.write_bytes(bytes(data))
    monkeypatch.setattr(catalogue, "resources_dir", lambda: res)  # the installed weights, one byte altered
    clear_model_cache()
    try:
        out = io.StringIO()
        warm_up(out, "cpu")
        ready = json.loads(out.getvalue())
        assert ready["type"] == "ready" and ready["device"] == ""  # nothing was loaded
        assert "model.safetensors" in capsys.readouterr().err
        hu = np.full((10, 48, 48), -1000, np.int16)
        hu[:, 6:42, 6:42] = 30
        write_ct_series(tmp_path / "ct", hu, spacing=(3.0, 2.0, 2.0))
        out = io.StringIO()
        rc = handle({"command": "analyze", "study": str(tmp_path / "ct"), "out": str(tmp_path / "o"), "device": "cpu"}, out)
        last = json.loads(out.getvalue().strip().splitlines()[-1])
        assert rc == 2 and last["type"] == "error"
        assert "model.safetensors" in last["message"] and "\n" not in last["message"], last
        assert not (tmp_path / "o" / "findings.json").exists()
    finally:
        clear_model_cache()
