"""ACR Lung-RADS v2022 category of one nodule and of a screening exam.

Table-driven from clinical-facts.md §3.2 (RadElement RDES267 full v2022 criteria,
cross-checked against NCBI NBK568579 for the unchanged solid/part-solid
thresholds). Sizes are **mean diameters** ((long + short axis) / 2) rounded to
one decimal place, as v2022 asks; thresholds are half-open ``[lo, hi)`` in mm.

What is decided here (and why):

* ``status`` is ``baseline`` (no prior CT), ``new``, ``growing`` (mean
  diameter up by > 1.5 mm within 12 months, the v2022 definition) or
  ``stable`` (seen before, not growing). The caller derives it from the
  nodule's ``growth`` block.
* Stable at follow-up uses the v2022 stepped management: a nodule whose size
  would be category 3 becomes 2, 4A becomes 3 -- unless its size now crosses
  a threshold the prior size did not (v2022: reclassify by size even when the
  growth definition is not met); 4B stays 4B (a stable 4B
  nodule still needs the work-up it was sent for unless proven benign, which
  software cannot know). Ground-glass nodules >= 30 mm that are stable are 2.
* Juxtapleural rule (new in v2022, replaces the perifissural-only rule):
  solid, smooth, < 10 mm mean diameter, at baseline or new -> 2. "Smooth" is
  taken as *not spiculated*; the oval/lentiform/triangular shape is not
  measured, which the caller states.
* Benign calcification or fat -> 1. A nodule typed ``calcified`` is treated
  as benign calcification; the caller asks the reader to confirm the pattern on the image.
* ``slow_growing`` (growing over several screens) -> 4B for solid and
  part-solid nodules (v2022).
* A new part-solid nodule < 6 mm whose solid component is >= 4 mm meets both
  the "new < 6 mm total" (3) and "new solid component >= 4 mm" (4B) rows; we
  take the more suspicious one, as the exam is coded by its most suspicious
  finding.
* ``suspicious_features=True`` (e.g. spiculation) upgrades 3/4A/4B to 4X; the
  caller decides whether to pass it.

Not automated: category 0 (incomplete exam, infection), airway nodules and
atypical cysts, the S modifier. Those need a reader.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "LUNG_RADS_VERSION",
    "LUNG_RADS_SOURCE",
    "CATEGORY_ORDER",
    "MANAGEMENT",
    "LungRadsNodule",
    "nodule_category",
    "exam_category",
    "management_text",
]

LUNG_RADS_VERSION = "v2022"
LUNG_RADS_SOURCE = "ACR Lung-RADS v2022 (categories per RadElement RDES267; clinical-facts.md §3)"

Status = Literal["baseline", "new", "growing", "stable"]
Kind = Literal["solid", "part-solid", "ground-glass", "calcified"]

#: Most suspicious last; the exam takes the maximum.
CATEGORY_ORDER: tuple[str, ...] = ("0", "1", "2", "3", "4A", "4B", "4X")

#: v2022 management per category (fact sheet §3.2; 4B wording [1 src]).
MANAGEMENT: dict[str, str] = {
    "0": "Comparison with prior imaging or additional imaging; for suspected infection, LDCT in 1-3 months",
    "1": "Continue annual screening with LDCT in 12 months",
    "2": "Continue annual screening with LDCT in 12 months",
    "3": "6-month LDCT",
    "4A": "3-month LDCT; PET/CT may be considered if there is a solid nodule or solid component >= 8 mm",
    "4B": "Diagnostic chest CT with or without contrast; PET/CT if solid component >= 8 mm; "
    "tissue sampling and/or referral for further clinical evaluation",
    "4X": "As for 4B: diagnostic chest CT, PET/CT if solid component >= 8 mm; tissue sampling "
    "and/or referral for further clinical evaluation",
}

_STEP_DOWN = {"3": "2", "4A": "3"}


@dataclass(frozen=True)
class LungRadsNodule:
    """The inputs Lung-RADS needs for one nodule.

    ``solid_component_mm`` is the mean diameter of the solid part (part-solid
    nodules only).
    """

    mean_diameter_mm: float
    kind: Kind
    status: Status = "baseline"
    solid_component_mm: float | None = None
    juxtapleural: bool = False
    spiculated: bool = False
    fat: bool = False
    slow_growing: bool = False
    suspicious_features: bool = False
    prior_mean_diameter_mm: float | None = None
    prior_solid_component_mm: float | None = None


def _r1(x: float) -> float:
    """Round to one decimal place, half up (v2022 measurement rule)."""
    return float(int(x * 10.0 + 0.5 + 1e-9)) / 10.0


def _solid(d: float, status: Status, juxtapleural: bool, spiculated: bool) -> str:
    if juxtapleural and not spiculated and d < 10.0 and status in ("baseline", "new"):
        return "2"
    if status == "growing":
        return "4A" if d < 8.0 else "4B"
    if status == "new":
        if d < 4.0:
            return "2"
        if d < 6.0:
            return "3"
        if d < 8.0:
            return "4A"
        return "4B"
    # baseline (and stable, before stepping down)
    if d < 6.0:
        return "2"
    if d < 8.0:
        return "3"
    if d < 15.0:
        return "4A"
    return "4B"


def _part_solid(d: float, s: float, status: Status) -> str:
    if status in ("new", "growing"):
        if s >= 4.0:
            return "4B"
        if status == "new" and d < 6.0:
            return "3"
        return "4A"
    # baseline (and stable, before stepping down)
    if d < 6.0:
        return "2"
    if s < 6.0:
        return "3"
    if s < 8.0:
        return "4A"
    return "4B"


def nodule_category(n: LungRadsNodule) -> str:
    """Lung-RADS v2022 category of one nodule (``"1"`` ... ``"4X"``).

    Raises
    ------
    ValueError
        Negative size, unknown type or status, or a part-solid nodule without
        its solid component (the category depends on it; the caller must say
        what it assumed).
    """
    if n.mean_diameter_mm < 0:
        raise ValueError(f"Lung-RADS: negative diameter {n.mean_diameter_mm}")
    if n.status not in ("baseline", "new", "growing", "stable"):
        raise ValueError(f"Lung-RADS: unknown status {n.status!r}")
    if n.kind == "calcified" or n.fat:
        return "1"
    d = _r1(n.mean_diameter_mm)
    if n.kind == "ground-glass":
        if d >= 30.0 and n.status in ("baseline", "new"):
            return "3"
        return "2"
    if n.kind == "solid":
        cat = _solid(d, n.status, n.juxtapleural, n.spiculated)
    elif n.kind == "part-solid":
        if n.solid_component_mm is None:
            raise ValueError("Lung-RADS: part-solid nodule without a solid-component size")
        cat = _part_solid(d, _r1(n.solid_component_mm), n.status)
    else:
        raise ValueError(f"Lung-RADS: unknown nodule type {n.kind!r}")
    if n.status == "stable":
        prior_cat = None
        if n.prior_mean_diameter_mm is not None and n.kind in ("solid", "part-solid"):
            pd = _r1(n.prior_mean_diameter_mm)
            ps = n.prior_solid_component_mm if n.prior_solid_component_mm is not None else n.solid_component_mm
            prior_cat = (
                _solid(pd, "baseline", False, n.spiculated)
                if n.kind == "solid"
                else _part_solid(pd, _r1(ps or 0.0), "baseline")
            )
        if prior_cat is not None and CATEGORY_ORDER.index(cat) > CATEGORY_ORDER.index(prior_cat):
            pass  # crossed a size threshold without meeting the growth definition: categorise by size
        else:
            cat = _STEP_DOWN.get(cat, cat)
    if n.slow_growing:
        cat = max(cat, "4B", key=CATEGORY_ORDER.index)
    if n.suspicious_features and cat in ("3", "4A", "4B"):
        cat = "4X"
    return cat


def exam_category(categories: list[str]) -> str:
    """The exam is coded by its most suspicious finding; no nodules -> ``"1"``."""
    if not categories:
        return "1"
    for c in categories:
        if c not in CATEGORY_ORDER:
            raise ValueError(f"Lung-RADS: unknown category {c!r}")
    return max(categories, key=CATEGORY_ORDER.index)


def management_text(category: str) -> str:
    """v2022 management recommendation for a category."""
    try:
        return MANAGEMENT[category]
    except KeyError:
        raise ValueError(f"Lung-RADS: unknown category {category!r}") from None
