"""Synthetic screening cohort for training and evaluating the multimodal risk model.

**This is a synthetic construct**, not data from people. Its numbers were chosen
so that the published Brock model is informative but not the whole truth,
which lets us check that the multimodal model uses what Brock cannot see
(smoking dose, growth, blood and plasma markers, nodule margin in the image)
and that missing inputs are handled. Its AUCs say nothing about performance
on real patients.

Generative model (one dominant nodule per patient, plus count - 1 small bystanders)
----------------------------------------------------------------
Patient
    age ~ U(50, 80) y; female ~ Bern(0.45);
    smoking never / former / current = 0.15 / 0.45 / 0.40;
    pack-years = 0 (never) or 10 + Gamma(2, 12);
    family history ~ Bern(0.12);
    emphysema %LAA-950 ~ LogNormal(log(1 + 0.12 * pack-years), 0.6);
    nodule count = 1 + Poisson(1.5); the bystanders are smooth solid 2.5-5 mm
    nodules, always smaller than the dominant one.
Malignancy (latent, then observed as the label)
    logit = -2.3 + 0.04 (age - 65) + 0.25 female + 0.5 family + 0.02 (pack-years - 20)
            + 0.4 current + 0.05 (LAA - 5) - 0.15 (count - 2) + u,  u ~ N(0, 0.5)
    (``u`` is unobserved risk.) Prevalence is about 17 %: enriched relative to
    screening (1-4 %) so that AUC and calibration are estimable on a few
    thousand patients.
Dominant nodule given malignancy (malignant / benign)
    type solid, part-solid, ground-glass = 0.60/0.25/0.15 / 0.75/0.07/0.18;
    long axis ~ LogNormal(log 14, 0.45) / LogNormal(log 6.5, 0.45), clipped 4-30 mm;
    short axis = long x U(0.7, 1.0);
    spiculated 0.45 / 0.08; upper lobe 0.65 / 0.42; juxtapleural 0.07 / 0.20;
    solid part of part-solid = total x U(0.4, 0.8) / U(0.1, 0.4);
    **margin lobulation** (image only, not in the findings) amplitude
    U(0.10, 0.30) / U(0.0, 0.08).
Growth (a prior CT exists with p = 0.4)
    malignant: VDT ~ LogNormal(log 200, 0.4) d (solid), LogNormal(log 500, 0.4) (subsolid);
    benign: no growth (p = 0.75) or VDT ~ LogNormal(log 900, 0.4).
Plasma cfDNA panel (available with p = 0.5)
    malignant: EGFR p = 0.40 (female never-smoker) or 0.15, KRAS 0.25 (ever smoker) or 0.05,
    other driver 0.08; benign: each 0.01 (false positives).
Labs
    CEA (available p = 0.7, ng/mL): benign LogNormal(log(2.0 + 1.5 current), 0.5),
    malignant LogNormal(log 4.5, 0.7); CYFRA 21-1 (available p = 0.5, ng/mL):
    benign LogNormal(log 1.8, 0.4), malignant LogNormal(log 3.2, 0.6).
Missing completely at random
    age 3 %, sex 3 %, smoking status 8 % (then pack-years too), pack-years 15 %,
    family history 25 %, %LAA-950 10 %, lobe 5 %, image 5 %.
Image patch
    32^3 voxels of 1 mm around the nodule centre: lung parenchyma (-860 HU,
    correlated + white noise of random strength), 2-9 vessels, 0-2 airways,
    a chest wall (always for juxtapleural nodules, else p = 0.3), the nodule
    as a lobulated ellipsoid (solid +30 HU; part-solid: -550 HU halo around a
    solid core; ground glass -600 HU), spicules as thin strands (-50 HU),
    blur of random width (kernel). The context varies independently of
    malignancy so that the encoder learns the nodule, not its surroundings.
    Rendering is cheap (~10 ms) on purpose.

Cohorts are reproducible from their seed; training, validation and test use
disjoint seeds (see ``configs/risk.yaml``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from inference.types import ClinicalFacts

__all__ = ["PATCH_SIZE", "CohortPatient", "make_cohort", "render_patch", "patient_findings"]

PATCH_SIZE = 32  # voxels of 1 mm


@dataclass(frozen=True)
class CohortPatient:
    """One synthetic patient: the inputs as the app would see them, and the truth.

    ``findings`` follows the findings.json contract (one nodule, patient and
    lungs blocks), ``facts`` the clinical record, ``genomics``/``labs`` the
    contract's objects (``None`` when that test was not done). ``patch`` is
    the HU image around the nodule (``None`` when no image).
    """

    patient_id: str
    malignant: bool
    findings: dict[str, Any]
    facts: ClinicalFacts
    genomics: dict[str, Any] | None
    labs: list[dict[str, Any]] | None
    patch_params: dict[str, Any] | None
    truth: dict[str, Any] = field(default_factory=dict)

    @property
    def patch(self) -> np.ndarray | None:
        """Rendered on demand (keeps a cohort of thousands small in memory)."""
        if self.patch_params is None:
            return None
        return render_patch(**self.patch_params)


def _unit(rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=3)
    return v / np.linalg.norm(v)


def render_patch(
    *,
    seed: int,
    long_mm: float,
    short_mm: float,
    kind: str,
    solid_mm: float,
    spiculated: bool,
    lobulation: float,
    juxtapleural: bool = False,
    size: int = PATCH_SIZE,
) -> np.ndarray:
    """HU patch ``(size, size, size)`` int16, nodule at the centre (see module docstring)."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    c = (size - 1) / 2.0
    ax = np.arange(size, dtype=np.float32) - c
    z, y, x = np.meshgrid(ax, ax, ax, indexing="ij")
    pts = np.stack([z, y, x], -1) + rng.uniform(-1, 1, 3).astype(np.float32)
    # Acquisition varies (dose, kernel): correlated + white noise of random strength.
    noise = gaussian_filter(rng.normal(0, 1, (size, size, size)).astype(np.float32), 1.2)
    hu = -860.0 + noise * float(rng.uniform(40, 200)) + rng.normal(0, rng.uniform(5, 40), noise.shape).astype(np.float32)
    a = long_mm / 2.0
    # Context the nodule is not responsible for -- vessels, airways, chest wall --
    # so that the image encoder learns the nodule, not how busy its surroundings are.
    for _ in range(int(rng.integers(2, 10))):
        p0 = rng.uniform(-c, c, 3)
        d = _unit(rng)
        r = rng.uniform(0.6, 2.2)
        rel = pts - p0
        t = rel @ d
        dist2 = np.sum(rel**2, -1) - t**2
        hu = np.where(dist2 <= r * r, float(rng.uniform(0, 60)), hu)
    for _ in range(int(rng.integers(0, 3))):
        p0 = rng.uniform(-c, c, 3)
        d = _unit(rng)
        r = rng.uniform(1.5, 4.0)
        rel = pts - p0
        t = rel @ d
        dist = np.sqrt(np.maximum(np.sum(rel**2, -1) - t**2, 0))
        hu = np.where(dist <= r + 0.8, 0.0, hu)
        hu = np.where(dist <= r, -950.0, hu)
    if juxtapleural or rng.random() < 0.3:
        nrm = _unit(rng)
        dwall = a + (rng.uniform(-0.5, 0.5) if juxtapleural else rng.uniform(3.0, 14.0))
        hu = np.where(pts @ nrm > dwall, 40.0 + rng.normal(0, 20, hu.shape), hu)
    # nodule: rotated ellipsoid with lobulated radius
    b = max(short_mm / 2.0, 0.5)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    loc = pts @ q.astype(np.float32)
    radii = np.array([a, b, (a + b) / 2.0], np.float32)
    rr = np.sqrt(np.sum((loc / radii) ** 2, -1)) + 1e-6
    dirs = loc / (np.linalg.norm(loc, axis=-1, keepdims=True) + 1e-6)
    bump = np.zeros_like(rr)
    for _ in range(3):
        u = _unit(rng).astype(np.float32)
        bump += np.cos(rng.uniform(3, 6) * (dirs @ u) * math.pi + rng.uniform(0, 2 * math.pi))
    inside = rr <= 1.0 + lobulation * bump / 3.0
    if kind == "solid":
        hu = np.where(inside, 30.0 + rng.normal(0, 15, hu.shape), hu)
    elif kind == "part-solid":
        hu = np.where(inside, -550.0 + rng.normal(0, 40, hu.shape), hu)
        core = np.sqrt(np.sum(pts**2, -1)) <= solid_mm / 2.0
        hu = np.where(core & inside, 20.0, hu)
    else:
        hu = np.where(inside, -600.0 + rng.normal(0, 40, hu.shape), hu)
    if spiculated:
        for _ in range(int(rng.integers(6, 12))):
            d = _unit(rng)
            base = d * a * 0.8
            length = a * rng.uniform(0.6, 1.3)
            rel = pts - base
            t = np.clip(rel @ d, 0, length)
            dist = np.linalg.norm(rel - t[..., None] * d, axis=-1)
            hu = np.where(dist <= rng.uniform(0.6, 1.0), np.maximum(hu, -50.0), hu)
    hu = gaussian_filter(hu, float(rng.uniform(0.4, 1.0)))
    return np.clip(hu, -1024, 3000).astype(np.int16)


def patient_findings(
    *,
    age: float | None,
    sex: str | None,
    laa: float | None,
    nodule: dict[str, Any],
) -> dict[str, Any]:
    """A findings.json-shaped dict whose first nodule is the dominant one."""
    return {
        "schema": "clinview.findings/1",
        "patient": {"age_years": age, "sex": sex},
        "lungs": {"emphysema_laa950_percent": laa},
        "nodules": [nodule],
    }


def _lognormal(rng: np.random.Generator, median: float, sigma: float) -> float:
    return float(math.exp(math.log(median) + sigma * rng.normal()))


def make_cohort(seed: int, n: int) -> list[CohortPatient]:
    """``n`` synthetic patients from the generative model in the module docstring.

    Parameters
    ----------
    seed : the cohort's seed; the same seed gives the same patients.
    n : number of patients.
    """
    rng = np.random.default_rng(seed)
    out: list[CohortPatient] = []
    for k in range(n):
        age = float(rng.uniform(50, 80))
        female = bool(rng.random() < 0.45)
        r = rng.random()
        smoking = "never" if r < 0.15 else "former" if r < 0.60 else "current"
        pack_years = 0.0 if smoking == "never" else float(10 + rng.gamma(2.0, 12.0))
        family = bool(rng.random() < 0.12)
        laa = _lognormal(rng, 1.0 + 0.12 * pack_years, 0.6)
        count = int(1 + rng.poisson(1.5))
        logit = (
            -2.3 + 0.04 * (age - 65) + 0.25 * female + 0.5 * family + 0.02 * (pack_years - 20)
            + 0.4 * (smoking == "current") + 0.05 * (min(laa, 40.0) - 5) - 0.15 * (count - 2)
            + rng.normal(0, 0.5)
        )
        malignant = bool(rng.random() < 1 / (1 + math.exp(-logit)))
        m = malignant
        kind = str(rng.choice(["solid", "part-solid", "ground-glass"], p=[0.60, 0.25, 0.15] if m else [0.75, 0.07, 0.18]))
        long_mm = float(np.clip(_lognormal(rng, 14.0 if m else 6.5, 0.45), 4.0, 30.0))
        short_mm = long_mm * float(rng.uniform(0.7, 1.0))
        mean_d = (long_mm + short_mm) / 2.0
        spic = bool(rng.random() < (0.45 if m else 0.08))
        upper = bool(rng.random() < (0.65 if m else 0.42))
        juxta = bool(rng.random() < (0.07 if m else 0.20))
        solid_mm = mean_d * float(rng.uniform(0.4, 0.8) if m else rng.uniform(0.1, 0.4)) if kind == "part-solid" else (
            mean_d if kind == "solid" else 0.0
        )
        lob = float(rng.uniform(0.10, 0.30) if m else rng.uniform(0.0, 0.08))
        growth = None
        if rng.random() < 0.4:
            if m:
                vdt: float | None = _lognormal(rng, 200.0 if kind == "solid" else 500.0, 0.4)
            else:
                vdt = None if rng.random() < 0.75 else _lognormal(rng, 900.0, 0.4)
            days = int(rng.integers(300, 430))
            growth = {
                "days": days,
                "volume_doubling_time_days": None if vdt is None else round(vdt, 1),
                "status": "stable" if vdt is None else ("grown" if days / vdt > 0.3 else "stable"),
                "prior_id": 1,
            }
        genomics = None
        if rng.random() < 0.5:
            if m:
                p_egfr = 0.40 if (female and smoking == "never") else 0.15
                p_kras = 0.25 if smoking != "never" else 0.05
                p_other = 0.08
            else:
                p_egfr = p_kras = p_other = 0.01
            variants = []
            if rng.random() < p_egfr:
                variants.append({"gene": "EGFR", "protein_change": "p.L858R", "vaf": 0.02, "actionable": True})
            if rng.random() < p_kras:
                variants.append({"gene": "KRAS", "protein_change": "p.G12C", "vaf": 0.02, "actionable": True})
            if rng.random() < p_other:
                variants.append({"gene": "ALK", "protein_change": "EML4-ALK fusion", "vaf": 0.01, "actionable": True})
            genomics = {"source": "synthetic plasma cfDNA panel", "build": "GRCh38", "variants": variants}
        labs: list[dict[str, Any]] | None = []
        if rng.random() < 0.7:
            cea = _lognormal(rng, 4.5, 0.7) if m else _lognormal(rng, 2.0 + 1.5 * (smoking == "current"), 0.5)
            labs.append({"name": "CEA", "loinc": "2039-6", "value": round(cea, 2), "unit": "ng/mL"})
        if rng.random() < 0.5:
            cyf = _lognormal(rng, 3.2, 0.6) if m else _lognormal(rng, 1.8, 0.4)
            labs.append({"name": "CYFRA 21-1", "loinc": None, "value": round(cyf, 2), "unit": "ng/mL"})
        if not labs:
            labs = None
        # missingness (MCAR)
        age_obs = None if rng.random() < 0.03 else round(age, 1)
        sex_obs = None if rng.random() < 0.03 else ("F" if female else "M")
        smoking_obs: str | None = smoking
        py_obs: float | None = round(pack_years, 1)
        if rng.random() < 0.08:
            smoking_obs, py_obs = None, None
        elif smoking != "never" and rng.random() < 0.15:
            py_obs = None
        fam_obs = None if rng.random() < 0.25 else family
        laa_obs = None if rng.random() < 0.10 else round(laa, 2)
        upper_obs = None if rng.random() < 0.05 else upper
        has_image = rng.random() >= 0.05
        nodule = {
            "id": 1,
            "long_axis_mm": round(long_mm, 1),
            "short_axis_mm": round(short_mm, 1),
            "mean_diameter_mm": round(mean_d, 1),
            "volume_mm3": round(math.pi / 6 * long_mm * short_mm * (long_mm + short_mm) / 2, 1),
            "type": kind,
            "solid_component_mm": round(solid_mm, 1),
            "spiculated": spic,
            "juxtapleural": juxta,
            "location": {"side": None, "lobe": None, "upper_lobe": upper_obs},
            "review": "accepted",
        }
        if growth is not None:
            nodule["growth"] = growth
        findings = patient_findings(age=age_obs, sex=sex_obs, laa=laa_obs, nodule=nodule)
        for j in range(2, count + 1):  # small smooth solid bystanders, always smaller than the dominant one
            d = float(rng.uniform(2.5, max(2.6, min(5.0, long_mm - 0.5))))
            findings["nodules"].append(
                {"id": j, "long_axis_mm": round(d, 1), "short_axis_mm": round(0.85 * d, 1),
                 "mean_diameter_mm": round(0.925 * d, 1), "type": "solid", "solid_component_mm": round(0.925 * d, 1),
                 "spiculated": False, "juxtapleural": False, "review": "accepted",
                 "location": {"side": None, "lobe": None, "upper_lobe": bool(rng.random() < 0.4)}}
            )
        facts = ClinicalFacts(
            age_years=age_obs,
            sex=sex_obs,  # type: ignore[arg-type]
            smoking_status=smoking_obs,  # type: ignore[arg-type]
            pack_years=py_obs,
            family_history_lung_cancer=fam_obs,
            screening=True,
            source=f"synthetic cohort seed {seed}",
        )
        patch_params = (
            dict(
                seed=int(rng.integers(0, 2**31 - 1)),
                long_mm=long_mm,
                short_mm=short_mm,
                kind=kind,
                solid_mm=solid_mm,
                spiculated=spic,
                lobulation=lob,
                juxtapleural=juxta,
            )
            if has_image
            else None
        )
        out.append(
            CohortPatient(
                patient_id=f"SYN-{seed}-{k:05d}",
                malignant=malignant,
                findings=findings,
                facts=facts,
                genomics=genomics,
                labs=labs,
                patch_params=patch_params,
                truth={"age": age, "female": female, "family": family, "laa": laa, "upper": upper,
                       "pack_years": pack_years, "smoking": smoking, "logit": logit, "lobulation": lob},
            )
        )
    return out
