"""The second reader's dense network on a whole CT: 96³ tiles vs one window, default vs channels-last, one run.

    .venv/bin/python -m benchmarks.bench_dense [--threads 2] [--repeats 3] [--seed 9100] [--real DIR]

What ``nodules-dense`` 1.1.0 changed against 1.0.0, side by side on the same
inputs (the lung crop resampled to 2 mm, normalised, exactly as
:func:`inference.pipeline.nodules.segment_nodules` makes it):

* ``tiles``: MONAI ``sliding_window_inference`` with the model's 96³
  ``roi_size``, overlap 0.25, Gaussian blending, weights in the default
  layout -- how 1.0.0 ran;
* ``one window``: the window :func:`inference.pipeline.nodules.window_size`
  picks (the whole crop, padded to a multiple of 16), default layout;
* ``one window, channels-last``: the same in the channels-last 3-D layout,
  as the product runs it on the CPU.

Printed per case: the network time (median of ``--repeats`` after a warm-up),
the window, and how far the probabilities of each variant are from the
tiles' (largest difference; share of voxels differing by more than 0.1) and
from each other. The network only: resampling, upsampling and components are
the same for all three and are not timed here.
"""

from __future__ import annotations

from inference.process import prepare_analysis_process

prepare_analysis_process()

import copy  # noqa: E402
import json  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from benchmarks.bench_inference import _time, bench_args, bench_cases  # noqa: E402


def main() -> int:
    a = bench_args(3)
    import torch

    from inference.models.catalogue import load_model
    from inference.pipeline.lungs import segment_lungs
    from inference.pipeline.nodules import lung_crop, normalise, predict_probability, to_model_grid, window_size

    torch.set_num_threads(a.threads)
    net, info = load_model("nodules-dense", device="cpu")
    inf = info.metadata["inference"]
    last = copy.deepcopy(net).to(memory_format=torch.channels_last_3d)
    print(json.dumps({"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "threads": a.threads,
                      "torch": torch.__version__, "model": f"{info.name} {info.version}", "repeats": a.repeats}), flush=True)
    for name, v, _ in bench_cases(a.seed, a.real):
        crop = lung_crop(segment_lungs(v), v.spacing)
        t = normalise(to_model_grid(np.asarray(v.array)[crop], v.spacing, info.spacing), info.normalisation)
        tile = tuple(int(r) for r in inf["roi_size"])
        whole = window_size(tuple(t.shape[2:]), tile, inf)
        kw = dict(device=torch.device("cpu"), sw_batch_size=int(inf["sw_batch_size"]), overlap=float(inf["overlap"]),
                  cpu_autocast=inf.get("cpu_autocast"))
        s_tiles, p_tiles = _time(lambda: predict_probability(net, t, roi_size=tile, **kw), a.repeats)
        s_whole, p_whole = _time(lambda: predict_probability(net, t, roi_size=whole, **kw), a.repeats)
        s_last, p_last = _time(lambda: predict_probability(last, t, roi_size=whole, channels_last=True, **kw),
                                      a.repeats)

        def diff(p: Any, q: Any) -> dict[str, float]:
            d = (p - q).abs()
            return {"max": round(float(d.max()), 4), "share_over_0.1": round(float((d > 0.1).float().mean()), 5)}

        row = {"case": name, "model_grid_zyx": list(t.shape[2:]), "one_window": list(whole),
               "tiles_s": round(s_tiles, 2), "one_window_s": round(s_whole, 2), "one_window_channels_last_s": round(s_last, 2),
               "speedup_vs_tiles": round(s_tiles / s_last, 2),
               "one_window_vs_tiles": diff(p_whole, p_tiles), "channels_last_vs_default": diff(p_last, p_whole)}
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
