"""Brock University / PanCan nodule malignancy model (McWilliams et al., NEJM 2013).

Implements the *full model with spiculation* ("model 2b") in its centred form::

    L = -6.7892 + 0.0287 (age - 62) + 0.6011 female + 0.2961 family_history
        + 0.2953 emphysema - 5.3854 [(size_mm / 10) ** -0.5 - 1.58113883]
        + 0.377 part_solid - 0.1276 non_solid + 0.6581 upper_lobe
        - 0.0824 (nodule_count - 4) + 0.7729 spiculated
    P = 1 / (1 + exp(-L))

Coefficients: clinical-facts.md §1.1, cross-checked in two sources
(Eur Radiol 2019 Table 2 and a public calculator); the centred intercept
-6.7892 equals the uncentred 0.2761 printed by Eur Radiol 2019 (checked in the
tests). Why the pure function takes keyword-only arguments: every input is a
different clinical fact, and a swapped positional boolean would silently change
a cancer probability.

Size input: the PanCan model was fitted on the nodule's *maximum (long-axis)*
diameter as the public calculators ask for it; the fact sheet marks this
UNVERIFIED (one code source uses the mean of long and short axes), and we could
not open the NEJM methods here. :mod:`inference.clinical.scoring` therefore feeds
the long axis and says so in the result's ``source`` text.

Calcified nodules are not in the PanCan model (benign calcification is
excluded by Lung-RADS category 1); :func:`brock_probability` refuses them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "BROCK_SOURCE",
    "BrockResult",
    "brock_probability",
    "brock_result",
    "normalise_nodule_type",
    "rescore_terms",
]

BROCK_SOURCE = (
    "Brock/PanCan full model with spiculation (McWilliams et al., NEJM 2013;369:910-919), "
    "coefficients per clinical-facts.md §1.1"
)

NoduleType = Literal["solid", "part-solid", "ground-glass"]

_INTERCEPT = -6.7892
_AGE = 0.0287
_AGE_CENTRE = 62.0
_FEMALE = 0.6011
_FAMILY = 0.2961
_EMPHYSEMA = 0.2953
_SIZE = -5.3854
_SIZE_CENTRE = 1.58113883  # (4 mm / 10) ** -0.5
_PART_SOLID = 0.377
_NON_SOLID = -0.1276
_UPPER = 0.6581
_COUNT = -0.0824
_COUNT_CENTRE = 4.0
_SPICULATION = 0.7729

_TYPE_ALIASES = {
    "solid": "solid",
    "part-solid": "part-solid",
    "part_solid": "part-solid",
    "partsolid": "part-solid",
    "subsolid": "part-solid",
    "ground-glass": "ground-glass",
    "ground_glass": "ground-glass",
    "groundglass": "ground-glass",
    "ggn": "ground-glass",
    "ggo": "ground-glass",
    "non-solid": "ground-glass",
    "nonsolid": "ground-glass",
}


def normalise_nodule_type(nodule_type: str) -> NoduleType:
    """Map the spellings used in findings and reports onto the three Brock types.

    Raises
    ------
    ValueError
        For ``calcified`` (not a PanCan input) or an unknown word, so that a typo
        never falls back silently to the solid reference category.
    """
    key = str(nodule_type).strip().lower()
    if key not in _TYPE_ALIASES:
        raise ValueError(f"nodule type {nodule_type!r} is not one of solid, part-solid, ground-glass")
    return _TYPE_ALIASES[key]  # type: ignore[return-value]


@dataclass(frozen=True)
class BrockResult:
    """Probability plus every term of the logit, so a reader can see *why*."""

    probability: float
    logit: float
    terms: dict[str, float] = field(default_factory=dict)
    source: str = BROCK_SOURCE


def brock_result(
    *,
    age_years: float,
    female: bool,
    family_history: bool,
    emphysema: bool,
    size_mm: float,
    nodule_type: str,
    upper_lobe: bool,
    nodule_count: int,
    spiculated: bool,
) -> BrockResult:
    """Brock model 2b with each additive term of the logit.

    Parameters
    ----------
    age_years : years at the CT.
    female : True for female sex (the model has no third category).
    family_history : first-degree family history of lung cancer.
    emphysema : emphysema on CT.
    size_mm : nodule diameter in mm (long axis, see module docstring); > 0.
    nodule_type : ``solid``, ``part-solid`` or ``ground-glass`` (aliases accepted).
    upper_lobe : nodule in an upper lobe (the lingula counts as left upper lobe).
    nodule_count : number of nodules on the scan, >= 1.
    spiculated : spiculated margin.

    Returns
    -------
    BrockResult

    Raises
    ------
    ValueError
        Non-positive size, count < 1, non-finite age or an unknown/calcified type.
    """
    if not (size_mm > 0 and math.isfinite(size_mm)):
        raise ValueError(f"Brock: nodule size must be > 0 mm, got {size_mm}")
    if nodule_count < 1:
        raise ValueError(f"Brock: nodule count must be >= 1, got {nodule_count}")
    if not math.isfinite(age_years):
        raise ValueError(f"Brock: age must be a finite number of years, got {age_years}")
    t = normalise_nodule_type(nodule_type)
    terms = {
        "intercept": _INTERCEPT,
        "age": _AGE * (float(age_years) - _AGE_CENTRE),
        "female": _FEMALE * bool(female),
        "family_history": _FAMILY * bool(family_history),
        "emphysema": _EMPHYSEMA * bool(emphysema),
        "part_solid": _PART_SOLID * (t == "part-solid"),
        "non_solid": _NON_SOLID * (t == "ground-glass"),
        "upper_lobe": _UPPER * bool(upper_lobe),
        **_scan_terms(size_mm, nodule_count, spiculated),
    }
    return _result(terms)


def _scan_terms(size_mm: float, nodule_count: int, spiculated: bool) -> dict[str, float]:
    """The three terms a reader's review of the CT can change: size, count, spiculation."""
    return {
        "size": _SIZE * ((float(size_mm) / 10.0) ** -0.5 - _SIZE_CENTRE),
        "nodule_count": _COUNT * (int(nodule_count) - _COUNT_CENTRE),
        "spiculation": _SPICULATION * bool(spiculated),
    }


def _result(terms: dict[str, float]) -> BrockResult:
    logit = float(sum(terms.values()))
    return BrockResult(probability=1.0 / (1.0 + math.exp(-logit)), logit=logit, terms=terms)


def rescore_terms(terms: dict[str, float], *, size_mm: float, nodule_count: int, spiculated: bool) -> BrockResult:
    """A computed result's logit ``terms`` with size, nodule count and spiculation replaced.

    Why: after the reader rejects a nodule (the count changes), corrects a
    mask (the size changes) or calls the margin spiculated, the probability
    must follow at once, in the viewer, without the patient's clinical file:
    the patient's own terms (age, sex, family history, emphysema) and the
    nodule's type and lobe are taken as they were computed.

    Raises
    ------
    ValueError
        Non-positive size, count < 1, or ``terms`` missing one of the model's terms.
    """
    if not (size_mm > 0 and math.isfinite(size_mm)):
        raise ValueError(f"Brock: nodule size must be > 0 mm, got {size_mm}")
    if nodule_count < 1:
        raise ValueError(f"Brock: nodule count must be >= 1, got {nodule_count}")
    needed = {"intercept", "age", "female", "family_history", "emphysema", "part_solid", "non_solid", "upper_lobe"}
    if not needed <= set(terms):
        raise ValueError(f"Brock: logit terms missing {sorted(needed - set(terms))}")
    kept = {k: float(terms[k]) for k in needed}
    return _result({**kept, **_scan_terms(size_mm, nodule_count, spiculated)})


def brock_probability(
    *,
    age_years: float,
    female: bool,
    family_history: bool,
    emphysema: bool,
    size_mm: float,
    nodule_type: str,
    upper_lobe: bool,
    nodule_count: int,
    spiculated: bool,
) -> float:
    """Probability (0..1) of malignancy of one nodule, Brock model 2b.

    Same parameters and errors as :func:`brock_result`; this thin wrapper is
    the stable interface the pipeline and the risk-model benchmark call.
    """
    return brock_result(
        age_years=age_years,
        female=female,
        family_history=family_history,
        emphysema=emphysema,
        size_mm=size_mm,
        nodule_type=nodule_type,
        upper_lobe=upper_lobe,
        nodule_count=nodule_count,
        spiculated=spiculated,
    ).probability
