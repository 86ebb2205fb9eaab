"""Model cards: the shipped models' own metadata and weights, and what a broken model folder shows."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from inference.api import model_cards as shipped_cards
from inference.models.cards import model_cards
from inference.paths import resources_dir


def test_the_shipped_cards_name_versions_check_weights_and_say_where_the_detector_is_weak() -> None:
    """The card says what the model's own metadata says -- version, limitations, held-out result and its
    interval -- so a re-measured model changes its card, not this test."""
    meta = json.loads((resources_dir() / "models" / "nodules" / "metadata.json").read_text(encoding="utf-8"))
    cards = {c.name: c for c in shipped_cards()}
    assert {"nodules", "lungs", "clinview-risk"} <= set(cards)
    nod = cards["nodules"]
    assert nod.problem is None and nod.version == meta["version"]
    assert nod.weights_check.startswith("verified")
    assert cards["lungs"].weights_check == "no learned weights"
    assert any("synthetic cohort only" in x for x in cards["clinview-risk"].limitations)
    assert nod.limitations == meta["limitations"]
    # the reader is told, in the model's own words, that ground glass is often missed, with the counts
    assert any("Ground-glass" in x and "nodules-dense-fine" in x and re.search(r"\d+ of \d+", x) for x in nod.limitations)
    # ... and where the Lung-RADS category it leads to is wrong, with what to check
    assert any(x.startswith("Lung-RADS category") and re.search(r"\d+ of \d+", x) and "callipers" in x
               for x in nod.limitations)
    tested = nod.sections["Tested on (never trained or tuned on)"]
    held = meta["test_metrics"]["held_out"]
    assert f"held out / sensitivity ≥ 5 mm: {held['sensitivity_ge5mm']}" in tested, tested
    # ... with how sure that number is, as a range a reader can read
    lo, hi = held["sensitivity_ge5mm_ci95"]
    assert f"held out / sensitivity ≥ 5 mm 95 % interval: {lo}-{hi}" in tested, tested


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
