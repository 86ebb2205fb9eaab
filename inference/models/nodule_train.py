"""Train the experimental nodule segmentation network (reproducible: config + seed + logs).

Not the shipped nodule model: on two CPU cores it stayed under-trained (see
benchmarks/RESULTS.md); the product uses candidates + a classifier
(:mod:`inference.models.fpr_train`). Kept for GPU retraining experiments.

Usage::

    .venv/bin/python -m inference.models.nodule_train --config configs/nodules_unet.yaml [--out DIR]
        [--epochs N] [--steps N] [--max-minutes M] [--train-seeds A B] [--val-seeds A B]

Why this recipe: a small MONAI BasicUNet on 64³ patches at the model spacing,
sampled mostly around nodules (so the rare foreground is seen) and otherwise
anywhere in the lungs, where vessels are the hard negatives; Dice + focal
loss (``monai.losses.DiceFocalLoss``) because Dice alone is unstable on
mostly-empty patches and focal alone under-segments. Augmentation simulates
what differs between scanners: noise, reconstruction kernel, slice thickness,
intensity calibration, scale (spacing) and flips. Validation Dice per epoch is
computed on whole held-out patients with the *inference* code path
(sliding window), and the best epoch is saved with its metrics into
``metadata.json`` by :func:`inference.models.catalogue.save_model`.
Runs on CUDA when present (bigger ``gpu:`` settings), otherwise on the CPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["train", "load_config", "main", "sample_patch", "cached_case"]

REPO = Path(__file__).resolve().parents[2]


def load_config(path: Path) -> dict[str, Any]:
    """Read the YAML training config; ``base: FILE`` (beside it) is read first and this file's keys laid over it.

    Why: a reader trained with another network's recipe at another spacing
    (``configs/nodules_dense_fine.yaml``) should say only what differs, so
    that a change to the shared recipe cannot be made in one file and missed
    in its copy. Mappings merge key by key; anything else replaces.
    """
    import yaml

    path = Path(path)
    cfg = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    base = cfg.pop("base", None)
    if base is None:
        return cfg
    return _overlay(load_config(path.parent / str(base)), cfg)


def _overlay(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``top`` laid over it, mappings merged recursively (neither is changed)."""
    out = dict(base)
    for k, v in top.items():
        out[k] = _overlay(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def cached_case(seed: int, cfg: dict[str, Any], **phantom_kw: Any) -> Any:
    """Generate (or read from the cache) one case at the model spacing."""
    from inference.models.nodule_data import Case, NoduleTruth, make_case

    spacing = tuple(float(s) for s in cfg["spacing_zyx_mm"])
    src = cfg["data"].get("source", "auto")
    cache = REPO / cfg["data"].get("cache_dir", ".cache/train")
    cache.mkdir(parents=True, exist_ok=True)
    tag = "x".join(f"{s:g}" for s in spacing)
    kwtag = "".join(f"_{k}-{'-'.join(str(x) for x in v) if isinstance(v, (list, tuple)) else v}" for k, v in sorted(phantom_kw.items()))
    f = cache / f"case_{src}_{tag}_{seed}{kwtag}.npz"
    if f.is_file():
        z = np.load(f, allow_pickle=False)
        truth = [NoduleTruth(**t) for t in json.loads(str(z["truth"]))]
        return Case(z["hu"].astype(np.float32), spacing, z["nodules"], z["lungs"], truth, str(z["source"]), seed)
    if src == "clinical":
        phantom_kw = {"n_nodules": cfg["data"].get("n_nodules", 4), **phantom_kw}
    c = make_case(seed, spacing, source=src, **phantom_kw)
    np.savez_compressed(
        f,
        hu=c.hu.astype(np.int16),
        nodules=c.nodules.astype(np.int16),
        lungs=c.lungs.astype(np.uint8),
        truth=json.dumps([t.__dict__ for t in c.truth]),
        source=c.source,
    )
    return c


def sample_patch(case: Any, patch: tuple[int, int, int], rng: np.random.Generator, pos_fraction: float,
                 type_weights: dict[str, float] | None = None, augmentation: str = "full",
                 anywhere: float = 0.0, small_nodules: tuple[float, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One augmented (image HU, label) training patch.

    With probability ``pos_fraction`` the patch holds a nodule (random offset;
    a nodule picked with ``type_weights`` by its type, times ``small_nodules[1]``
    when it is under ``small_nodules[0]`` mm across -- the config's
    ``train.small_nodules`` weight and below_mm), otherwise it is centred
    on a random lung voxel -- or, with probability ``anywhere``, anywhere in
    the case. Scale augmentation: the
    patch is cut ``s``× larger/smaller and resized, which mimics other spacings
    and nodule sizes.
    """
    import torch

    from inference.models.nodule_data import augment

    s = rng.uniform(0.85, 1.2)
    size = np.array([max(16, int(round(p * s))) for p in patch])
    if case.truth and rng.random() < pos_fraction:
        w = np.array([float((type_weights or {}).get(t.type, 1.0)) for t in case.truth])
        if small_nodules is not None:
            # a 5 mm nodule is ~60 voxels at 1.25 mm against ~4000 for a 20 mm one: batch Dice hardly sees it
            w = w * np.array([float(small_nodules[1]) if t.diameter_mm < float(small_nodules[0]) else 1.0 for t in case.truth])
        t = case.truth[int(rng.choice(len(case.truth), p=w / w.sum()))]
        c = np.array(t.center_zyx) + rng.uniform(-0.35, 0.35, 3) * size
    else:
        if rng.random() < anywhere or not case.lungs.any():
            # anywhere in the case (the lung crop): inference sees the hilum, heart and chest wall too
            c = rng.uniform(0, 1, 3) * np.array(case.hu.shape)
        else:
            lz = np.nonzero(case.lungs.reshape(-1))[0]
            i = int(lz[int(rng.integers(lz.size))])
            c = np.array(np.unravel_index(i, case.hu.shape), float)
    lo = np.round(c - size / 2).astype(int)
    img = np.full(tuple(size), -1000.0, np.float32)
    lab = np.zeros(tuple(size), np.float32)
    src_lo = np.maximum(lo, 0)
    src_hi = np.minimum(lo + size, case.hu.shape)
    if np.all(src_hi > src_lo):
        dst = tuple(slice(a - b, c_ - b) for a, c_, b in zip(src_lo, src_hi, lo))
        srcs = tuple(slice(a, b) for a, b in zip(src_lo, src_hi))
        img[dst] = case.hu[srcs]
        lab[dst] = case.nodules[srcs] > 0
    if augmentation == "light":
        img = img * rng.uniform(0.96, 1.04) + rng.uniform(-25, 25) + rng.normal(0, rng.uniform(0, 15), img.shape).astype(np.float32)
    else:
        img = augment(img, case.spacing, rng)
    for ax in range(3):
        if rng.random() < 0.5:
            img = np.flip(img, ax)
            lab = np.flip(lab, ax)
    if tuple(size) != tuple(patch):
        ti = torch.from_numpy(np.ascontiguousarray(img))[None, None]
        tl = torch.from_numpy(np.ascontiguousarray(lab))[None, None]
        img = torch.nn.functional.interpolate(ti, size=patch, mode="trilinear", align_corners=False)[0, 0].numpy()
        lab = (torch.nn.functional.interpolate(tl, size=patch, mode="trilinear", align_corners=False)[0, 0].numpy() >= 0.5).astype(np.float32)
    return np.ascontiguousarray(img), np.ascontiguousarray(lab)


def _val_dice(net: Any, cases: list[Any], cfg: dict[str, Any], device: Any) -> float:
    """Global Dice over the validation patients (sliding window over the lungs)."""
    import torch

    from inference.models.nodule_data import augment
    from inference.pipeline.nodules import components, lung_crop, normalise, predict_probability, window_size

    inter = tot = 0.0
    net.eval()
    for c in cases:
        crop = lung_crop(c.lungs, c.spacing)
        if crop is None:
            continue
        img = c.hu[crop] if cfg["data"].get("source") == "clinical" else augment(c.hu[crop], c.spacing, np.random.default_rng(c.seed))
        t = normalise(torch.from_numpy(img)[None, None], cfg["normalisation"])
        # the window the product uses (one over the whole crop when the model's inference block says so)
        roi = window_size(tuple(t.shape[2:]), tuple(cfg["inference"]["roi_size"]), cfg["inference"])
        p = predict_probability(net, t, roi_size=roi, device=device, sw_batch_size=int(cfg["inference"]["sw_batch_size"]))
        if cfg.get("val_metric") == "reported":
            # what the product would report: components in the lungs, of the postprocess's size and shape
            post = cfg["postprocess"]
            pred = components(p[0, 0].numpy(), c.lungs[crop], c.spacing, threshold=float(post.get("threshold", 0.5)),
                              min_volume_mm3=float(post.get("min_volume_mm3", 15.0)), min_probability=0.5,
                              max_elongation=float(post["max_elongation"]) if post.get("max_elongation") else None)[0] > 0
        else:
            pred = p[0, 0].numpy() >= 0.5
        gt = c.nodules[crop] > 0
        inter += float((pred & gt).sum())
        tot += float(pred.sum() + gt.sum())
    net.train()
    return 2 * inter / tot if tot else 1.0


def _best_so_far(out_dir: Path) -> Path:
    """Where the best epoch so far is written during training: beside the model folder, not in it
    (the catalogue refuses weights its metadata does not list)."""
    return Path(out_dir).parent / f"{Path(out_dir).name}.best_so_far.safetensors"


def train(cfg: dict[str, Any], out_dir: Path, *, log: Any = print) -> dict[str, Any]:
    """Train per ``cfg`` and save the best epoch to ``out_dir``.

    Returns the metrics written into the metadata.
    """
    import torch
    from monai.losses import DiceFocalLoss
    from monai.utils import set_determinism

    from inference.models.catalogue import build_network, save_model
    from inference.models.device import autocast, choose_device

    device, note = choose_device(cfg.get("device", "auto"))
    tr = dict(cfg["train"])
    if device.type == "cuda":
        tr.update(cfg.get("gpu", {}))
    torch.set_num_threads(int(tr.get("threads", 2)))
    seed = int(cfg["seed"])
    set_determinism(seed=seed)
    rng = np.random.default_rng(seed)
    log(f"device {device} {note}".strip())
    t0 = time.time()
    jobs = _case_jobs(cfg)
    n_val = len(range(*(int(v) for v in cfg["data"]["val_seeds"])))
    cases = [cached_case(s, cfg, **kw) for s, kw in jobs]
    train_cases, val_cases = cases[: len(cases) - n_val], cases[len(cases) - n_val:]
    n_nod = sum(len(c.truth) for c in train_cases)
    log(f"data: {len(train_cases)} training patients ({n_nod} nodules), {len(val_cases)} validation, "
        f"source {train_cases[0].source if train_cases else '?'}; {time.time() - t0:.0f}s")
    net = build_network(cfg["architecture"]).to(device)
    if cfg.get("init"):
        # warm start (continue a run that hit its time cap); recorded in the metadata
        from safetensors.torch import load_file

        net.load_state_dict(load_file(str(cfg["init"]), device="cpu"))
        log(f"initialised from {cfg['init']}")
    opt = torch.optim.AdamW(net.parameters(), lr=float(tr["lr"]), weight_decay=1e-4)
    epochs, steps = int(tr["epochs"]), int(tr["steps_per_epoch"])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=float(tr["lr"]), total_steps=epochs * steps, pct_start=0.1)
    loss_fn = DiceFocalLoss(sigmoid=True, batch=True, lambda_dice=1.0, lambda_focal=1.0)
    patch = tuple(int(p) for p in tr["patch"])
    bs = int(tr["batch"])
    sw = tr.get("small_nodules")
    small = (float(sw["below_mm"]), float(sw["weight"])) if sw else None
    best = {"val_dice": -1.0, "epoch": 0}
    history = []
    deadline = time.time() + 60 * float(tr.get("max_minutes", 1e9))
    best_state = None
    for ep in range(1, epochs + 1):
        net.train()
        te = time.time()
        losses = []
        for _ in range(steps):
            xs, ys = zip(*(sample_patch(train_cases[int(rng.integers(len(train_cases)))], patch, rng, float(tr["pos_fraction"]),
                                        tr.get("type_weights"), str(tr.get("augment", "full")),
                                        float(tr.get("negatives_anywhere", 0.0)), small) for _ in range(bs)))
            x = torch.from_numpy(np.stack(xs))[:, None]
            y = torch.from_numpy(np.stack(ys))[:, None]
            x = ((x.clamp(cfg["normalisation"]["hu_min"], cfg["normalisation"]["hu_max"]) - cfg["normalisation"]["hu_min"])
                 / (cfg["normalisation"]["hu_max"] - cfg["normalisation"]["hu_min"]))
            x, y = x.to(device), y.to(device)
            opt.zero_grad(set_to_none=True)
            with autocast(device, tr.get("cpu_autocast")):
                out = net(x)
            loss = loss_fn(out.float(), y)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
        vd = _val_dice(net, val_cases, cfg, device)
        rec = {"epoch": ep, "loss": round(float(np.mean(losses)), 4), "val_dice": round(vd, 4), "seconds": round(time.time() - te, 1)}
        history.append(rec)
        log(json.dumps(rec))
        if vd >= best["val_dice"]:  # ties: the later (longer-trained) epoch
            best = {"val_dice": round(vd, 4), "epoch": ep}
            best_state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
            # the best epoch so far, readable while training goes on (a long CPU run can be looked at, or resumed with --init)
            from safetensors.torch import save_file

            Path(out_dir).mkdir(parents=True, exist_ok=True)
            save_file(best_state, str(_best_so_far(out_dir)))
        if time.time() > deadline:
            log(f"stopping after epoch {ep}: max_minutes reached")
            break
    if best_state is not None:
        net.load_state_dict(best_state)
    metrics = {
        "val_dice_voxelwise": best["val_dice"],
        "best_epoch": best["epoch"],
        "epochs_run": len(history),
        "val_patients": len(val_cases),
        "note": ("voxel Dice of the reported components (in the lungs, postprocess size and shape)" if cfg.get("val_metric") == "reported"
                 else "global voxel Dice") + " on whole validation patients (never in training; lung crop, sliding window), "
                "the epoch's selection metric; per-size-bin sensitivity/FP/Dice: see benchmarks/RESULTS.md (inference.models.nodule_eval)",
    }
    meta = {
        "name": cfg["name"],
        "version": str(cfg["version"]),
        "task": "3-D segmentation of lung nodules on chest CT",
        "architecture": cfg["architecture"],
        "spacing_zyx_mm": cfg["spacing_zyx_mm"],
        "normalisation": cfg["normalisation"],
        "labels": cfg["labels"],
        "inference": cfg["inference"],
        "postprocess": cfg["postprocess"],
        "training_data": {
            "source": train_cases[0].source if train_cases else "",
            "train_seeds": cfg["data"]["train_seeds"],
            "val_seeds": cfg["data"]["val_seeds"],
            "nodules": n_nod,
            "augmentation": ("HU scale ±4 % / offset ±25, noise 0-15 HU, scale 0.85-1.2, flips (the acquisition -- pixel, "
                             "slice, kernel, dose -- is drawn per patient)" if str(tr.get("augment", "full")) == "light" else
                             "noise 5-60 HU, soft/sharp kernel, z blur FWHM 0.5-5 mm, HU scale ±5 % / offset ±30, scale 0.85-1.2, flips"),
            "sampling": {"pos_fraction": float(tr["pos_fraction"]), "type_weights": dict(tr.get("type_weights") or {}),
                         **({"small_nodules": dict(sw)} if sw else {})},
            "extra": cfg["data"].get("extra", []),
        },
        "training": {"config": str(cfg.get("config_path", "configs/nodules_unet.yaml")), "seed": seed, "device": device.type,
                     "init": Path(str(cfg["init"])).name if cfg.get("init") else None,
                     "epochs": epochs, "steps_per_epoch": steps, "lr": float(tr["lr"]),
                     "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"), "history": history},
        "validation_metrics": metrics,
    }
    save_model(net.cpu(), meta, out_dir)
    return metrics


def _case_jobs(cfg: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    """Every (seed, phantom arguments) the config trains and validates on."""
    a, b = cfg["data"]["train_seeds"]
    jobs: list[tuple[int, dict[str, Any]]] = [(s, {}) for s in range(int(a), int(b))]
    for extra in cfg["data"].get("extra", []):
        kw = {k: v for k, v in extra.items() if k != "seeds"}
        jobs += [(s, kw) for s in range(int(extra["seeds"][0]), int(extra["seeds"][1]))]
    a, b = cfg["data"]["val_seeds"]
    return jobs + [(s, {}) for s in range(int(a), int(b))]


def _prepare_one(job: tuple[int, dict[str, Any], dict[str, Any]]) -> str:
    seed, kw, cfg = job
    t = time.time()
    c = cached_case(seed, cfg, **kw)
    return f"{seed}: {c.hu.shape}, {len(c.truth)} nodules, {time.time() - t:.1f}s"


def prepare(cfg: dict[str, Any], processes: int) -> None:
    """Draw and cache every patient of ``cfg`` in ``processes`` worker processes (training then only reads)."""
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max(1, processes)) as pool:
        for line in pool.map(_prepare_one, [(s, kw, cfg) for s, kw in _case_jobs(cfg)]):
            print(line, flush=True)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; see module docstring."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, default=REPO / "configs" / "nodules_unet.yaml")
    ap.add_argument("--out", type=Path, default=REPO / ".cache" / "runs" / "nodules-unet")
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--steps", type=int)
    ap.add_argument("--max-minutes", type=float)
    ap.add_argument("--train-seeds", type=int, nargs=2)
    ap.add_argument("--val-seeds", type=int, nargs=2)
    ap.add_argument("--source", choices=["auto", "phantom", "simple"])
    ap.add_argument("--init", type=Path, help="start from these safetensors weights (continue a run)")
    ap.add_argument("--lr", type=float)
    ap.add_argument("--prepare", type=int, metavar="PROCESSES", help="only draw and cache the training and validation patients")
    a = ap.parse_args(argv)
    cfg = load_config(a.config)
    cfg["config_path"] = str(a.config.resolve().relative_to(REPO)) if a.config.resolve().is_relative_to(REPO) else str(a.config)
    if a.epochs:
        cfg["train"]["epochs"] = cfg.setdefault("gpu", {})["epochs"] = a.epochs
    if a.steps:
        cfg["train"]["steps_per_epoch"] = cfg.setdefault("gpu", {})["steps_per_epoch"] = a.steps
    if a.max_minutes:
        cfg["train"]["max_minutes"] = cfg.setdefault("gpu", {})["max_minutes"] = a.max_minutes
    if a.train_seeds:
        cfg["data"]["train_seeds"] = a.train_seeds
    if a.val_seeds:
        cfg["data"]["val_seeds"] = a.val_seeds
    if a.source:
        cfg["data"]["source"] = a.source
    if a.init:
        cfg["init"] = str(a.init)
    if a.lr:
        cfg["train"]["lr"] = cfg.setdefault("gpu", {})["lr"] = a.lr
    if a.prepare:
        prepare(cfg, a.prepare)
        return 0
    m = train(cfg, a.out, log=lambda s: print(s, flush=True))
    print(json.dumps(m), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
