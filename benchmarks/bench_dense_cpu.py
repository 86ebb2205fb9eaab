"""The dense readers on the CPU: how the transposed convolutions run, and in which precision, one run.

    .venv/bin/python -m benchmarks.bench_dense_cpu [--threads 2] [--repeats 3] [--seed 9100] [--real DIR] [--no-demo]

Both dense readers (``nodules-dense`` at 2 mm, ``nodules-dense-fine`` at
1.25 mm), each on the lung crop of every case, resampled and normalised as
:func:`inference.pipeline.nodules.segment_nodules` makes it, run as the
product runs them on the CPU (one window, channels-last 3-D, the decoder
without its empty edge padding), three ways, alternating within each repeat:

* ``bf16, conv_transpose3d``: bf16 autocast, oneDNN's transposed convolution
  -- how nodules 2.6.0 ran them everywhere;
* ``bf16, matmul``: the same with :func:`inference.pipeline.nodules.deconv_as_matmul`
  -- what a CPU with native bf16 runs now;
* ``fp32, matmul``: no autocast -- what a CPU without native bf16 runs now
  (:func:`inference.models.device.cpu_bf16`).

Cases: the synthetic CT of ``--seed`` (5 mm slices), the real CT A0001 (5 mm)
and the demo patient's baseline CT (246 × 1.25 mm slices, the thin-slice case
the fine reader is for; generated into the user cache when absent). Printed
per model and case: each way's median time and the largest difference of its
probabilities from the first way's. The header says whether this CPU has
native bf16.
"""

from __future__ import annotations

from inference.process import prepare_analysis_process

prepare_analysis_process()

import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from contextlib import nullcontext  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from benchmarks.bench_inference import bench_args, bench_cases  # noqa: E402
from benchmarks.bench_load import _cpu_model  # noqa: E402


def main() -> int:
    a = bench_args(3, lambda ap: ap.add_argument("--no-demo", action="store_true",
                                                 help="leave out the demo patient's thin-slice CT"))
    import torch

    from inference.models.catalogue import load_model
    from inference.models.device import cpu_bf16
    from inference.pipeline.lungs import segment_lungs
    from inference.pipeline.nodules import (deconv_as_matmul, decoder_without_edge_padding, lung_crop, normalise,
                                            predict_probability, to_model_grid, window_size)

    torch.set_num_threads(a.threads)
    cases = bench_cases(a.seed, a.real)
    if not a.no_demo:
        from inference import api

        cases.append(("demo baseline (1.25 mm)", api.load_series(api.demo_patient().baseline_dir), None))
    print(json.dumps({"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "threads": a.threads,
                      "torch": torch.__version__, "cpu": _cpu_model(),
                      "cpu_native_bf16": cpu_bf16(), "repeats": a.repeats, "command": " ".join(sys.argv)}), flush=True)
    lungs = {name: segment_lungs(v) for name, v, _ in cases}
    for model in ("nodules-dense", "nodules-dense-fine"):
        net, info = load_model(model, device="cpu")  # a fresh network, not the product's shared cached one
        net = net.to(memory_format=torch.channels_last_3d)
        inf = info.metadata["inference"]
        for name, v, _ in cases:
            crop = lung_crop(lungs[name], v.spacing)
            t = normalise(to_model_grid(np.asarray(v.array)[crop], v.spacing, info.spacing), info.normalisation)
            whole = window_size(tuple(t.shape[2:]), tuple(int(r) for r in inf["roi_size"]), inf)
            div = int(inf.get("size_divisor", 16))

            ways = {"bf16, conv_transpose3d": ("bf16", False), "bf16, matmul": ("bf16", True), "fp32, matmul": (None, True)}

            def run(precision: str | None, matmul: bool) -> Any:
                with decoder_without_edge_padding(net, whole, div), (deconv_as_matmul(net) if matmul else nullcontext()), \
                        (torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else nullcontext()):
                    return predict_probability(net, t, roi_size=whole, channels_last=True, device=torch.device("cpu"),
                                               sw_batch_size=1, cpu_autocast=None)

            for way in ways.values():  # warm-up
                run(*way)
            ts: dict[str, list[float]] = {k: [] for k in ways}
            out: dict[str, Any] = {}
            for _ in range(a.repeats):
                for k, way in ways.items():
                    t0 = time.perf_counter()
                    out[k] = run(*way)
                    ts[k].append(time.perf_counter() - t0)
            first = next(iter(ways))
            print(json.dumps({"model": f"{info.name} {info.version}", "case": name, "window_zyx": list(whole),
                              "median_s": {k: round(statistics.median(v), 2) for k, v in ts.items()},
                              "speedup_vs_first": {k: round(statistics.median(ts[first]) / statistics.median(v), 2)
                                                   for k, v in ts.items()},
                              "runs_s": {k: [round(x, 2) for x in v] for k, v in ts.items()},
                              "max_probability_difference_vs_first": {k: float((out[k] - out[first]).abs().max()) for k in ways},
                              "voxels_over_0.5_differing_vs_first": {k: int(((out[k] > 0.5) != (out[first] > 0.5)).sum())
                                                                     for k in ways}}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
