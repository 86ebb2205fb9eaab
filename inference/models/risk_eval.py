"""Evaluate the shipped risk model on the held-out synthetic test cohort.

``.venv/bin/python -m inference.models.risk_eval [--config configs/risk.yaml] [--n N]``

Prints AUC, Brier score and expected calibration error (15 equal-width bins)
of the model, and Brock's AUC/Brier/ECE on the same patients (those whose age
is known: Brock is not computed without age, see :mod:`inference.clinical.scoring`);
writes the reliability plot to ``resources/models/risk/reliability.png``.

The metric functions live here so that training, evaluation, tests and the
benchmark compute them one way.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["SAMPLE_N", "auc", "brier", "ece", "reliability_bins", "brock_for_patient", "score_cohort", "evaluate", "main"]


def auc(y: Sequence[float], p: Sequence[float]) -> float:
    """Area under the ROC curve (Mann-Whitney, ties count one half)."""
    from scipy.stats import rankdata

    y = np.asarray(y, bool)
    p = np.asarray(p, float)
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    r = rankdata(p)
    return float((r[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def brier(y: Sequence[float], p: Sequence[float]) -> float:
    """Mean squared error of the probabilities."""
    return float(np.mean((np.asarray(p, float) - np.asarray(y, float)) ** 2))


def reliability_bins(y: Sequence[float], p: Sequence[float], bins: int = 15) -> list[dict[str, float]]:
    """Equal-width bins on [0, 1]: count, mean predicted, observed frequency."""
    y = np.asarray(y, float)
    p = np.asarray(p, float)
    idx = np.minimum((p * bins).astype(int), bins - 1)
    out = []
    for b in range(bins):
        m = idx == b
        if m.any():
            out.append({"lo": b / bins, "hi": (b + 1) / bins, "n": int(m.sum()),
                        "mean_p": float(p[m].mean()), "observed": float(y[m].mean())})
    return out


def ece(y: Sequence[float], p: Sequence[float], bins: int = 15) -> float:
    """Expected calibration error: count-weighted |observed - predicted| over bins."""
    rb = reliability_bins(y, p, bins)
    n = sum(b["n"] for b in rb)
    return float(sum(b["n"] * abs(b["observed"] - b["mean_p"]) for b in rb) / max(n, 1))


def brock_for_patient(pt: Any) -> float | None:
    """Brock on the cohort patient's dominant nodule, with the app's own rules
    (:func:`inference.clinical.scoring.apply_guidelines`); ``None`` without age."""
    import copy

    from inference.clinical.scoring import apply_guidelines

    f = copy.deepcopy(pt.findings)
    apply_guidelines(f, pt.facts, prior_available=False)
    return f["nodules"][0].get("brock_probability")


def score_cohort(cohort: list[Any], *, root: Path | None = None, device: str = "cpu") -> np.ndarray:
    """Model probabilities for cohort patients (batched; same maths as predict_risk)."""
    import torch

    from inference.models.risk import EMBED_DIM, extract_features, load_risk_model, patch_to_tensor

    m = load_risk_model(root, device=device).model
    raws, masks = [], []
    for i in range(0, len(cohort), 128):
        chunk = cohort[i:i + 128]
        patches = [pt.patch for pt in chunk]
        have = [k for k, ptc in enumerate(patches) if ptc is not None]
        emb = np.zeros((len(chunk), EMBED_DIM), np.float32)
        if have:
            with torch.no_grad():
                e, _ = m.encoder(patch_to_tensor(np.stack([patches[k] for k in have])).to(device))
            emb[have] = e.cpu().numpy()
        for k, pt in enumerate(chunk):
            v, ms, *_ = extract_features(pt.findings, pt.facts, pt.genomics, pt.labs)
            raws.append(np.concatenate([v, emb[k]]))
            masks.append(np.concatenate([ms, np.full(EMBED_DIM, 0.0 if patches[k] is not None else 1.0, np.float32)]))
    raw = torch.tensor(np.array(raws), dtype=torch.float32, device=device)
    miss = torch.tensor(np.array(masks), dtype=torch.float32, device=device)
    with torch.no_grad():
        return torch.sigmoid(m.calibrated_logit(m.standardise(raw, miss), miss)).cpu().numpy()


def plot_reliability(y: np.ndarray, p_model: np.ndarray, p_brock: np.ndarray | None, path: Path, bins: int, title: str) -> None:
    """Reliability diagram (matplotlib, Agg; matplotlib comes with captum)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, axh) = plt.subplots(2, 1, figsize=(5.2, 6.2), gridspec_kw={"height_ratios": [3, 1]}, sharex=True)
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="perfect calibration")
    rb = reliability_bins(y, p_model, bins)
    ax.plot([b["mean_p"] for b in rb], [b["observed"] for b in rb], "o-", color="C0",
            label=f"risk model (ECE {ece(y, p_model, bins):.3f})")
    if p_brock is not None:
        ok = ~np.isnan(p_brock)
        rbb = reliability_bins(y[ok], p_brock[ok], bins)
        ax.plot([b["mean_p"] for b in rbb], [b["observed"] for b in rbb], "s--", color="C1", alpha=0.8,
                label=f"Brock 2b (ECE {ece(y[ok], p_brock[ok], bins):.3f})")
    ax.set_ylabel("observed frequency of cancer")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper left", fontsize=8)
    axh.hist(p_model, bins=bins, range=(0, 1), color="C0", alpha=0.7)
    axh.set_yscale("log")
    axh.set_xlabel("predicted probability")
    axh.set_ylabel("patients")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def evaluate(cfg: dict[str, Any], *, n: int | None = None, root: Path | None = None, plot: Path | None = None) -> dict[str, Any]:
    """All metrics on the test cohort (optionally its first ``n`` patients)."""
    from inference.synth.cohort import make_cohort

    tc = cfg["cohorts"]["test"]
    cohort = make_cohort(int(tc["seed"]), int(n or tc["n"]))
    y = np.array([pt.malignant for pt in cohort], float)
    p = score_cohort(cohort, root=root)
    pb = np.array([np.nan if (b := brock_for_patient(pt)) is None else b for pt in cohort], float)
    ok = ~np.isnan(pb)
    bins = int(cfg.get("ece_bins", 15))
    res = {
        "cohort": f"synthetic test cohort seed {tc['seed']}, first {len(cohort)} patients, prevalence {y.mean():.3f}",
        "n": len(cohort),
        "model": {"auc": auc(y, p), "brier": brier(y, p), "ece": ece(y, p, bins)},
        "brock_subset_n": int(ok.sum()),
        "model_on_brock_subset": {"auc": auc(y[ok], p[ok]), "brier": brier(y[ok], p[ok]), "ece": ece(y[ok], p[ok], bins)},
        "brock": {"auc": auc(y[ok], pb[ok]), "brier": brier(y[ok], pb[ok]), "ece": ece(y[ok], pb[ok], bins)},
    }
    if plot is not None:
        plot_reliability(y, p, pb, plot, bins, f"Held-out synthetic test cohort (seed {tc['seed']}, n={len(cohort)}, prevalence {y.mean():.2f})")
    return res


SAMPLE_N = 300


def _rounded(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: _rounded(v) for k, v in d.items()}
    if isinstance(d, float):
        return round(d, 4)
    return d


def main(argv: list[str] | None = None) -> int:
    import yaml

    ap = argparse.ArgumentParser(prog="python -m inference.models.risk_eval", description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/risk.yaml")
    ap.add_argument("--n", type=int, default=None, help="evaluate only the first N test patients")
    ap.add_argument("--no-plot", action="store_true")
    ap.add_argument("--record", action="store_true",
                    help="write the test metrics (full cohort and a 300-patient reproducibility sample) into "
                         "metadata.json (the weights and their sha256 are not touched)")
    args = ap.parse_args(argv)
    try:
        cfg = yaml.safe_load(Path(args.config).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        print(f"{args.config}: cannot read config ({exc})", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(int(cfg.get("threads", 2)))
    plot = None if args.no_plot else Path(cfg["out_dir"]) / "reliability.png"
    res = evaluate(cfg, n=args.n, plot=plot)
    print(json.dumps(res, indent=2))
    if args.record:
        sample = evaluate(cfg, n=SAMPLE_N)
        meta_path = Path(cfg["out_dir"]) / "metadata.json"
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        meta["test_metrics"] = _rounded(res)
        meta["reproducibility_sample"] = {
            "what": f"first {SAMPLE_N} patients of the test cohort; tests/inference/test_risk_model.py recomputes these",
            **_rounded(sample["model"]),
        }
        meta_path.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        print(f"recorded test metrics in {meta_path}")
    if plot is not None:
        print(f"reliability plot: {plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
