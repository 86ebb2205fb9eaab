"""Risk benchmarks (issue 6): accuracy of the multimodal model beside Brock, and speed.

``.venv/bin/python -m benchmarks.bench_risk [--n 2000]``

Accuracy: the held-out synthetic test cohort (seed from configs/risk.yaml),
model vs Brock on the same patients (those with a known age). Speed: the
Brock formula is the baseline, timed in the same run as the risk model with
and without Integrated-Gradients explanations, and the growth registration
on a 48x128x128 phantom pair.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np


def _timeit(fn: Callable[[], Any], repeat: int) -> float:
    fn()  # warm-up (model load, caches)
    t = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t) / repeat


def main(argv: list[str] | None = None) -> int:
    import torch
    import yaml

    from inference.clinical.brock import brock_probability
    from inference.models.risk import predict_risk
    from inference.models.risk_eval import evaluate
    from inference.pipeline.growth import register_rigid
    from inference.synth.cohort import make_cohort
    from inference.types import Volume

    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="configs/risk.yaml")
    ap.add_argument("--n", type=int, default=None)
    args = ap.parse_args(argv)
    cfg = yaml.safe_load(Path(args.config).read_text())
    torch.set_num_threads(int(cfg.get("threads", 2)))

    acc = evaluate(cfg, n=args.n)

    pt = next(p for p in make_cohort(3, 20) if p.patch_params is not None)
    patch = pt.patch
    kw = dict(age_years=64, female=True, family_history=False, emphysema=True, size_mm=9.0,
              nodule_type="solid", upper_lobe=True, nodule_count=2, spiculated=True)
    speed = {
        "brock_formula_us": 1e6 * _timeit(lambda: brock_probability(**kw), 2000),
        "risk_model_no_explain_ms": 1e3 * _timeit(
            lambda: predict_risk(pt.findings, pt.facts, volume=None, genomics=pt.genomics, labs=pt.labs,
                                 patch=patch, explain=False), 30),
        "risk_model_with_IG_ms": 1e3 * _timeit(
            lambda: predict_risk(pt.findings, pt.facts, volume=None, genomics=pt.genomics, labs=pt.labs,
                                 patch=patch, explain=True), 10),
    }
    rng = np.random.default_rng(0)
    from scipy.ndimage import affine_transform, gaussian_filter

    arr = gaussian_filter(rng.normal(0, 1, (48, 128, 128)), 3).astype(np.float32)
    arr = np.where(arr > 0.02, 40.0, -850.0).astype(np.float32) + rng.normal(0, 20, arr.shape).astype(np.float32)
    th = np.radians(3)
    rot = np.array([[1, 0, 0], [0, np.cos(th), -np.sin(th)], [0, np.sin(th), np.cos(th)]])
    c = np.array(arr.shape) / 2
    moved = affine_transform(arr, rot, offset=c - rot @ c + np.array([1.0, 2.0, -2.0]), order=1, cval=-850.0)
    v1 = Volume(array=arr, spacing=(2.5, 0.8, 0.8), origin=(0.0, 0.0, 0.0), direction=np.eye(3))
    v0 = Volume(array=moved.astype(np.float32), spacing=(2.5, 0.8, 0.8), origin=(0.0, 0.0, 0.0), direction=np.eye(3))
    t = time.perf_counter()
    register_rigid(v1, v0)
    speed["registration_48x128x128_s"] = time.perf_counter() - t

    out = {
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}",
        "accuracy": acc,
        "speed": {k: round(v, 3) for k, v in speed.items()},
    }
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
