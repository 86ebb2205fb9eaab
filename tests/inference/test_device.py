"""The CUDA out-of-memory fallback shared by the dense network and the classifier.

No GPU runs here, so the out-of-memory error is raised by the work function
itself -- the fallback logic around it is the real one."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from inference.models.device import run_with_oom_fallback  # noqa: E402


def test_out_of_memory_halves_the_batch_then_moves_to_the_cpu_and_says_so() -> None:
    seen: list[tuple[str, int]] = []

    def run(dev: torch.device, batch: int) -> str:
        seen.append((dev.type, batch))
        if dev.type == "cuda":
            raise torch.cuda.OutOfMemoryError("simulated")
        return "done"

    warnings: list[str] = []
    out, dev = run_with_oom_fallback(run, torch.device("cuda"), 4, warnings, "candidate")
    assert out == "done" and dev.type == "cpu"
    assert seen == [("cuda", 4), ("cuda", 2), ("cuda", 1), ("cpu", 1)]
    assert len(warnings) == 3 and all("CUDA out of memory" in w for w in warnings)
    assert "running on the CPU" in warnings[-1] and "candidate" in warnings[0]


def test_no_fallback_and_no_warning_when_the_batch_fits() -> None:
    warnings: list[str] = []
    out, dev = run_with_oom_fallback(lambda d, b: b * 10, torch.device("cpu"), 8, warnings, "window")
    assert (out, dev.type, warnings) == (80, "cpu", [])
