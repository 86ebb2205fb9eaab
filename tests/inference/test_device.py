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


@pytest.mark.parametrize("forced, dtype", [("1", torch.bfloat16), ("0", torch.float32)])
def test_cpu_bf16_is_what_the_machine_or_the_override_says(monkeypatch, forced, dtype) -> None:
    """A model whose metadata asks for bf16 on the CPU gets it only where the CPU computes bf16 natively:
    elsewhere it ran twice as slow as fp32. ``CLINVIEW_CPU_BF16`` overrides the probe either way."""
    from inference.models.device import autocast

    conv = torch.nn.Conv3d(1, 2, 3)
    x = torch.rand(1, 1, 6, 6, 6)
    monkeypatch.setenv("CLINVIEW_CPU_BF16", forced)
    with torch.inference_mode(), autocast(torch.device("cpu"), "bf16"):
        assert conv(x).dtype == dtype
    with torch.inference_mode(), autocast(torch.device("cpu"), None):
        assert conv(x).dtype == torch.float32  # a model that does not ask for bf16 never gets it


def test_without_an_override_bf16_follows_the_cpu_s_own_bf16_instructions(monkeypatch) -> None:
    from inference.models.device import autocast, cpu_bf16

    monkeypatch.delenv("CLINVIEW_CPU_BF16", raising=False)
    native = bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    assert cpu_bf16() is native
    with torch.inference_mode(), autocast(torch.device("cpu"), "bf16"):
        assert torch.nn.Conv3d(1, 2, 3)(torch.rand(1, 1, 6, 6, 6)).dtype == (torch.bfloat16 if native else torch.float32)
