"""Multimodal deep risk model: probability that the patient's dominant nodule is cancer.

Inputs (all optional except the nodule itself), each with an explicit *missing*
bit so that the network knows what it was not told -- a missing value is
zeroed **and** flagged, never silently replaced by an average:

* findings: the dominant nodule (the guideline scoring's most suspicious one,
  :func:`dominant_nodule`): size, type, solid component, spiculation, upper lobe,
  nodule count, growth rate (365 / VDT; 0 when not growing), CT %LAA-950;
* clinical facts: age, sex, pack-years, smoking status, family history;
* genomics (contract ``genomics`` object): EGFR / KRAS / other-driver flags;
* labs (contract ``labs`` list): CEA and CYFRA 21-1 (ng/mL);
* image: a 32^3 patch of 1 mm voxels around the nodule centre, encoded by a
  small 3D CNN into an 8-number embedding.

Model: the CNN encoder, then a deep ensemble of five small MLPs over
``[standardised values x present, missing mask]``; the ensemble's mean logit is
temperature-scaled (fitted on the validation cohort). The reported interval is
``sigmoid((mean ± 1.96 sd_members) / T)``: the members' disagreement
(epistemic uncertainty), not a confidence interval of a population estimate.
Explanations are Integrated Gradients (captum) from an "average training
patient" baseline, in log-odds, grouped per input; they sum (up to the
integration error) to the patient's logit minus the baseline logit.

Training data: the synthetic cohort of :mod:`inference.synth.cohort`
(see ``configs/risk.yaml`` and ``metadata.json``). **It has not seen a real
patient**; its numbers are for the software, not for clinical use.

Weights: ``resources/models/risk/model.safetensors`` with ``metadata.json``.
Loading follows the catalogue's rules, implemented privately here because the
risk folder also holds its reliability plot and training log (the shared
catalogue refuses files it does not know): the sha256 of the weights file must
equal ``metadata.json``'s; only ``.safetensors`` is read (no pickle); any
other unexpected file is refused with :class:`inference.errors.ModelIntegrityError`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from inference.clinical.scoring import index_nodule
from inference.errors import ModelIntegrityError
from inference.models.catalogue import weights_mismatch
from inference.paths import resources_dir
from inference.types import ClinicalFacts, Volume

__all__ = [
    "MODEL_NAME",
    "TAB_FEATURES",
    "EMBED_DIM",
    "FEATURE_LABELS",
    "PatchEncoder",
    "RiskMLP",
    "RiskModel",
    "dominant_nodule",
    "extract_features",
    "crop_patch",
    "patch_to_tensor",
    "load_risk_model",
    "predict_risk",
]

MODEL_NAME = "clinview-risk"
WEIGHTS_FILE = "model.safetensors"
METADATA_FILE = "metadata.json"
_ALLOWED_EXTRA = {METADATA_FILE, "reliability.png", "training_log.jsonl", "README.md"}

TAB_FEATURES: tuple[str, ...] = (
    "age_years",
    "female",
    "pack_years",
    "current_smoker",
    "former_smoker",
    "family_history",
    "emphysema_laa950_percent",
    "nodule_size_mm",
    "part_solid",
    "ground_glass",
    "solid_component_mm",
    "spiculated",
    "upper_lobe",
    "nodule_count",
    "growth_rate_per_year",
    "egfr_driver",
    "kras_driver",
    "other_driver",
    "cea_ng_ml",
    "cyfra21_1_ng_ml",
)
EMBED_DIM = 8
N_VALUES = len(TAB_FEATURES) + EMBED_DIM

#: Words for the explanation list; features sharing a group are summed.
FEATURE_LABELS: dict[str, str] = {
    "age_years": "age",
    "female": "sex",
    "pack_years": "pack-years",
    "current_smoker": "smoking status",
    "former_smoker": "smoking status",
    "family_history": "family history of lung cancer",
    "emphysema_laa950_percent": "emphysema (CT %LAA-950)",
    "nodule_size_mm": "nodule size",
    "part_solid": "nodule type",
    "ground_glass": "nodule type",
    "solid_component_mm": "solid component",
    "spiculated": "spiculation",
    "upper_lobe": "upper-lobe location",
    "nodule_count": "number of nodules",
    "growth_rate_per_year": "growth (volume doubling time)",
    "egfr_driver": "plasma driver mutations",
    "kras_driver": "plasma driver mutations",
    "other_driver": "plasma driver mutations",
    "cea_ng_ml": "CEA",
    "cyfra21_1_ng_ml": "CYFRA 21-1",
    **{f"image_{i}": "nodule image (CNN)" for i in range(EMBED_DIM)},
}

_DRIVER_OTHER = {"ALK", "ROS1", "RET", "MET", "BRAF", "ERBB2", "NTRK1", "NTRK2", "NTRK3", "NRG1"}


# --------------------------------------------------------------------------- networks
class PatchEncoder(nn.Module):
    """3D CNN: 32^3 HU patch -> 8-number embedding (+ an auxiliary logit used in pre-training)."""

    def __init__(self, embed_dim: int = EMBED_DIM) -> None:
        super().__init__()
        # BatchNorm keeps the small network from collapsing to the prevalence
        # (a constant output) early in training, which plain ReLU convs did.
        self.features = nn.Sequential(
            nn.Conv3d(1, 8, 3, stride=2, padding=1), nn.BatchNorm3d(8), nn.ReLU(),
            nn.Conv3d(8, 16, 3, stride=2, padding=1), nn.BatchNorm3d(16), nn.ReLU(),
            nn.Conv3d(16, 32, 3, padding=1), nn.BatchNorm3d(32), nn.ReLU(),
            nn.MaxPool3d(2),
            nn.Conv3d(32, 32, 3, padding=1), nn.BatchNorm3d(32), nn.ReLU(),
            nn.AdaptiveAvgPool3d(1),
        )
        self.embed = nn.Linear(32, embed_dim)
        self.head = nn.Linear(embed_dim, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        e = torch.tanh(self.embed(self.features(x).flatten(1)))
        return e, self.head(e).squeeze(-1)


class RiskMLP(nn.Module):
    """One ensemble member: ``[values x present, missing mask] -> logit``."""

    def __init__(self, n_values: int = N_VALUES, hidden: int = 32, dropout: float = 0.1) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(2 * n_values, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, 1),
        )

    def forward(self, values: torch.Tensor, missing: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([values * (1.0 - missing), missing], dim=-1)).squeeze(-1)


class RiskModel(nn.Module):
    """Encoder + standardisation + ensemble + temperature, as shipped."""

    def __init__(self, n_members: int = 5, hidden: int = 32) -> None:
        super().__init__()
        self.encoder = PatchEncoder()
        self.members = nn.ModuleList([RiskMLP(hidden=hidden) for _ in range(n_members)])
        self.register_buffer("mean", torch.zeros(N_VALUES))
        self.register_buffer("std", torch.ones(N_VALUES))
        self.register_buffer("temperature", torch.ones(()))

    def standardise(self, raw: torch.Tensor, missing: torch.Tensor) -> torch.Tensor:
        """(raw - mean) / std, then zero where missing (the mask says it was not given)."""
        return ((raw - self.mean) / self.std) * (1.0 - missing)

    def member_logits(self, values: torch.Tensor, missing: torch.Tensor) -> torch.Tensor:
        """(batch, members) uncalibrated logits from standardised values."""
        return torch.stack([m(values, missing) for m in self.members], dim=-1)

    def calibrated_logit(self, values: torch.Tensor, missing: torch.Tensor) -> torch.Tensor:
        return self.member_logits(values, missing).mean(-1) / self.temperature


# --------------------------------------------------------------------------- features
def _kind(n: dict[str, Any]) -> str:
    return str(n.get("type") or "").strip().lower().replace("_", "-")


def dominant_nodule(findings: dict[str, Any]) -> dict[str, Any] | None:
    """The nodule the patient-level risk is about.

    Findings that went through the guideline scoring (their nodules carry ``brock_probability``, even
    ``null``): the same nodule as Fleischner's recommendation,
    :func:`inference.clinical.scoring.index_nodule` (highest Lung-RADS category, then Brock, then solid
    component, then size).
    Findings without it -- the synthetic training cohort, which names its index nodule as its largest --
    the largest long axis (then mean diameter). Either way only nodules not rejected by the reader and
    not calcified.
    """
    nodules = [n for n in findings.get("nodules", []) or [] if n.get("review") != "rejected"]
    if any("brock_probability" in n for n in nodules):
        return index_nodule(nodules)
    cand = [n for n in nodules if _kind(n) in ("solid", "part-solid", "ground-glass")]
    if not cand:
        return None

    def size(n: dict[str, Any]) -> tuple[float, float]:
        return (float(n.get("long_axis_mm") or n.get("mean_diameter_mm") or 0.0), float(n.get("mean_diameter_mm") or 0.0))

    return max(cand, key=size)


def _lab_value(labs: list[dict[str, Any]] | None, names: tuple[str, ...], loincs: tuple[str, ...]) -> tuple[float | None, str | None]:
    """Most recent numeric value in ng/mL (µg/L is the same unit); else a note why not."""
    if not labs:
        return None, None
    hits = []
    for lab in labs:
        name = str(lab.get("name") or "").lower()
        if str(lab.get("loinc") or "") in loincs or any(k in name for k in names):
            hits.append(lab)
    if not hits:
        return None, None
    hits.sort(key=lambda r: str(r.get("date") or ""))
    lab = hits[-1]
    unit = str(lab.get("unit") or "").replace("μ", "µ").lower()
    try:
        v = float(lab.get("value"))
    except (TypeError, ValueError):
        return None, f"{lab.get('name')}: value {lab.get('value')!r} is not a number, treated as missing"
    if unit not in ("ng/ml", "µg/l", "ug/l"):
        return None, f"{lab.get('name')}: unit {lab.get('unit')!r} not ng/mL, treated as missing"
    if v <= 0:
        return None, f"{lab.get('name')}: value {v} <= 0, treated as missing"
    return v, None


def extract_features(
    findings: dict[str, Any],
    facts: ClinicalFacts | None,
    genomics: dict[str, Any] | None,
    labs: list[dict[str, Any]] | None,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any] | None, list[str], dict[str, str]]:
    """Raw (transformed, not standardised) tabular values and their missing mask.

    Returns
    -------
    (values, missing, nodule, notes, shown)
        ``values``/``missing`` have ``len(TAB_FEATURES)`` entries (missing = 1.0
        where not given; the value there is 0 and is never used); ``nodule`` the
        dominant nodule or ``None``; ``notes`` one line per input that was
        present but unusable; ``shown`` human-readable input values for the
        explanation.
    """
    f = facts or ClinicalFacts()
    patient = findings.get("patient") or {}
    vals = np.zeros(len(TAB_FEATURES), np.float32)
    miss = np.ones(len(TAB_FEATURES), np.float32)
    notes: list[str] = []
    shown: dict[str, str] = {}
    idx = {k: i for i, k in enumerate(TAB_FEATURES)}

    def put(name: str, value: float, text: str) -> None:
        vals[idx[name]] = float(value)
        miss[idx[name]] = 0.0
        shown[FEATURE_LABELS[name]] = text

    age = f.age_years if f.age_years is not None else patient.get("age_years")
    if age is not None:
        put("age_years", float(age), f"{float(age):.0f} y")
    sex = f.sex if f.sex is not None else patient.get("sex")
    if sex in ("F", "M"):
        put("female", 1.0 if sex == "F" else 0.0, "female" if sex == "F" else "male")
    if f.smoking_status in ("never", "former", "current"):
        put("current_smoker", float(f.smoking_status == "current"), f"{f.smoking_status} smoker")
        put("former_smoker", float(f.smoking_status == "former"), f"{f.smoking_status} smoker")
    py = f.pack_years
    if py is None and f.smoking_status == "never":
        py = 0.0
    if py is not None and py >= 0:
        put("pack_years", math.log1p(float(py)), f"{float(py):g} pack-years")
    if f.family_history_lung_cancer is not None:
        put("family_history", float(bool(f.family_history_lung_cancer)), "yes" if f.family_history_lung_cancer else "no")
    laa = (findings.get("lungs") or {}).get("emphysema_laa950_percent")
    if laa is not None and float(laa) >= 0:
        put("emphysema_laa950_percent", math.log1p(float(laa)), f"LAA-950 {float(laa):.1f} %")

    nod = dominant_nodule(findings)
    if nod is not None:
        active = [n for n in findings.get("nodules", []) or [] if n.get("review") != "rejected"]
        size = nod.get("long_axis_mm") or nod.get("mean_diameter_mm")
        if size:
            put("nodule_size_mm", math.log(float(size)), f"{float(size):.1f} mm long axis")
        kind = _kind(nod)
        put("part_solid", float(kind == "part-solid"), kind)
        put("ground_glass", float(kind == "ground-glass"), kind)
        solid = nod.get("solid_component_mm")
        if kind == "ground-glass":
            solid = 0.0
        elif kind == "solid" and solid is None:
            solid = nod.get("mean_diameter_mm")
        if solid is not None:
            put("solid_component_mm", math.log1p(float(solid)), f"{float(solid):.1f} mm")
        if nod.get("spiculated") is not None:
            put("spiculated", float(bool(nod["spiculated"])), "yes" if nod["spiculated"] else "no")
        upper = (nod.get("location") or {}).get("upper_lobe")
        if upper is not None:
            put("upper_lobe", float(bool(upper)), "yes" if upper else "no")
        put("nodule_count", math.log(max(1, len(active))), f"{len(active)}")
        g = nod.get("growth")
        if g:
            vdt = g.get("volume_doubling_time_days")
            if g.get("status") == "new":
                pass  # a new nodule has no doubling time: growth stays missing (masked)
            elif vdt:
                put("growth_rate_per_year", min(365.0 / float(vdt), 10.0), f"VDT {float(vdt):.0f} d")
            else:
                put("growth_rate_per_year", 0.0, "no growth")
    # A genomics object without a ``variants`` list (e.g. ``{}`` when a file could
    # not be used) is *not* a negative test: it stays masked.
    if genomics is not None and isinstance(genomics.get("variants"), list):
        genes = {str(v.get("gene") or "").upper() for v in genomics.get("variants", []) or []}
        put("egfr_driver", float("EGFR" in genes), "EGFR detected" if "EGFR" in genes else "none detected")
        put("kras_driver", float("KRAS" in genes), "KRAS detected" if "KRAS" in genes else "none detected")
        other = sorted(genes & _DRIVER_OTHER)
        put("other_driver", float(bool(other)), ", ".join(other) + " detected" if other else "none detected")
        shown["plasma driver mutations"] = ", ".join(sorted(genes & ({"EGFR", "KRAS"} | _DRIVER_OTHER))) or "none detected"
    cea, note = _lab_value(labs, ("cea", "carcinoembryonic"), ("2039-6",))
    if note:
        notes.append(note)
    if cea is not None:
        put("cea_ng_ml", math.log(cea), f"{cea:g} ng/mL")
    cyf, note = _lab_value(labs, ("cyfra",), ())
    if note:
        notes.append(note)
    if cyf is not None:
        put("cyfra21_1_ng_ml", math.log(cyf), f"{cyf:g} ng/mL")
    return vals, miss, nod, notes, shown


def crop_patch(volume: Volume, center_zyx: Any, size: int = 32) -> np.ndarray:
    """A ``size``^3 patch of 1 mm voxels centred on a (z, y, x) voxel index.

    Resampled with trilinear interpolation in index space scaled by the
    voxel spacing (the patch axes follow the scan's axes, so a tilted
    acquisition gives a tilted patch, which the rotation-agnostic
    encoder tolerates). Outside the scan: -1000 HU (air).
    """
    from scipy.ndimage import map_coordinates

    c = np.asarray(center_zyx, float)
    off = np.arange(size, dtype=float) - (size - 1) / 2.0
    sz, sy, sx = volume.spacing
    zz, yy, xx = np.meshgrid(c[0] + off / sz, c[1] + off / sy, c[2] + off / sx, indexing="ij")
    return map_coordinates(
        np.asarray(volume.array, np.float32), [zz, yy, xx], order=1, mode="constant", cval=-1000.0
    ).astype(np.float32)


def patch_to_tensor(patches: np.ndarray) -> torch.Tensor:
    """HU (N, 32, 32, 32) -> network input (N, 1, 32, 32, 32): lung window scaled to ~0..1.4."""
    x = np.clip((np.asarray(patches, np.float32) + 1000.0) / 1000.0, 0.0, 1.4)
    return torch.from_numpy(x).unsqueeze(1)


# --------------------------------------------------------------------------- loading
@dataclass(frozen=True)
class LoadedRisk:
    model: RiskModel
    metadata: dict[str, Any]
    sha256: str
    device: str


_CACHE: dict[tuple[str, str], LoadedRisk] = {}


def model_folder(root: Path | None = None) -> Path:
    return Path(root) if root is not None else resources_dir() / "models" / "risk"


def load_risk_model(root: Path | None = None, *, device: str = "cpu") -> LoadedRisk:
    """Load the shipped risk model after checking its sha256.

    Raises
    ------
    ModelIntegrityError
        No metadata, weights missing, checksum mismatch, an unexpected file in
        the folder, or tensors that do not fit the architecture.
    """
    from safetensors.torch import load_file

    d = model_folder(root)
    meta_path = d / METADATA_FILE
    if not meta_path.is_file():
        raise ModelIntegrityError("risk model metadata missing", where=str(meta_path),
                                  fix="run: .venv/bin/python -m inference.models.risk_train --config configs/risk.yaml")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelIntegrityError(f"metadata is not valid JSON ({exc})", where=str(meta_path),
                                  fix="reinstall clinview") from exc
    weights_name = str(meta.get("weights", WEIGHTS_FILE))
    if not weights_name.endswith(".safetensors"):
        raise ModelIntegrityError(f"weights {weights_name!r} are not .safetensors (refused: pickle can run code)",
                                  where=str(meta_path), fix="reinstall clinview")
    for p in sorted(d.iterdir()):
        if p.name not in _ALLOWED_EXTRA and p.name != weights_name:
            raise ModelIntegrityError("unknown file in the risk model folder", where=str(p),
                                      fix="remove it, or reinstall clinview")
    wpath = d / weights_name
    if not wpath.is_file():
        raise ModelIntegrityError("risk model weights missing", where=str(wpath), fix="reinstall clinview")
    digest, mismatch = weights_mismatch(wpath, meta.get("sha256"))
    if mismatch:
        raise ModelIntegrityError(mismatch, where=str(wpath), fix="reinstall clinview")
    key = (str(wpath.resolve()) + digest, device)
    if key in _CACHE:
        return _CACHE[key]
    arch = meta.get("architecture", {})
    model = RiskModel(n_members=int(arch.get("members", 5)), hidden=int(arch.get("hidden", 32)))
    try:
        state = load_file(str(wpath))
        model.load_state_dict(state, strict=True)
    except (RuntimeError, OSError, ValueError) as exc:
        raise ModelIntegrityError(f"weights do not fit the architecture ({str(exc).splitlines()[0]})",
                                  where=str(wpath), fix="reinstall clinview") from exc
    model.eval().to(device)
    loaded = LoadedRisk(model=model, metadata=meta, sha256=digest, device=device)
    _CACHE[key] = loaded
    return loaded


def _pick_device(device: str, notes: list[str]) -> str:
    if device in ("auto", "cuda") or device.startswith("cuda"):
        if torch.cuda.is_available():
            return "cuda" if device == "auto" else device
        if device != "auto":
            notes.append("Risk model: CUDA requested but not available, ran on CPU")
    return "cpu"


# --------------------------------------------------------------------------- prediction
def _integrated_gradients(
    model: RiskModel, values: torch.Tensor, missing: torch.Tensor, *, steps: int = 64
) -> tuple[torch.Tensor, torch.Tensor]:
    """Riemann-midpoint Integrated Gradients from a zero baseline (fallback without captum)."""
    alphas = (torch.arange(steps, dtype=values.dtype, device=values.device) + 0.5) / steps
    path = (alphas[:, None] * values).detach().requires_grad_(True)
    out = model.calibrated_logit(path, missing.expand(steps, -1))
    (grad,) = torch.autograd.grad(out.sum(), path)
    attr = values * grad.mean(0, keepdim=True)
    with torch.no_grad():
        delta = attr.sum() - (model.calibrated_logit(values, missing) - model.calibrated_logit(torch.zeros_like(values), missing))
    return attr, delta.reshape(1)


def predict_risk(
    findings: dict[str, Any],
    facts: ClinicalFacts | None,
    *,
    volume: Volume | None,
    genomics: dict[str, Any] | None,
    labs: list[dict[str, Any]] | None,
    device: str = "cpu",
    patch: np.ndarray | None = None,
    root: Path | None = None,
    explain: bool = True,
) -> dict[str, Any]:
    """The findings.json ``risk`` object for this patient.

    Parameters
    ----------
    findings : findings dict (after nodule detection; growth used when present).
    facts : clinical record, or ``None``.
    volume : the CT; the dominant nodule's patch is cropped around its
        ``center_voxel_zyx``. ``None``: the image input is masked.
    genomics : the contract's ``genomics`` object, or ``None`` (masked).
    labs : the contract's ``labs`` list, or ``None`` (masked).
    device : ``cpu``, ``cuda`` or ``auto``.
    patch : a ready HU patch (32^3, 1 mm) instead of cropping ``volume`` (the
        synthetic cohort uses this).
    root : model folder (tests); default ``resources/models/risk``.
    explain : compute Integrated-Gradients contributions.

    Returns
    -------
    dict
        ``{model: {name, version, sha256}, probability, interval, contributions,
        missing, nodule_id, source, notes}``; ``probability`` is ``None`` with a
        ``reason`` when there is no non-calcified nodule to assess.

    Raises
    ------
    ModelIntegrityError
        The weights are missing or fail the checksum.
    """
    notes: list[str] = []
    dev = _pick_device(device, notes)
    loaded = load_risk_model(root, device=dev)
    meta = loaded.metadata
    out: dict[str, Any] = {
        "model": {"name": meta.get("name", MODEL_NAME), "version": meta.get("version"), "sha256": loaded.sha256},
        "device": dev,
    }
    vals, miss, nod, lab_notes, shown = extract_features(findings, facts, genomics, labs)
    notes += [f"Risk model: {n}" for n in lab_notes]
    if genomics is not None and isinstance(genomics.get("variants"), list):
        notes.append(
            "Risk model: genomic variants enter as driver-present flags (EGFR, KRAS, other); the model learnt them "
            "from a synthetic plasma cfDNA panel, so a tumour-tissue result is read the same way"
        )
    if nod is None:
        out.update(probability=None, interval=None, contributions=[], missing=[], nodule_id=None,
                   reason="no non-calcified, non-rejected nodule: the model assesses a nodule",
                   source=f"{out['model']['name']} {out['model']['version']}", notes=notes)
        return out
    if patch is None and volume is not None and nod.get("center_voxel_zyx") is not None:
        patch = crop_patch(volume, nod["center_voxel_zyx"])
    elif patch is None:
        notes.append("Risk model: no CT patch for the nodule (no volume or no centre), image input masked")
    model = loaded.model
    with torch.no_grad():
        if patch is not None:
            emb, _ = model.encoder(patch_to_tensor(patch[None]).to(dev))
            emb_np = emb.cpu().numpy()[0]
            img_miss = np.zeros(EMBED_DIM, np.float32)
        else:
            emb_np = np.zeros(EMBED_DIM, np.float32)
            img_miss = np.ones(EMBED_DIM, np.float32)
    raw = torch.from_numpy(np.concatenate([vals, emb_np]).astype(np.float32))[None].to(dev)
    missing = torch.from_numpy(np.concatenate([miss, img_miss]))[None].to(dev)
    values = model.standardise(raw, missing)
    with torch.no_grad():
        ml = model.member_logits(values, missing)[0]
        t = model.temperature
        mu, sd = ml.mean(), ml.std(unbiased=True)
        p = torch.sigmoid(mu / t).item()
        lo = torch.sigmoid((mu - 1.96 * sd) / t).item()
        hi = torch.sigmoid((mu + 1.96 * sd) / t).item()
    names = list(TAB_FEATURES) + [f"image_{i}" for i in range(EMBED_DIM)]
    missing_names: list[str] = []
    for nm, m in zip(names, missing[0].cpu().numpy()):
        lab = FEATURE_LABELS[nm]
        if m > 0.5 and lab not in missing_names:
            missing_names.append(lab)
    contributions: list[dict[str, Any]] = []
    baseline_logit = None
    if explain:
        base = torch.zeros_like(values)
        try:
            from captum.attr import IntegratedGradients
        except ImportError:  # captum is a declared dependency; keep explanations if it is absent anyway
            attr, delta = _integrated_gradients(model, values, missing, steps=64)
            notes.append("Risk model: captum not installed, Integrated Gradients computed by clinview's own code")
        else:
            ig = IntegratedGradients(lambda v, m: model.calibrated_logit(v, m))
            attr, delta = ig.attribute(values, baselines=base, additional_forward_args=(missing,), n_steps=64,
                                       return_convergence_delta=True)
        with torch.no_grad():
            baseline_logit = float(model.calibrated_logit(base, missing)[0])
        grouped: dict[str, float] = {}
        for nm, a, m in zip(names, attr[0].detach().cpu().numpy(), missing[0].cpu().numpy()):
            if m > 0.5:
                continue
            lab = FEATURE_LABELS[nm]
            grouped[lab] = grouped.get(lab, 0.0) + float(a)
        for lab, a in sorted(grouped.items(), key=lambda kv: -abs(kv[1])):
            contributions.append({
                "feature": lab,
                "value": round(a, 4),
                "input": shown.get(lab, "image patch" if lab.startswith("nodule image") else ""),
                "direction": "raised" if a > 0 else "lowered",
            })
        if abs(float(delta[0])) > 0.05:
            notes.append(f"Risk model: attribution integration error {float(delta[0]):.3f} log-odds")
    out.update(
        probability=round(p, 6),
        interval=[round(min(lo, p), 6), round(max(hi, p), 6)],
        logit=round(float(mu / t), 4),
        contributions=contributions,
        baseline_logit=None if baseline_logit is None else round(baseline_logit, 4),
        missing=missing_names,
        nodule_id=nod.get("id"),
        source=(
            f"{out['model']['name']} v{out['model']['version']} (multimodal deep ensemble of "
            f"{len(model.members)}, temperature-scaled; trained on the SYNTHETIC cohort only, not validated on "
            "patients). Interval: ensemble spread (±1.96 sd of member logits). Contributions: Integrated "
            "Gradients in log-odds versus an average training patient; missing inputs are masked, not filled."
        ),
        notes=notes,
    )
    return out
