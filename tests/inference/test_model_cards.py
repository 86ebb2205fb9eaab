"""Model cards: the shipped models' own metadata and weights, and what a broken model folder shows."""

from __future__ import annotations

import shutil
from pathlib import Path

from inference.api import model_cards as shipped_cards
from inference.models.cards import model_cards
from inference.paths import resources_dir


def test_the_shipped_cards_name_versions_check_weights_and_say_where_the_detector_is_weak() -> None:
    cards = {c.name: c for c in shipped_cards()}
    assert {"nodules", "lungs", "clinview-risk"} <= set(cards)
    nod = cards["nodules"]
    assert nod.problem is None and nod.version == "2.5.0"
    assert nod.weights_check.startswith("verified")
    assert cards["lungs"].weights_check == "no learned weights"
    assert any("synthetic cohort only" in x for x in cards["clinview-risk"].limitations)
    # the reader is told, in the model's own words, that ground glass is often missed
    assert any("Ground-glass" in x and "30 of 37" in x and "nodules-dense-fine" in x for x in nod.limitations)
    # ... and where the Lung-RADS category it leads to is wrong, with what to check
    assert any(x.startswith("Lung-RADS category") and "194 of 208" in x and "callipers" in x for x in nod.limitations)
    tested = nod.sections["Tested on (never trained or tuned on)"]
    assert any(line.startswith("held out / sensitivity ≥ 5 mm: 0.92") for line in tested), tested
    # ... with how sure that number is, as a range a reader can read
    assert "held out / sensitivity ≥ 5 mm 95 % interval: 0.878-0.949" in tested, tested


def test_altered_weights_and_unreadable_metadata_are_shown_not_hidden(tmp_path: Path) -> None:
    root = tmp_path / "models"
    shutil.copytree(resources_dir() / "models" / "nodules", root / "nodules")
    w = root / "nodules" / "model.safetensors"
    data = bytearray(w.read_bytes())
    data[-1] ^= 0xFF
    w.write_bytes(bytes(data))
    (root / "broken").mkdir()
    (root / "broken" / "metadata.json").write_text("{not json", encoding="utf-8")
    cards = {c.name: c for c in model_cards(root)}
    assert cards["nodules"].weights_check.startswith("MISMATCH: sha256 of model.safetensors")
    assert cards["broken"].problem and "metadata.json" in cards["broken"].problem
