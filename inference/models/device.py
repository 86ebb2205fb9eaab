"""Which torch device to run on, and a sentence saying why.

The viewer and the CLI accept ``auto``, ``cpu`` or ``cuda``. A user who asks
for ``cuda`` on a machine without one gets the CPU *and a note saying so*
instead of an exception: the analysis is still useful, only slower.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["choose_device", "DeviceName"]

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
