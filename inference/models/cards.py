"""Model cards: what each shipped model is, how it was measured, and where it is weak -- for the reader and for IT.

Why: a reader who is shown a model's findings must be able to see which
model produced them, what it was trained and tested on, and -- most of all --
what it misses (the nodule detector misses most sub-solid nodules of 5-6 mm, and on
thick slices a third of the ground-glass nodules, on synthetic patients; a reader who
does not know that trusts an empty list). A hospital IT engineer needs the version and whether the weights
on disk are the ones shipped. Everything here is read from each model's
``metadata.json`` (``test_metrics``, ``limitations``, ``intended_use`` where a
model records them) and the weights' SHA-256 is recomputed, so the card never
says more than the files do. No Qt: the viewer only lays the cards out.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from inference.models.catalogue import METADATA_FILE, models_root, weights_mismatch
from inference.types import ModelCard

__all__ = ["model_cards"]


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)) and all(isinstance(x, (int, float)) for x in v):
        return ", ".join(_fmt(x) for x in v)
    if isinstance(v, dict) and all(not isinstance(x, (dict, list)) for x in v.values()):
        return "; ".join(f"{k} {_fmt(x)}" for k, x in v.items())
    return str(v)


_WORDS = {"ge5mm": "≥ 5 mm", "ge6mm": "≥ 6 mm", "fp": "FP", "auc": "AUC", "ece": "ECE", "ct": "CT", "val": "validation",
          "mm": "(mm)", "ci95": "95 % interval"}


def _key(k: Any) -> str:
    """A metadata key as words (``val_sensitivity_ge5mm`` -> ``validation sensitivity ≥ 5 mm``)."""
    words = " ".join(_WORDS.get(w, w) for w in str(k).split("_"))
    return words.replace("lung rads", "Lung-RADS")


def _lines(d: Any, prefix: str = "") -> list[str]:
    """``key: value`` lines of a metadata block, one level of nesting flattened into the key; long
    number lists (an FROC curve) are left out -- the card is read, not plotted."""
    if not isinstance(d, dict):
        return [f"{prefix}{_fmt(d)}"] if d not in (None, "") else []
    out: list[str] = []
    for k, v in d.items():
        key = _key(k)
        if isinstance(v, list) and v and isinstance(v[0], dict):
            continue
        if isinstance(v, dict) and any(isinstance(x, (dict, list)) for x in v.values()):
            out += _lines(v, f"{prefix}{key} / ")
        elif str(k).endswith("ci95") and isinstance(v, (list, tuple)) and len(v) == 2:
            out.append(f"{prefix}{key}: {_fmt(v[0])}-{_fmt(v[1])}")
        else:
            out.append(f"{prefix}{key}: {_fmt(v)}")
    return out


def _weights_check(folder: Path, meta: dict[str, Any]) -> str:
    weights = meta.get("weights")
    if not weights:
        return "no learned weights"
    path = folder / str(weights)
    if not path.is_file():
        return f"MISMATCH: {weights} is missing"
    actual, mismatch = weights_mismatch(path, meta.get("sha256"))
    return f"MISMATCH: {mismatch}" if mismatch else f"verified, sha256 {actual}"


def model_cards(root: Path | None = None) -> list[ModelCard]:
    """A card for every model folder under ``root`` (default: the shipped ``resources/models``), by name.

    A folder whose metadata cannot be read still gets a card, with ``problem``
    saying what and where (the reader must see that a model is broken, not
    that it is absent). Only ``metadata.json`` and the weights are read: each
    model's own loader decides which other files its folder may hold.
    """
    base = models_root(root)
    cards: list[ModelCard] = []
    for d in sorted(p for p in base.iterdir() if p.is_dir()) if base.is_dir() else []:
        if not (d / METADATA_FILE).is_file():
            continue
        try:
            m = json.loads((d / METADATA_FILE).read_text(encoding="utf-8"))
            if not isinstance(m, dict):
                raise ValueError("not a JSON object")
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            cards.append(ModelCard(name=d.name, version="?", problem=f"{d / METADATA_FILE}: cannot be read ({exc})"))
            continue
        sections: dict[str, list[str]] = {}
        arch = m.get("architecture") or {}
        sections["Method"] = [f"{arch.get('name', '')}".strip() or "—"] + (
            [f"method: {arch['method']}"] if "method" in arch else [])
        for key, title in (("training_data", "Trained on"), ("validation_metrics", "Validation (chosen on)"),
                           ("test_metrics", "Tested on (never trained or tuned on)")):
            if m.get(key):
                sections[title] = _lines(m[key])
        cards.append(ModelCard(
            name=str(m.get("name", d.name)), version=str(m.get("version", "?")), task=str(m.get("task", "")),
            intended_use=str(m.get("intended_use", "")), weights_check=_weights_check(d, m),
            limitations=[str(x) for x in m.get("limitations", [])], sections=sections))
    return cards
