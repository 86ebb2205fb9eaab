"""Whole-CT nodule inference on the CPU: the shipped pipeline vs plain MONAI sliding window, one run.

    .venv/bin/python -m benchmarks.bench_inference [--threads 2] [--real DIR] [--seed 9100]

Baseline ("plain"), as the issue names it: resample the *whole* CT to 1.5 mm,
normalise, ``monai.inferers.sliding_window_inference`` over the full
resampled volume (96³ windows, overlap 0.25, Gaussian blending), fp32, then
upsampling + component post-processing -- with the dense segmentation network
clinview shipped before v2.0.0 (MONAI BasicUNet ``nodules`` v1.0.0, restored
from git history into ``.cache/runs/nodules-unet-v1`` when absent). The
"same weights" comparison of the issue no longer applies: the shipped model
(v2.0.0) is not a dense network but classical candidates + a classifier.

Ours (:func:`inference.pipeline.imaging.run_imaging`): lungs, candidates,
classifier, measurements -- everything the product does on a CT.

Quality side by side: Dice of all nodule voxels against the phantom's truth,
and nodules found. Timings are medians of ``--repeats`` runs after one warm-up.
"""

from __future__ import annotations

from inference.process import prepare_analysis_process

# both sides run as the product's analysis processes do (the viewer's worker, `clinview analyze`):
# numpy without huge-page advice, set before numpy is imported (see inference/process.py)
prepare_analysis_process()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def plain(volume: Any, net: Any, info: Any, lungs: np.ndarray) -> np.ndarray:
    """Baseline: full-volume resample + MONAI sliding window (fp32)."""
    import torch

    from inference.pipeline.nodules import components, normalise, predict_probability

    inf = info.metadata["inference"]
    post = info.metadata["postprocess"]
    t = torch.from_numpy(volume.array.astype(np.float32))[None, None]
    target = tuple(int(max(1, round(n * s / m))) for n, s, m in zip(volume.shape, volume.spacing, info.spacing))
    t = normalise(torch.nn.functional.interpolate(t, size=target, mode="trilinear", align_corners=False), info.normalisation)
    p = predict_probability(net, t, roi_size=tuple(inf["roi_size"]), device=torch.device("cpu"),
                            sw_batch_size=int(inf["sw_batch_size"]), overlap=float(inf["overlap"]), cpu_autocast=None)
    p = torch.nn.functional.interpolate(p, size=volume.shape, mode="trilinear", align_corners=False)[0, 0].numpy()
    lab, _ = components(p, lungs, volume.spacing, threshold=post["threshold"], min_volume_mm3=post["min_volume_mm3"],
                        min_probability=post["min_probability"], max_elongation=post.get("max_elongation"))
    return lab


def ours(volume: Any) -> np.ndarray:
    """The shipped pipeline on the CT (lung time included)."""
    from inference.pipeline.imaging import run_imaging

    return run_imaging(volume, device="cpu").nodule_labels


BASELINE_COMMIT = "ac2fcd2"


def baseline_model() -> tuple[Any, Any]:
    """The v1.0.0 dense BasicUNet (from git history when not cached)."""
    import subprocess

    from inference.models.catalogue import load_model

    d = REPO / ".cache" / "runs" / "nodules-unet-v1"
    if not (d / "model.safetensors").is_file():
        d.mkdir(parents=True, exist_ok=True)
        for f in ("model.safetensors", "metadata.json"):
            blob = subprocess.run(["git", "show", f"{BASELINE_COMMIT}:resources/models/nodules/{f}"], cwd=REPO,
                                  check=True, capture_output=True).stdout
            (d / f).write_bytes(blob)
    return load_model(d.name, device="cpu", root=d.parent)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    s = a.sum() + b.sum()
    return float(2 * (a & b).sum() / s) if s else 1.0


def bench_cases(seed: int, real: Path) -> list[tuple[str, Any, Any]]:
    """``(name, volume, truth labels or None)``: the synthetic chest CT of ``seed`` (69×512×512) and, when the
    folder is there, the real CT -- the cases every inference benchmark here runs on."""
    from inference.synth.phantom import make_phantom
    from inference.types import Volume

    ph = make_phantom(seed, shape=(512, 512), pixel_mm=0.8, slice_mm=5.0, n_nodules=4, nodule_size_mm=(6.0, 20.0))
    vol = Volume(array=ph.hu, spacing=tuple(ph.spacing), origin=tuple(ph.origin), direction=np.asarray(ph.direction))
    cases: list[tuple[str, Any, Any]] = [("synthetic seed %d" % seed, vol, np.asarray(ph.nodules))]
    if real.is_dir():
        from inference.pipeline.analyze import _scan_and_load

        rv, _, _ = _scan_and_load(real, None, None, None)
        cases.append(("real A0001 lung kernel", rv, None))
    return cases


def _time(fn: Any, repeats: int) -> tuple[float, Any]:
    fn()  # warm-up
    ts = []
    out = None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts), out


def bench_args(repeats: int, extra: Callable[[argparse.ArgumentParser], Any] | None = None) -> argparse.Namespace:
    """The command line the inference benchmarks share: threads, repeats, the synthetic seed, the real CT's folder
    (``extra`` adds a benchmark's own options)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=repeats)
    ap.add_argument("--seed", type=int, default=9100)
    ap.add_argument("--real", type=Path, default=REPO.parent / "shared" / "data" / "lung-pet-ct-dx" / "A0001" / "ct-lung-kernel")
    if extra is not None:
        extra(ap)
    return ap.parse_args()


def main() -> int:
    a = bench_args(1)
    import torch

    from inference.models.catalogue import read_model_info
    from inference.pipeline.lungs import segment_lungs

    torch.set_num_threads(a.threads)
    net, info = baseline_model()
    shipped = read_model_info("nodules")
    res: dict[str, Any] = {"threads": a.threads, "torch": torch.__version__, "baseline_model": info.version,
                           "shipped_model": shipped.version, "sha256": str(shipped.sha256)[:12],
                           "numpy_madvise_hugepage": os.environ.get("NUMPY_MADVISE_HUGEPAGE")}
    for name, v, truth in bench_cases(a.seed, a.real):
        lungs = segment_lungs(v)
        tp, lp = _time(lambda: plain(v, net, info, lungs), a.repeats)
        to, lo = _time(lambda: ours(v), a.repeats)
        row = {"case": name, "shape_zyx": list(v.shape), "spacing": [round(s, 3) for s in v.spacing],
               "plain_s": round(tp, 2), "ours_s": round(to, 2), "speedup": round(tp / to, 2),
               "dice_between_methods": round(_dice(lp > 0, lo > 0), 3)}
        if truth is not None:
            row["dice_plain_vs_truth"] = round(_dice(lp > 0, truth > 0), 3)
            row["dice_ours_vs_truth"] = round(_dice(lo > 0, truth > 0), 3)
            ids = [int(i) for i in np.unique(truth) if i > 0]
            row["truth_nodules"] = len(ids)
            row["found_plain"] = sum(bool((lp[truth == i] > 0).any()) for i in ids)
            row["found_ours"] = sum(bool((lo[truth == i] > 0).any()) for i in ids)
            row["findings_plain"], row["findings_ours"] = int(lp.max()), int(lo.max())
        res.setdefault("cases", []).append(row)
        print(json.dumps(row), flush=True)
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
