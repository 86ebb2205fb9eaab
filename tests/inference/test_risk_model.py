"""The shipped multimodal risk model: integrity, masked inputs, interval, explanations,
sanity on held-out synthetic patients, and the metadata's metrics reproduced."""

from __future__ import annotations

import copy
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from inference.errors import ModelIntegrityError
from inference.models.risk import crop_patch, load_risk_model, model_folder, predict_risk
from inference.models.risk_eval import SAMPLE_N, auc, brier, ece, score_cohort
from inference.synth.cohort import make_cohort
from inference.types import ClinicalFacts, Volume

SHIPPED = model_folder()


@pytest.fixture(scope="module")
def meta() -> dict:
    return json.loads((SHIPPED / "metadata.json").read_text())


@pytest.fixture(scope="module")
def test_patients() -> list:
    return make_cohort(3, SAMPLE_N)  # first patients of the held-out test cohort (seed 3)


def _copy(tmp_path: Path) -> Path:
    d = tmp_path / "risk"
    shutil.copytree(SHIPPED, d)
    return d


def test_shipped_weights_load_and_metadata_complete(meta: dict) -> None:
    loaded = load_risk_model()
    assert loaded.sha256 == meta["sha256"]
    for key in ("architecture", "version", "sha256", "training_data", "validation_metrics", "calibration"):
        assert meta.get(key), key
    assert "SYNTHETIC" in meta["training_data"]["description"]
    assert (SHIPPED / meta["weights"]).stat().st_size < 2 * 1024 * 1024


def test_altered_weights_refused(tmp_path: Path) -> None:
    d = _copy(tmp_path)
    w = d / "model.safetensors"
    data = bytearray(w.read_bytes())
    data[-10] ^= 0xFF
    w.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match="sha256"):
        load_risk_model(d)


def test_unknown_file_and_pickle_weights_refused(tmp_path: Path) -> None:
    d = _copy(tmp_path)
    (d / "model.pt").write_bytes(b"not allowed")
    with pytest.raises(ModelIntegrityError, match="unknown file"):
        load_risk_model(d)
    (d / "model.pt").unlink()
    meta = json.loads((d / "metadata.json").read_text())
    meta["weights"] = "model.pt"
    (d / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ModelIntegrityError, match="safetensors"):
        load_risk_model(d)


def test_missing_inputs_are_masked_and_named(test_patients: list) -> None:
    pt = next(p for p in test_patients
              if p.malignant and p.genomics is not None and p.labs and p.patch_params is not None)
    full = predict_risk(pt.findings, pt.facts, volume=None, genomics=pt.genomics, labs=pt.labs, patch=pt.patch)
    f = copy.deepcopy(pt.findings)
    f["patient"] = {}
    bare = predict_risk(f, None, volume=None, genomics=None, labs=None)
    for name in ("age", "sex", "pack-years", "family history of lung cancer", "plasma driver mutations",
                 "CEA", "CYFRA 21-1", "nodule image (CNN)"):
        assert name in bare["missing"], name
        assert name not in {c["feature"] for c in bare["contributions"]}
    assert "plasma driver mutations" not in full["missing"] and "CEA" not in full["missing"]
    assert any("no CT patch" in n for n in bare["notes"])
    # an unusable genomics file ({}), an empty lab list: still masked, not "tested negative"
    empty = predict_risk(f, None, volume=None, genomics={}, labs=[])
    assert "plasma driver mutations" in empty["missing"] and "CEA" in empty["missing"]
    assert empty["probability"] == bare["probability"]
    negative = predict_risk(f, None, volume=None, genomics={"variants": []}, labs=[])
    assert "plasma driver mutations" not in negative["missing"]
    # masked inputs change the answer (they are not silently replaced by a value that means the same)
    assert full["probability"] != bare["probability"]


@pytest.mark.parametrize("k", range(6))
def test_probability_and_interval(test_patients: list, k: int) -> None:
    pt = test_patients[k]
    r = predict_risk(pt.findings, pt.facts, volume=None, genomics=pt.genomics, labs=pt.labs, patch=pt.patch)
    lo, hi = r["interval"]
    assert 0.0 <= lo <= r["probability"] <= hi <= 1.0
    assert r["model"]["name"] == "clinview-risk" and len(r["model"]["sha256"]) == 64
    assert "SYNTHETIC" in r["source"]
    # Integrated Gradients completeness: the contributions explain logit(p) - baseline
    assert r["probability"] == pytest.approx(1 / (1 + math.exp(-r["logit"])), abs=1e-4)
    total = sum(c["value"] for c in r["contributions"])
    assert total == pytest.approx(r["logit"] - r["baseline_logit"], abs=0.1)
    for c in r["contributions"]:
        assert c["direction"] == ("raised" if c["value"] > 0 else "lowered")


def test_patch_cropped_from_volume_matches_given_patch(test_patients: list) -> None:
    pt = next(p for p in test_patients if p.patch_params is not None)
    patch = pt.patch.astype(np.float32)
    arr = np.full((48, 64, 64), -1000.0, np.float32)
    arr[5:37, 20:52, 10:42] = patch
    vol = Volume(array=arr, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0), direction=np.eye(3))
    centre = (5 + 15.5, 20 + 15.5, 10 + 15.5)
    np.testing.assert_allclose(crop_patch(vol, centre), patch, atol=1e-3)
    f = copy.deepcopy(pt.findings)
    f["nodules"][0]["center_voxel_zyx"] = list(centre)
    a = predict_risk(f, pt.facts, volume=vol, genomics=pt.genomics, labs=pt.labs, explain=False)
    b = predict_risk(pt.findings, pt.facts, volume=None, genomics=pt.genomics, labs=pt.labs, patch=pt.patch,
                     explain=False)
    assert a["probability"] == pytest.approx(b["probability"], abs=1e-4)
    assert "nodule image (CNN)" not in a["missing"]


def test_no_assessable_nodule() -> None:
    f = {"patient": {"age_years": 60}, "nodules": [
        {"id": 1, "type": "calcified", "long_axis_mm": 8}, {"id": 2, "type": "solid", "long_axis_mm": 9,
                                                             "review": "rejected"}]}
    r = predict_risk(f, ClinicalFacts(), volume=None, genomics=None, labs=None)
    assert r["probability"] is None and "no non-calcified" in r["reason"]


def test_bigger_spiculated_nodules_score_higher_on_average(test_patients: list) -> None:
    base = [p for p in test_patients[:150]]
    worse = []
    for p in base:
        f = copy.deepcopy(p.findings)
        n = f["nodules"][0]
        n["long_axis_mm"] = n["long_axis_mm"] * 2
        n["mean_diameter_mm"] = n["mean_diameter_mm"] * 2
        n["spiculated"] = True
        worse.append(type(p)(**{**p.__dict__, "findings": f}))
    assert score_cohort(worse).mean() > score_cohort(base).mean() + 0.05


def test_shipped_metrics_reproduce_on_held_out_sample(meta: dict, test_patients: list) -> None:
    y = np.array([p.malignant for p in test_patients], float)
    p = score_cohort(test_patients)
    rec = meta["reproducibility_sample"]
    assert auc(y, p) == pytest.approx(rec["auc"], abs=2e-3)
    assert brier(y, p) == pytest.approx(rec["brier"], abs=2e-3)
    assert ece(y, p) == pytest.approx(rec["ece"], abs=5e-3)
    # and the model is useful on held-out patients, not just reproducible
    assert auc(y, p) > 0.85


def test_own_integrated_gradients_agree_with_captum(test_patients: list) -> None:
    import torch

    from inference.models.risk import _integrated_gradients

    pt = next(p for p in test_patients if p.malignant and p.patch_params is not None)
    r = predict_risk(pt.findings, pt.facts, volume=None, genomics=pt.genomics, labs=pt.labs, patch=pt.patch)
    # rebuild the model inputs as predict_risk does, and compare our fallback with captum's total
    m = load_risk_model().model
    from inference.models.risk import EMBED_DIM, extract_features, patch_to_tensor

    v, ms, *_ = extract_features(pt.findings, pt.facts, pt.genomics, pt.labs)
    with torch.no_grad():
        emb = m.encoder(patch_to_tensor(pt.patch[None]))[0].numpy()[0]
    raw = torch.tensor(np.concatenate([v, emb]))[None]
    miss = torch.tensor(np.concatenate([ms, np.zeros(EMBED_DIM, np.float32)]))[None]
    attr, delta = _integrated_gradients(m, m.standardise(raw, miss), miss)
    assert float(attr.sum()) == pytest.approx(sum(c["value"] for c in r["contributions"]), abs=0.05)
    assert abs(float(delta)) < 0.1


def test_the_model_is_about_the_nodule_fleischner_manages() -> None:
    """A long, thin ground-glass finding must not take the patient-level model away from the growing solid
    nodule the guidelines manage (the demo's case: the largest long axis used to win)."""
    from inference.clinical.scoring import apply_guidelines

    f = {"patient": {"age_years": 66, "sex": "M"}, "lungs": {"emphysema_laa950_percent": 2.0}, "nodules": [
        {"id": 1, "type": "ground-glass", "long_axis_mm": 16.0, "short_axis_mm": 9.0, "mean_diameter_mm": 12.5,
         "solid_component_mm": 0.0, "location": {"side": "left", "upper_lobe": True}, "spiculated": False},
        {"id": 2, "type": "solid", "long_axis_mm": 12.0, "short_axis_mm": 11.0, "mean_diameter_mm": 11.5,
         "location": {"side": "right", "upper_lobe": True}, "spiculated": False},
        {"id": 3, "type": "solid", "long_axis_mm": 19.0, "short_axis_mm": 7.0, "mean_diameter_mm": 13.0,
         "location": {"side": "right", "upper_lobe": False}, "spiculated": False, "review": "rejected"},
    ]}
    facts = ClinicalFacts(smoking_status="former", pack_years=40)
    apply_guidelines(f, facts, prior_available=False)
    fleischner = f["exam"]["fleischner"]["reason"]
    r = predict_risk(f, facts, volume=None, genomics=None, labs=None)
    assert r["nodule_id"] == 2 and "dominant nodule 2 " in fleischner
    # without the guideline scores (the training cohort's findings) the largest long axis is the index nodule
    for n in f["nodules"]:
        n.pop("brock_probability", None)
    assert predict_risk(f, facts, volume=None, genomics=None, labs=None)["nodule_id"] == 1
