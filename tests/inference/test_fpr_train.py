"""How the nodule classifier's operating point is chosen and how held-out patients are scored."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from inference.models.fpr_train import _operating_point, evaluate_cached, froc
from inference.pipeline.detect import FEATURES, PATCH


def _patient(match: list[int], truth: list[tuple[int, float, str]]) -> dict:
    return {"label": (np.asarray(match) > 0).astype(np.float32), "match": np.asarray(match),
            "truth": [{"id": i, "diameter_mm": d, "subtype": k} for i, d, k in truth]}


def test_froc_counts_a_nodule_once_and_ignores_nodules_under_5_mm() -> None:
    # nodule 1 (8 mm) has two candidates, nodule 2 (3 mm) one, plus two look-alikes
    pat = _patient([1, 1, 2, 0, 0], [(1, 8.0, "solid"), (2, 3.0, "solid")])
    probs = [np.array([0.9, 0.8, 0.9, 0.6, 0.1])]
    rows = froc([pat], probs, np.array([0.5, 0.95]))
    assert rows[0] == {"threshold": 0.5, "sensitivity": 1.0, "fp_per_scan": 1.0}
    assert rows[1]["sensitivity"] == 0.0 and rows[1]["fp_per_scan"] == 0.0


def test_operating_point_spends_the_false_positive_budget() -> None:
    rows = [
        {"threshold": 0.01, "sensitivity": 0.95, "fp_per_scan": 2.0},
        {"threshold": 0.05, "sensitivity": 0.90, "fp_per_scan": 0.75},
        {"threshold": 0.10, "sensitivity": 0.90, "fp_per_scan": 0.40},
        {"threshold": 0.50, "sensitivity": 0.80, "fp_per_scan": 0.0},
    ]
    # validation ties at 0.90: the permissive end is kept (unseen nodules score lower)
    assert _operating_point(rows, 0.8)["threshold"] == 0.05
    assert _operating_point(rows, 0.5)["threshold"] == 0.10
    # no threshold within budget: the strictest one
    assert _operating_point(rows[:1], 0.5)["threshold"] == 0.01


def test_cached_held_out_evaluation_scores_candidates_as_the_product_does(tmp_path: Path) -> None:
    """``evaluate_cached`` must agree with :func:`inference.pipeline.detect.classify` (the product path)."""
    import torch

    from inference.models.catalogue import load_model, model_dir
    from inference.pipeline.detect import classify

    rng = np.random.default_rng(3)
    n = 12
    patches = rng.integers(0, 255, (n, 3, PATCH, PATCH, PATCH), dtype=np.uint8)
    feats = rng.uniform(0, 1, (n, len(FEATURES))).astype(np.float32)
    match = np.array([1, 1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0], np.int16)
    truth = [{"id": 1, "subtype": "solid", "diameter_mm": 9.0}, {"id": 2, "subtype": "ground-glass", "diameter_mm": 6.0},
             {"id": 3, "subtype": "solid", "diameter_mm": 4.0}, {"id": 4, "subtype": "cavitary", "diameter_mm": 12.0}]
    np.savez_compressed(tmp_path / "fpr_77.npz", patches=patches, features=feats, label=(match > 0).astype(np.uint8),
                        match=match, truth=json.dumps(truth), spacing=np.ones(3))
    r = evaluate_cached(model_dir("nodules"), tmp_path, [77])

    net, info = load_model("nodules")
    cal = info.metadata["calibration"]
    p = classify(net, patches.astype(np.float32) / 255.0, feats, device=torch.device("cpu"),
                 temperature=cal["temperature"], bias=cal["bias"])
    keep = p >= info.metadata["postprocess"]["min_probability"]
    found = [bool((keep & (match == i)).any()) for i in (1, 2, 4)]  # nodule 3 is < 5 mm
    assert r["nodules_ge5mm"] == 3
    assert r["sensitivity_ge5mm"] == round(sum(found) / 3, 4)
    assert r["fp_per_scan"] == float(int((keep & (match == 0)).sum()))
    # nodule 4 has no candidate: the candidate stage's ceiling is 2 of 3
    assert r["candidate_stage_sensitivity_ge5mm"] == round(2 / 3, 4)
    assert r["by_kind"]["cavitary"] == "0/1"


def test_hit_rule_counts_a_centre_in_the_mask_or_within_the_radius_and_matches_the_nearest() -> None:
    from inference.models.fpr_data import hit_distance, match_candidates

    sp = (2.0, 0.5, 0.5)
    truth = np.zeros((20, 80, 80), np.uint8)
    truth[9:12, 10:14, 10:70] = 1  # a long flat nodule (30 mm along x): its ends lie far from its centre
    truth[10, 60, 40] = 2  # a 1-voxel nodule: the 3 mm floor applies
    m1, c1 = truth == 1, np.array([10.0, 11.5, 39.5])
    assert hit_distance(np.array([10.0, 12.0, 68.0]), m1, c1, 6.0, sp) == pytest.approx(14.25, abs=0.01)  # in the mask, 14 mm off
    assert hit_distance(np.array([10.0, 20.0, 39.5]), m1, c1, 6.0, sp) is None  # 4.25 mm off, outside, radius 3
    assert hit_distance(np.array([10.0, 20.0, 39.5]), m1, c1, 10.0, sp) is not None  # within a 5 mm radius
    m2, c2 = truth == 2, np.array([10.0, 60.0, 40.0])
    assert hit_distance(np.array([11.0, 60.0, 40.0]), m2, c2, 0.5, sp) == pytest.approx(2.0)
    assert hit_distance(np.array([12.0, 60.0, 40.0]), m2, c2, 0.5, sp) is None
    match, found = match_candidates(np.array([[10.0, 12.0, 20.0], [11.0, 60.0, 40.0], [0.0, 0.0, 0.0]]), truth, sp, {1: 6.0, 2: 0.5})
    assert match.tolist() == [1, 2, 0] and found == {1: True, 2: True}


def test_ensemble_logit_is_the_mean_of_its_members_and_survives_the_catalogue(tmp_path: Path) -> None:
    import torch

    from inference.models.catalogue import build_network, load_model, save_model

    arch = {"name": "clinview.CandidateEnsemble",
            "kwargs": {"members": 3, "in_channels": 3, "n_features": len(FEATURES), "widths": [4, 4, 8, 8]}}
    torch.manual_seed(0)
    ens = build_network(arch).eval()
    x, f = torch.rand(5, 3, PATCH, PATCH, PATCH), torch.rand(5, len(FEATURES))
    with torch.inference_mode():
        members = torch.stack([m(x, f) for m in ens.members])
        want = members.mean(0)
        assert torch.allclose(ens(x, f), want)
        # the members were initialised apart: an ensemble, not one network three times
        assert (members.std(0) > 0).all()
    save_model(ens, {"name": "ens", "version": "0.0.1", "architecture": arch}, tmp_path / "ens")
    back, info = load_model("ens", root=tmp_path)
    with torch.inference_mode():
        assert torch.equal(back(x, f), ens(x, f))
    assert info.architecture["name"] == "clinview.CandidateEnsemble"


def test_kind_balance_raises_the_share_of_rare_kinds_among_sampled_nodules() -> None:
    from inference.models.fpr_train import _candidate_kinds, _kind_weights

    pats = [{"match": np.array([1, 1, 1, 1, 2, 0, 3]),
             "truth": [{"id": 1, "subtype": "solid"}, {"id": 2, "subtype": "ground-glass"}, {"id": 3, "subtype": "solid"}]}]
    kinds = _candidate_kinds(pats)
    assert kinds.tolist() == ["solid"] * 4 + ["ground-glass", "", "solid"]
    pos = kinds[kinds != ""]
    assert _kind_weights(pos, 0.0) is None  # the v2.0.0 recipe: every nodule candidate alike
    share = lambda w: float(w[pos == "ground-glass"].sum())  # noqa: E731
    half, full = _kind_weights(pos, 0.5), _kind_weights(pos, 1.0)
    assert np.isclose(half.sum(), 1.0) and np.isclose(full.sum(), 1.0)
    # uniform sampling would give ground glass 1/6; balancing by kind gives it 1/2 (alpha 1), between for 0.5
    assert share(full) == pytest.approx(0.5)
    assert 1 / 6 < share(half) < 0.5


def _tiny_cache(folder: Path, seeds: range) -> None:
    rng = np.random.default_rng(11)
    for s in seeds:
        n = 24
        match = np.zeros(n, np.int16)
        match[:4] = [1, 1, 2, 3]
        patches = rng.integers(0, 120, (n, 3, PATCH, PATCH, PATCH), dtype=np.uint8)
        patches[match > 0] += 100  # nodules brighter: something to learn
        truth = [{"id": i, "subtype": "solid", "diameter_mm": 8.0} for i in (1, 2, 3)]
        np.savez_compressed(folder / f"fpr_{s}.npz", patches=patches,
                            features=rng.uniform(0, 1, (n, len(FEATURES))).astype(np.float32),
                            label=(match > 0).astype(np.uint8), match=match, truth=json.dumps(truth), spacing=np.ones(3))


_TRAIN_SCRIPT = """
import sys, json
from pathlib import Path
from inference.models.fpr_train import train
cache, out, parallel = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
cfg = {"name": "tiny", "version": "0.0.1", "seed": 7, "device": "cpu",
       "classifier": {"architecture": {"name": "clinview.CandidateEnsemble",
                                       "kwargs": {"members": 2, "in_channels": 3, "n_features": %d, "widths": [4, 4, 8, 8]}},
                      "data": {"cache_dir": cache, "train_seeds": [[1, 4]], "val_seeds": [[10, 12]]},
                      "target_fp_per_scan": 1.0,
                      "train": {"epochs": 2, "samples_per_epoch": 32, "batch": 16, "lr": 0.002, "threads": 1,
                                "parallel_members": parallel}}}
train(cfg, out, log=lambda s: None)
"""


@pytest.mark.slow
def test_ensemble_members_trained_in_forked_workers_equal_those_trained_one_after_the_other(tmp_path: Path) -> None:
    """The training docstring promises the result does not depend on ``parallel_members``: the forked
    path (two members at once, copy-on-write data) must give the same weights, bit for bit. Each run
    is its own interpreter, as from the command line (forking after torch ran in this process can hang)."""
    import subprocess
    import sys

    from safetensors.numpy import load_file

    _tiny_cache(tmp_path, range(1, 4))
    _tiny_cache(tmp_path, range(10, 12))
    weights = []
    for parallel in (1, 2):
        out = tmp_path / f"out{parallel}"
        r = subprocess.run([sys.executable, "-c", _TRAIN_SCRIPT % len(FEATURES), str(tmp_path), str(out), str(parallel)],
                           capture_output=True, text=True, timeout=600, cwd=Path(__file__).resolve().parents[2])
        assert r.returncode == 0, r.stderr[-2000:]
        (st,) = list(out.glob("*.safetensors"))
        weights.append(load_file(str(st)))
    a, b = weights
    assert a.keys() == b.keys() and any(k.startswith("members.1.") for k in a)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    # the two members differ (seed + k), so equality is not trivial
    k0 = next(k for k in a if k.startswith("members.0.") and a[k].ndim > 1)
    assert not np.array_equal(a[k0], a[k0.replace("members.0.", "members.1.")])


def test_compare_pairs_two_models_on_the_same_nodules(tmp_path: Path) -> None:
    """A stricter copy of the shipped model finds a subset: the nodules it loses are listed, none it gains."""
    import shutil

    from inference.models.catalogue import model_dir
    from inference.models.fpr_train import compare_cached

    rng = np.random.default_rng(5)
    n = 16
    patches = rng.integers(0, 255, (n, 3, PATCH, PATCH, PATCH), dtype=np.uint8)
    feats = rng.uniform(0, 1, (n, len(FEATURES))).astype(np.float32)
    match = np.array([1, 2, 3, 4, 5, 6] + [0] * 10, np.int16)
    truth = [{"id": i, "subtype": "solid", "diameter_mm": 8.0} for i in range(1, 7)]
    cache = tmp_path / "cache"
    cache.mkdir()
    np.savez_compressed(cache / "fpr_5.npz", patches=patches, features=feats, label=(match > 0).astype(np.uint8),
                        match=match, truth=json.dumps(truth), spacing=np.ones(3))
    strict = tmp_path / "models" / "nodules"
    shutil.copytree(model_dir("nodules"), strict)
    meta = json.loads((strict / "metadata.json").read_text(encoding="utf-8"))
    shipped = evaluate_cached(model_dir("nodules"), cache, [5])
    meta["postprocess"]["min_probability"] = 0.9999999  # the same weights, an operating point almost nothing passes
    (strict / "metadata.json").write_text(json.dumps(meta), encoding="utf-8")

    same = compare_cached(model_dir("nodules"), model_dir("nodules"), cache, [5])
    assert same["only_a"] == same["only_b"] == 0 and same["p_mcnemar_exact"] == 1.0

    r = compare_cached(model_dir("nodules"), strict, cache, [5])
    assert r["n"] == 6
    assert r["found_a"] == round(shipped["sensitivity_ge5mm"] * 6)
    assert r["only_b"] == 0 and r["found_b"] <= r["found_a"]
    assert r["only_a"] == r["found_a"] - r["found_b"] == len(r["found_only_by_a"])
    assert r["b"]["fp_per_scan"] <= r["a"]["fp_per_scan"]
