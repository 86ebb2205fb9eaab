"""Model catalogue: ``resources/models/<name>/metadata.json`` + ``model.safetensors``.

Why this shape (MONAI-bundle style): everything model-specific -- the network
constructor and its arguments, the input spacing, the intensity normalisation,
the labels -- lives in ``metadata.json`` next to the weights, so the pipeline
code hard-codes nothing about a particular model and a retrained model is a
drop-in replacement.

Why the checksum: weights are code-like (they decide what a clinician sees).
Only ``safetensors`` is accepted (no pickle, so loading cannot execute code),
the file's sha256 must equal the one recorded in ``metadata.json``, and any
other file in the model folder is refused, so a swapped or corrupted file is
caught *before* it produces findings.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from inference.errors import ModelIntegrityError
from inference.paths import resources_dir

__all__ = [
    "ModelInfo",
    "ARCHITECTURES",
    "build_network",
    "model_dir",
    "models_root",
    "read_model_info",
    "load_model",
    "save_model",
    "sha256_file",
    "weights_mismatch",
]

WEIGHTS_FILE = "model.safetensors"
METADATA_FILE = "metadata.json"
# Files a model folder may hold besides the weights; anything else is refused.
_ALLOWED_EXTRA = {METADATA_FILE, "README.md", "training_log.csv", "training_log.jsonl", "config.yaml"}


@dataclass(frozen=True)
class ModelInfo:
    """What a model is, as recorded in its ``metadata.json``.

    ``spacing`` is ``(z, y, x)`` mm; ``normalisation`` e.g.
    ``{"type": "clip_scale", "hu_min": -1000, "hu_max": 400}``; ``labels``
    maps output channel/value to a name; ``metrics`` holds validation numbers
    from the training run that produced the weights.
    """

    name: str
    version: str
    sha256: str | None
    architecture: dict[str, Any]
    spacing: tuple[float, float, float] | None = None
    normalisation: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def as_findings(self, device: str) -> dict[str, Any]:
        """The ``model`` object of findings.json (without timings)."""
        return {"name": self.name, "version": self.version, "sha256": self.sha256, "device": device}


def _basic_unet(**kw: Any) -> "torch.nn.Module":  # noqa: F821
    from monai.networks.nets import BasicUNet

    return BasicUNet(**kw)


def _unet(**kw: Any) -> "torch.nn.Module":  # noqa: F821
    from monai.networks.nets import UNet

    return UNet(**kw)


def _segresnet(**kw: Any) -> "torch.nn.Module":  # noqa: F821
    from monai.networks.nets import SegResNet

    return SegResNet(**kw)


def _candidate_net(**kw: Any) -> "torch.nn.Module":  # noqa: F821
    from inference.models.candidate_net import CandidateNet

    return CandidateNet(**kw)


def _candidate_ensemble(**kw: Any) -> "torch.nn.Module":  # noqa: F821
    from inference.models.candidate_net import CandidateEnsemble

    return CandidateEnsemble(**kw)


def _mlp(**kw: Any) -> "torch.nn.Module":  # noqa: F821
    """Small fully-connected network (for tabular models such as risk)."""
    import torch

    sizes = [int(kw["in_features"]), *[int(h) for h in kw.get("hidden", [])], int(kw.get("out_features", 1))]
    layers: list[torch.nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers[:-1])


#: Registry of constructors by ``metadata["architecture"]["name"]``. Other
#: modules may add entries (e.g. a risk model) before calling :func:`load_model`.
ARCHITECTURES: dict[str, Callable[..., Any]] = {
    "monai.BasicUNet": _basic_unet,
    "monai.UNet": _unet,
    "monai.SegResNet": _segresnet,
    "mlp": _mlp,
    "clinview.CandidateNet": _candidate_net,
    "clinview.CandidateEnsemble": _candidate_ensemble,
}


def build_network(architecture: dict[str, Any]) -> "torch.nn.Module":  # noqa: F821
    """Instantiate ``{"name": ..., "kwargs": {...}}`` from :data:`ARCHITECTURES`.

    Raises
    ------
    ModelIntegrityError
        The architecture name is not registered.
    """
    name = architecture.get("name")
    if name not in ARCHITECTURES:
        raise ModelIntegrityError(
            f"unknown architecture {name!r}",
            where="metadata.json",
            fix=f"use one of {sorted(ARCHITECTURES)}",
        )
    return ARCHITECTURES[name](**dict(architecture.get("kwargs", {})))


def models_root(root: Path | None = None) -> Path:
    """The folder holding one folder per model: ``root``, or the shipped ``resources/models``."""
    return root or resources_dir() / "models"


def model_dir(name: str, root: Path | None = None) -> Path:
    """Folder of model ``name`` (under ``resources/models`` unless ``root``)."""
    return models_root(root) / name


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def weights_mismatch(path: Path, expected: str | None) -> tuple[str, str | None]:
    """``(sha256 of path, None)`` when it is the ``expected`` one from the metadata, else ``(sha256, why not)``.

    The one integrity comparison: the catalogue's loader, the risk model's
    loader and the model cards all refuse or flag weights by it, in the same words.
    """
    actual = sha256_file(path)
    if expected and actual == expected:
        return actual, None
    return actual, (f"sha256 of {path.name} is {actual[:12]}…, metadata says {str(expected)[:12]}…: "
                    "the weights were altered or replaced")


def read_model_info(name: str, *, root: Path | None = None) -> ModelInfo:
    """Read and validate ``metadata.json`` of ``name`` (weights not loaded).

    Raises
    ------
    ModelIntegrityError
        Unknown model, missing/invalid metadata, or an unexpected file in the
        model folder.
    """
    d = model_dir(name, root)
    meta_path = d / METADATA_FILE
    if not meta_path.is_file():
        known = sorted(p.name for p in d.parent.iterdir() if (p / METADATA_FILE).is_file()) if d.parent.is_dir() else []
        raise ModelIntegrityError(
            f"unknown model {name!r}: no {METADATA_FILE}",
            where=str(d),
            fix=f"known models: {', '.join(known) or 'none'}; reinstall clinview to restore resources/models",
        )
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelIntegrityError(
            f"metadata is not valid JSON ({exc})", where=str(meta_path), fix="reinstall clinview to restore the model"
        ) from exc
    for key in ("name", "version", "architecture"):
        if key not in meta:
            raise ModelIntegrityError(f"metadata lacks {key!r}", where=str(meta_path), fix="reinstall clinview")
    weights = meta.get("weights")
    for p in sorted(d.iterdir()):
        if p.name in _ALLOWED_EXTRA or (weights and p.name == weights):
            continue
        raise ModelIntegrityError(
            "unknown file in the model folder (only safetensors weights listed in metadata.json are accepted)",
            where=str(p),
            fix="remove it, or reinstall clinview to restore the shipped model",
        )
    sp = meta.get("spacing_zyx_mm")
    return ModelInfo(
        name=str(meta["name"]),
        version=str(meta["version"]),
        sha256=meta.get("sha256"),
        architecture=dict(meta["architecture"]),
        spacing=tuple(float(s) for s in sp) if sp else None,  # type: ignore[arg-type]
        normalisation=dict(meta.get("normalisation", {})),
        labels={str(k): str(v) for k, v in meta.get("labels", {}).items()},
        metrics=dict(meta.get("validation_metrics", {})),
        metadata=meta,
        path=d,
    )


def load_model(name: str, *, device: Any = "cpu", root: Path | None = None) -> tuple[Any, ModelInfo]:
    """Load a catalogued network, verifying its checksum first.

    Parameters
    ----------
    name
        Folder name under ``resources/models`` (e.g. ``"nodules"``).
    device
        ``torch.device`` or string the module is moved to.
    root
        Alternative catalogue root (tests, retraining).

    Returns
    -------
    (torch.nn.Module, ModelInfo)
        The network in ``eval()`` mode and its metadata.

    Raises
    ------
    ModelIntegrityError
        Unknown model, weights missing, not safetensors, sha256 mismatch, or
        tensors that do not fit the declared architecture. The message names
        the file and says to reinstall/retrain.
    """
    info = read_model_info(name, root=root)
    weights = info.metadata.get("weights")
    if not weights:
        raise ModelIntegrityError(
            f"model {name!r} has no weights (it is a classical method described by its metadata)",
            where=str(info.path / METADATA_FILE),  # type: ignore[operator]
            fix="use read_model_info() for it",
        )
    wpath = info.path / weights  # type: ignore[operator]
    if wpath.suffix != ".safetensors":
        raise ModelIntegrityError(
            "only .safetensors weights are accepted", where=str(wpath), fix="convert the weights to safetensors"
        )
    if not wpath.is_file():
        raise ModelIntegrityError("weights file is missing", where=str(wpath), fix="reinstall clinview")
    _, mismatch = weights_mismatch(wpath, info.sha256)
    if mismatch:
        raise ModelIntegrityError(mismatch, where=str(wpath),
                                  fix="reinstall clinview or retrain (see the model's metadata.json: training.command)")
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(wpath), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelIntegrityError(f"cannot read weights ({exc})", where=str(wpath), fix="reinstall clinview") from exc
    net = build_network(info.architecture)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise ModelIntegrityError(
            f"weights do not fit architecture {info.architecture.get('name')} ({first})",
            where=str(wpath),
            fix="metadata.json and model.safetensors come from different versions; reinstall",
        ) from exc
    net.eval()
    return net.to(device), info


def save_model(
    net: Any,
    metadata: dict[str, Any],
    out_dir: Path,
) -> ModelInfo:
    """Write ``model.safetensors`` and ``metadata.json`` (with its sha256).

    Used by training scripts; ``metadata`` must hold at least ``name``,
    ``version`` and ``architecture``.
    """
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    wpath = out_dir / WEIGHTS_FILE
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(wpath))
    meta = dict(metadata)
    meta["weights"] = WEIGHTS_FILE
    meta["sha256"] = sha256_file(wpath)
    (out_dir / METADATA_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return read_model_info(out_dir.name, root=out_dir.parent)
