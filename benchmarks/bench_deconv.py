"""The dense readers' transposed convolutions on the CPU: oneDNN's ``conv_transpose3d`` vs one matrix product, one run.

    .venv/bin/python -m benchmarks.bench_deconv [--threads 2] [--repeats 3] [--seed 9100] [--real DIR] [--no-demo]

Both dense readers (``nodules-dense`` at 2 mm, ``nodules-dense-fine`` at
1.25 mm), each on the lung crop of every case, resampled and normalised as
:func:`inference.pipeline.nodules.segment_nodules` makes it, run exactly as
the product runs them on the CPU (one window, channels-last 3-D, bf16
autocast, the decoder without its empty edge padding), with and without
:func:`inference.pipeline.nodules.deconv_as_matmul`, alternating within each
repeat. Cases: the synthetic CT of ``--seed`` (5 mm slices), the real CT
A0001 (5 mm) and the demo patient's baseline CT (246 × 1.25 mm slices, the
thin-slice case the fine reader is for; generated into the user cache when
absent). Printed per model and case: the network's median time both ways and
the largest difference of the probabilities.
"""

from __future__ import annotations

from inference.process import prepare_analysis_process

prepare_analysis_process()

import copy  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from benchmarks.bench_inference import bench_cases  # noqa: E402


def main() -> int:
    import argparse
    from pathlib import Path

    from benchmarks.bench_inference import REPO

    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=9100)
    ap.add_argument("--real", type=Path, default=REPO.parent / "shared" / "data" / "lung-pet-ct-dx" / "A0001" / "ct-lung-kernel")
    ap.add_argument("--no-demo", action="store_true", help="leave out the demo patient's thin-slice CT")
    a = ap.parse_args()
    import platform

    import torch

    from inference.models.catalogue import load_model
    from inference.pipeline.lungs import segment_lungs
    from inference.pipeline.nodules import (deconv_as_matmul, decoder_without_edge_padding, lung_crop, normalise,
                                            predict_probability, to_model_grid, window_size)

    torch.set_num_threads(a.threads)
    cases = bench_cases(a.seed, a.real)
    if not a.no_demo:
        from inference import api

        cases.append(("demo baseline (1.25 mm)", api.load_series(api.demo_patient().baseline_dir), None))
    print(json.dumps({"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "threads": a.threads,
                      "torch": torch.__version__, "cpu": platform.processor() or platform.machine(),
                      "repeats": a.repeats, "command": " ".join(sys.argv)}), flush=True)
    lungs = {name: segment_lungs(v) for name, v, _ in cases}
    for model in ("nodules-dense", "nodules-dense-fine"):
        net, info = load_model(model, device="cpu")
        net = copy.deepcopy(net).to(memory_format=torch.channels_last_3d)
        inf = info.metadata["inference"]
        for name, v, _ in cases:
            crop = lung_crop(lungs[name], v.spacing)
            t = normalise(to_model_grid(np.asarray(v.array)[crop], v.spacing, info.spacing), info.normalisation)
            whole = window_size(tuple(t.shape[2:]), tuple(int(r) for r in inf["roi_size"]), inf)
            div = int(inf.get("size_divisor", 16))

            def run(matmul: bool) -> Any:
                with decoder_without_edge_padding(net, whole, div):
                    if matmul:
                        with deconv_as_matmul(net):
                            return predict_probability(net, t, roi_size=whole, channels_last=True, device=torch.device("cpu"),
                                                       sw_batch_size=1, cpu_autocast=inf.get("cpu_autocast"))
                    return predict_probability(net, t, roi_size=whole, channels_last=True, device=torch.device("cpu"),
                                               sw_batch_size=1, cpu_autocast=inf.get("cpu_autocast"))

            run(False), run(True)  # warm-up
            ts: dict[bool, list[float]] = {False: [], True: []}
            out: dict[bool, Any] = {}
            for _ in range(a.repeats):
                for matmul in (False, True):
                    t0 = time.perf_counter()
                    out[matmul] = run(matmul)
                    ts[matmul].append(time.perf_counter() - t0)
            d = (out[True] - out[False]).abs()
            base, ours = statistics.median(ts[False]), statistics.median(ts[True])
            print(json.dumps({"model": f"{info.name} {info.version}", "case": name, "window_zyx": list(whole),
                              "conv_transpose3d_s": round(base, 2), "matmul_s": round(ours, 2),
                              "speedup": round(base / ours, 2), "runs_s": {"conv_transpose3d": [round(x, 2) for x in ts[False]],
                                                                          "matmul": [round(x, 2) for x in ts[True]]},
                              "max_probability_difference": float(d.max()),
                              "voxels_over_0.5_differing": int(((out[True] > 0.5) != (out[False] > 0.5)).sum())}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
