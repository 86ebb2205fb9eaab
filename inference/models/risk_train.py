"""Train the multimodal risk model on the synthetic cohort (reproducible, CPU).

``.venv/bin/python -m inference.models.risk_train --config configs/risk.yaml``

Steps (each logged per epoch to stdout and ``training_log.jsonl``):

1. **Image encoder** pre-trained on its own cohort (``image_pretrain`` seed) to
   predict malignancy from the patch alone; it is then frozen. A separate
   cohort keeps the encoder's fit to its training patients from leaking into
   the ensemble as over-confident image evidence.
2. **Ensemble**: five MLPs, different seeds and bootstrap resamples of the
   training cohort, early-stopped on validation log-loss. Missing inputs are
   zeroed and flagged by the mask; the cohort's own missingness teaches the
   network what a missing input means.
3. **Temperature scaling** of the ensemble mean logit on the validation cohort.
4. Save ``model.safetensors`` + ``metadata.json`` (architecture, version,
   sha256, training data with seeds, validation metrics, calibration).

The held-out test cohort is not touched here; see :mod:`inference.models.risk_eval`.
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
import torch
from torch import nn

from inference.models import risk as R
from inference.models.catalogue import sha256_file
from inference.models.risk_eval import auc, brier, ece

__all__ = ["train", "main"]


def _log(fh: Any, rec: dict[str, Any]) -> None:
    line = json.dumps(rec)
    print(line, flush=True)
    fh.write(line + "\n")
    fh.flush()


def _patches(cohort: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    idx = [i for i, pt in enumerate(cohort) if pt.patch_params is not None]
    arr = np.stack([cohort[i].patch for i in idx]).astype(np.int16)
    return arr, np.array(idx)


def _train_encoder(enc: R.PatchEncoder, cfg: dict[str, Any], pre: list[Any], val: list[Any], fh: Any) -> None:
    x, idx = _patches(pre)
    y = torch.tensor([pre[i].malignant for i in idx], dtype=torch.float32)
    xv, idxv = _patches(val)
    yv = np.array([val[i].malignant for i in idxv], float)
    xt = R.patch_to_tensor(x)
    xvt = R.patch_to_tensor(xv)
    opt = torch.optim.Adam(enc.parameters(), lr=float(cfg["lr"]))
    lossf = nn.BCEWithLogitsLoss()
    g = torch.Generator().manual_seed(1)
    bs = int(cfg["batch_size"])
    for ep in range(int(cfg["epochs"])):
        enc.train()
        perm = torch.randperm(len(xt), generator=g)
        tot = 0.0
        for b in range(0, len(perm), bs):
            sel = perm[b:b + bs]
            xb = xt[sel]
            for dim in (2, 3, 4):  # flips: orientation carries no information here
                if torch.rand(1, generator=g).item() < 0.5:
                    xb = xb.flip(dim)
            _, logit = enc(xb)
            loss = lossf(logit, y[sel])
            opt.zero_grad()
            loss.backward()
            opt.step()
            tot += float(loss.detach()) * len(sel)
        enc.eval()
        with torch.no_grad():
            pv = torch.sigmoid(torch.cat([enc(xvt[i:i + 256])[1] for i in range(0, len(xvt), 256)])).numpy()
        _log(fh, {"stage": "encoder", "epoch": ep + 1, "train_loss": round(tot / len(xt), 4),
                  "val_auc_image_only": round(auc(yv, pv), 4)})


def _matrix(enc: R.PatchEncoder, cohort: list[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    raws, masks = [], []
    enc.eval()
    for i in range(0, len(cohort), 256):
        chunk = cohort[i:i + 256]
        patches = [pt.patch for pt in chunk]
        have = [k for k, p in enumerate(patches) if p is not None]
        emb = np.zeros((len(chunk), R.EMBED_DIM), np.float32)
        if have:
            with torch.no_grad():
                emb[have] = enc(R.patch_to_tensor(np.stack([patches[k] for k in have])))[0].numpy()
        for k, pt in enumerate(chunk):
            v, m, *_ = R.extract_features(pt.findings, pt.facts, pt.genomics, pt.labs)
            raws.append(np.concatenate([v, emb[k]]))
            masks.append(np.concatenate([m, np.full(R.EMBED_DIM, 0.0 if patches[k] is not None else 1.0, np.float32)]))
    y = np.array([pt.malignant for pt in cohort], np.float32)
    return np.array(raws, np.float32), np.array(masks, np.float32), y


def _fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """Temperature minimising validation log-loss (1-D search on a log grid, then refined)."""
    lt = torch.tensor(logits, dtype=torch.float64)
    yt = torch.tensor(y, dtype=torch.float64)

    def nll(t: float) -> float:
        return float(nn.functional.binary_cross_entropy_with_logits(lt / t, yt))

    grid = np.exp(np.linspace(np.log(0.25), np.log(4.0), 161))
    best = min(grid, key=nll)
    fine = np.linspace(best * 0.97, best * 1.03, 61)
    return float(min(fine, key=nll))


def train(cfg: dict[str, Any]) -> dict[str, Any]:
    """Run the whole training; returns the metadata written next to the weights."""
    from safetensors.torch import save_file

    from inference.synth.cohort import make_cohort

    torch.set_num_threads(int(cfg.get("threads", 2)))
    torch.manual_seed(int(cfg["seed"]))
    np.random.seed(int(cfg["seed"]) % (2**32))
    out = Path(cfg["out_dir"])
    out.mkdir(parents=True, exist_ok=True)
    co = cfg["cohorts"]
    t0 = time.time()
    pre = make_cohort(int(co["image_pretrain"]["seed"]), int(co["image_pretrain"]["n"]))
    trn = make_cohort(int(co["train"]["seed"]), int(co["train"]["n"]))
    val = make_cohort(int(co["validation"]["seed"]), int(co["validation"]["n"]))
    ens = cfg["ensemble"]
    model = R.RiskModel(n_members=int(ens["members"]), hidden=int(ens["hidden"]))
    for mem in model.members:
        for mod in mem.net:
            if isinstance(mod, nn.Dropout):
                mod.p = float(ens["dropout"])
    with open(out / "training_log.jsonl", "w", encoding="utf-8") as fh:
        _train_encoder(model.encoder, cfg["encoder"], pre, val, fh)
        del pre
        xr, xm, y = _matrix(model.encoder, trn)
        vr, vm, yv = _matrix(model.encoder, val)
        present = 1.0 - xm
        mean = (xr * present).sum(0) / np.maximum(present.sum(0), 1)
        var = (((xr - mean) ** 2) * present).sum(0) / np.maximum(present.sum(0), 1)
        std = np.sqrt(np.maximum(var, 1e-6))
        model.mean.copy_(torch.tensor(mean))
        model.std.copy_(torch.tensor(std))
        xt = model.standardise(torch.tensor(xr), torch.tensor(xm))
        mt = torch.tensor(xm)
        vt = model.standardise(torch.tensor(vr), torch.tensor(vm))
        vmt = torch.tensor(vm)
        yt = torch.tensor(y)
        lossf = nn.BCEWithLogitsLoss()
        for k, mem in enumerate(model.members):
            torch.manual_seed(int(cfg["seed"]) + 1000 * (k + 1))
            g = torch.Generator().manual_seed(int(cfg["seed"]) + k)
            boot = torch.randint(0, len(xt), (len(xt),), generator=g)  # bootstrap: members see different data
            opt = torch.optim.AdamW(mem.parameters(), lr=float(ens["lr"]), weight_decay=float(ens["weight_decay"]))
            best, best_state, bad = float("inf"), None, 0
            bs = int(ens["batch_size"])
            for ep in range(int(ens["epochs"])):
                mem.train()
                perm = boot[torch.randperm(len(boot), generator=g)]
                tot = 0.0
                for b in range(0, len(perm), bs):
                    sel = perm[b:b + bs]
                    loss = lossf(mem(xt[sel], mt[sel]), yt[sel])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    tot += float(loss.detach()) * len(sel)
                mem.eval()
                with torch.no_grad():
                    lv = mem(vt, vmt)
                    vloss = float(lossf(lv, torch.tensor(yv)))
                if ep % 5 == 0 or ep == int(ens["epochs"]) - 1:
                    _log(fh, {"stage": f"member{k}", "epoch": ep + 1, "train_loss": round(tot / len(perm), 4),
                              "val_loss": round(vloss, 4), "val_auc": round(auc(yv, lv.numpy()), 4)})
                if vloss < best - 1e-4:
                    best, bad = vloss, 0
                    best_state = {kk: vv.clone() for kk, vv in mem.state_dict().items()}
                else:
                    bad += 1
                    if bad >= int(ens["patience"]):
                        _log(fh, {"stage": f"member{k}", "early_stop_epoch": ep + 1, "best_val_loss": round(best, 4)})
                        break
            assert best_state is not None
            mem.load_state_dict(best_state)
        model.eval()
        with torch.no_grad():
            vl = model.member_logits(vt, vmt).mean(-1).numpy()
        raw_p = 1 / (1 + np.exp(-vl))
        temp = _fit_temperature(vl, yv)
        model.temperature.fill_(temp)
        cal_p = 1 / (1 + np.exp(-vl / temp))
        bins = int(cfg.get("ece_bins", 15))
        vmetrics = {
            "cohort": f"synthetic validation cohort seed {co['validation']['seed']} (n={len(val)})",
            "auc": round(auc(yv, cal_p), 4),
            "brier": round(brier(yv, cal_p), 4),
            "ece_15_bins": round(ece(yv, cal_p, bins), 4),
            "ece_15_bins_before_calibration": round(ece(yv, raw_p, bins), 4),
            "note": "temperature fitted on this cohort; held-out test metrics are in test_metrics",
        }
        _log(fh, {"stage": "calibration", "temperature": round(temp, 4), **vmetrics})
    wpath = out / R.WEIGHTS_FILE
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    # No safetensors __metadata__: its key order is not stable between runs, and
    # byte-identical files let anyone check a retrained model by its sha256.
    save_file(state, str(wpath))
    digest = sha256_file(wpath)
    nparams = sum(p.numel() for p in model.parameters())
    meta = {
        "name": cfg["name"],
        "version": str(cfg["version"]),
        "weights": R.WEIGHTS_FILE,
        "sha256": digest,
        "created_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": ".venv/bin/python -m inference.models.risk_train --config configs/risk.yaml",
        "architecture": {
            "name": "clinview.risk.multimodal_ensemble",
            "members": int(ens["members"]),
            "hidden": int(ens["hidden"]),
            "encoder": "3D CNN 32^3 (1 mm, HU -1000..400 scaled) -> 8-d tanh embedding (conv 1-8-16-32-32)",
            "member": "MLP [values x present (28), missing mask (28)] -> 32 -> 32 -> 1, ReLU, dropout",
            "parameters": int(nparams),
            "inputs": list(R.TAB_FEATURES) + [f"image_{i}" for i in range(R.EMBED_DIM)],
            "input_transforms": "log1p(pack_years, LAA%, solid component), log(size, count, CEA, CYFRA), growth = 365/VDT",
        },
        "normalisation": {"mean": [round(float(v), 6) for v in mean], "std": [round(float(v), 6) for v in std],
                          "note": "also stored in the weights file (hashed); missing inputs are zeroed after this"},
        "calibration": {"method": "temperature scaling of the ensemble mean logit", "temperature": round(temp, 6),
                        "fitted_on": f"validation cohort seed {co['validation']['seed']}"},
        "uncertainty": "interval = sigmoid((mean ± 1.96 sd of the member logits) / T)",
        "training_data": {
            "description": "SYNTHETIC cohort from inference.synth.cohort (generative model in its docstring); "
                           "no real patient data. Disjoint seeds per split.",
            "cohorts": co,
            "seconds": round(time.time() - t0, 1),
        },
        "validation_metrics": vmetrics,
        "intended_use": "decision-support research prototype; not validated on patients",
    }
    (out / R.METADATA_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {wpath} ({wpath.stat().st_size} bytes, sha256 {digest[:12]}...) in {time.time() - t0:.0f} s")
    return meta


def main(argv: list[str] | None = None) -> int:
    import yaml

    ap = argparse.ArgumentParser(prog="python -m inference.models.risk_train", description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/risk.yaml")
    args = ap.parse_args(argv)
    try:
        cfg = yaml.safe_load(Path(args.config).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        print(f"{args.config}: cannot read config ({exc})", file=sys.stderr)
        return 2
    train(cfg)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
