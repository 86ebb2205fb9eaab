"""Which torch device to run on, and a sentence saying why.

The viewer and the CLI accept ``auto``, ``cpu`` or ``cuda``. A user who asks
for ``cuda`` on a machine without one gets the CPU *and a note saying so*
instead of an exception: the analysis is still useful, only slower.
"""

from __future__ import annotations

from typing import Any, Callable, Literal, TypeVar

__all__ = ["choose_device", "DeviceName", "autocast", "run_with_oom_fallback"]

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


def autocast(device: "torch.device", cpu_mode: str | None = None) -> Any:  # noqa: F821
    """Mixed precision for inference on ``device``.

    CUDA: bf16 where supported, else fp16 (convolutions dominate and both are
    accurate enough for a probability map or a logit). CPU: bf16 only when the
    model metadata asks for it (``cpu_mode == "bf16"``), otherwise fp32.
    """
    import contextlib

    import torch

    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
    if cpu_mode == "bf16":
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
