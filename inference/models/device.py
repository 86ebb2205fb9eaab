"""Which torch device to run on, and a sentence saying why.

The viewer and the CLI accept ``auto``, ``cpu`` or ``cuda``. A user who asks
for ``cuda`` on a machine without one gets the CPU *and a note saying so*
instead of an exception: the analysis is still useful, only slower.
"""

from __future__ import annotations

import functools
import os
from typing import Any, Callable, Literal, TypeVar

__all__ = ["choose_device", "DeviceName", "autocast", "cpu_bf16", "run_with_oom_fallback"]

T = TypeVar("T")

DeviceName = Literal["auto", "cpu", "cuda"]


def choose_device(requested: str = "auto") -> tuple["torch.device", str]:  # noqa: F821
    """Resolve a user's device request.

    Parameters
    ----------
    requested
        ``"auto"`` (CUDA when present, else CPU), ``"cpu"`` or ``"cuda"``
        (``"cuda:1"`` etc. also accepted).

    Returns
    -------
    (torch.device, str)
        The device to use and a one-line note for findings/warnings (empty
        when the request was honoured as asked).

    Raises
    ------
    ValueError
        ``requested`` is not one of the accepted names.
    """
    import torch

    req = (requested or "auto").strip().lower()
    if req not in ("auto", "cpu") and not req.startswith("cuda"):
        raise ValueError(f"unknown device {requested!r}: use auto, cpu or cuda")
    has_cuda = bool(torch.cuda.is_available())
    if req == "cpu":
        return torch.device("cpu"), ""
    if req == "auto":
        if has_cuda:
            return torch.device("cuda"), f"auto: using CUDA ({torch.cuda.get_device_name(0)})"
        return torch.device("cpu"), "auto: no CUDA device found, using the CPU"
    if not has_cuda:
        return torch.device("cpu"), "cuda was requested but no CUDA device is available; running on the CPU"
    return torch.device(req), ""


@functools.lru_cache(maxsize=1)
def _cpu_has_native_bf16() -> bool:
    import torch

    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except (AttributeError, RuntimeError):  # a torch without these probes: assume not
        return False


def cpu_bf16() -> bool:
    """Whether a model that asks for bf16 on the CPU (metadata ``cpu_autocast``) gets it on this machine.

    Why not always: bf16 pays only where the CPU computes it natively
    (AVX512-BF16 or AMX, recent Xeons). Without them oneDNN converts every
    operand and the dense readers ran *twice as slow* as in fp32 (2-core
    AVX-512 Xeon without bf16, 2026-12-06, ``benchmarks/bench_dense_cpu.py``:
    the 1.25 mm reader on the demo patient's lung crop 8.6 s in bf16, 5.5 s
    in fp32; the 2 mm one on the real CT's 3.0 s and 1.4 s), while on the VM
    where bf16 was chosen a training step took 0.7 s in bf16 against 1.9 s
    in fp32 (benchmarks/RESULTS.md). fp32 is the exact computation and bf16
    its approximation: in fp32 the held-out and validation findings were the
    same (RESULTS).
    ``CLINVIEW_CPU_BF16=1`` or ``=0`` overrides the probe (evaluations that
    must compare the two on one machine; a CPU the probe misjudges).
    """
    forced = os.environ.get("CLINVIEW_CPU_BF16", "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    return _cpu_has_native_bf16()


def autocast(device: "torch.device", cpu_mode: str | None = None) -> Any:  # noqa: F821
    """Mixed precision for inference on ``device``.

    CUDA: bf16 where supported, else fp16 (convolutions dominate and both are
    accurate enough for a probability map or a logit). CPU: bf16 only when the
    model metadata asks for it (``cpu_mode == "bf16"``) and the CPU computes
    bf16 natively (:func:`cpu_bf16`), otherwise fp32.
    """
    import contextlib

    import torch

    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
    if cpu_mode == "bf16" and cpu_bf16():
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def run_with_oom_fallback(run: Callable[["torch.device", int], T], device: "torch.device", batch: int,  # noqa: F821
                          warnings: list[str], unit: str) -> tuple[T, "torch.device"]:  # noqa: F821
    """``run(device, batch)``; on CUDA out-of-memory halve ``batch``, then move to the CPU.

    Every fallback appends one line to ``warnings`` (never a silent change);
    ``unit`` names what a batch holds ("window", "candidate"). Returns the
    result and the device it ran on.
    """
    import torch

    while True:
        try:
            return run(device, batch), device
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            if batch > 1:
                batch //= 2
                warnings.append(f"CUDA out of memory: retrying with {batch} {unit}(s) per batch")
            else:
                device = torch.device("cpu")
                warnings.append(f"CUDA out of memory even with one {unit} per batch: running on the CPU")
