"""Fleischner Society 2017 recommendations for incidental pulmonary nodules.

MacMahon et al., Radiology 2017;284:228-243; tables as in clinical-facts.md §4
(cross-checked in Radiopaedia, UW and World J Radiol 2017).

Decisions taken here, and why:

* **Scope.** The guideline is for *incidental* nodules in adults >= 35 years.
  It does not apply to lung-cancer screening (use Lung-RADS), known primary
  cancer or immunosuppression. :func:`fleischner_applicability` says which of
  those excluded it; unknown facts do not exclude it but are named, so the
  reader can judge.
* **Size.** Average of long and short axes, rounded to the nearest mm (the
  rounding is [1 src] in the fact sheet), binned < 6, 6-8, > 8 mm.
* **Risk.** The guideline defines *high* risk as heavy smoking or other known
  risk factors (family history of lung cancer, emphysema/fibrosis, exposures)
  and *low* as minimal or no smoking history. It gives no pack-year number; we
  call >= 20 pack-years heavy (the USPSTF 2021 screening-eligibility threshold,
  an assumption the caller reports). Unknown smoking is treated as high risk
  (the guideline advises the high-risk pathway when in doubt).
* **Multiple nodules.** The most suspicious nodule guides management; the
  caller passes it as ``dominant`` with the nodule count.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "FLEISCHNER_SOURCE",
    "HEAVY_SMOKING_PACK_YEARS",
    "FleischnerResult",
    "fleischner_applicability",
    "fleischner_risk",
    "size_bin",
    "fleischner_recommendation",
]

FLEISCHNER_SOURCE = "Fleischner Society 2017 (MacMahon et al., Radiology 2017;284:228-243; clinical-facts.md §4)"
HEAVY_SMOKING_PACK_YEARS = 20.0  # assumption: USPSTF 2021 screening threshold; Fleischner gives no number

Risk = Literal["low", "high"]
SizeBin = Literal["<6", "6-8", ">8"]

_SOLID: dict[tuple[bool, Risk, SizeBin], str] = {
    (False, "low", "<6"): "No routine follow-up",
    (False, "low", "6-8"): "CT at 6-12 months, then consider CT at 18-24 months",
    (False, "low", ">8"): "Consider CT at 3 months, PET/CT or tissue sampling",
    (False, "high", "<6"): "Optional CT at 12 months (particularly with suspicious morphology or upper-lobe location)",
    (False, "high", "6-8"): "CT at 6-12 months, then CT at 18-24 months",
    (False, "high", ">8"): "Consider CT at 3 months, PET/CT or tissue sampling",
    (True, "low", "<6"): "No routine follow-up",
    (True, "low", "6-8"): "CT at 3-6 months, then consider CT at 18-24 months",
    (True, "low", ">8"): "CT at 3-6 months, then consider CT at 18-24 months",
    (True, "high", "<6"): "Optional CT at 12 months",
    (True, "high", "6-8"): "CT at 3-6 months, then CT at 18-24 months",
    (True, "high", ">8"): "CT at 3-6 months, then CT at 18-24 months",
}

_SUBSOLID: dict[tuple[str, bool], str] = {
    ("ground-glass", False): "No routine follow-up (for a suspicious nodule, consider CT at 2 and 4 years)",
    ("ground-glass", True): "CT at 6-12 months to confirm persistence, then CT every 2 years until 5 years",
    ("part-solid", False): "No routine follow-up",
    ("part-solid", True): "CT at 3-6 months to confirm persistence; if unchanged and solid component < 6 mm, "
    "annual CT for 5 years",
    ("multiple", False): "CT at 3-6 months; if stable, consider CT at 2 and 4 years",
    ("multiple", True): "CT at 3-6 months; subsequent management based on the most suspicious nodule(s)",
}


@dataclass(frozen=True)
class FleischnerResult:
    """What Fleischner 2017 says, or why it does not apply."""

    applies: bool
    recommendation: str
    reason: str
    source: str = FLEISCHNER_SOURCE

    def as_dict(self) -> dict[str, object]:
        return {
            "recommendation": self.recommendation,
            "applies": self.applies,
            "reason": self.reason,
            "source": self.source,
        }


def fleischner_applicability(
    *,
    age_years: float | None,
    screening: bool | None,
    known_cancer: bool | None,
    immunocompromised: bool | None,
) -> tuple[bool, list[str], list[str]]:
    """Whether the guideline applies.

    Returns
    -------
    (applies, exclusions, unknowns)
        ``exclusions`` name each reason it does not apply; ``unknowns`` name the
        scope facts that were not given (the guideline is then applied, and the
        caller says so).
    """
    exclusions: list[str] = []
    unknowns: list[str] = []
    if screening:
        exclusions.append("lung-cancer screening context (use Lung-RADS)")
    elif screening is None:
        unknowns.append("screening context unknown, assumed incidental finding")
    if age_years is None:
        unknowns.append("age unknown, assumed >= 35")
    elif age_years < 35:
        exclusions.append(f"age {age_years:g} < 35 years")
    if known_cancer:
        exclusions.append("known primary cancer")
    elif known_cancer is None:
        unknowns.append("cancer history unknown, assumed none")
    if immunocompromised:
        exclusions.append("immunocompromised patient")
    elif immunocompromised is None:
        unknowns.append("immune status unknown, assumed competent")
    return (not exclusions, exclusions, unknowns)


def fleischner_risk(
    *,
    smoking_status: str | None,
    pack_years: float | None,
    family_history: bool | None,
    emphysema: bool | None,
) -> tuple[Risk, list[str]]:
    """Low or high risk, with the reasons/assumptions in words."""
    notes: list[str] = []
    high_reasons: list[str] = []
    if family_history:
        high_reasons.append("family history of lung cancer")
    if emphysema:
        high_reasons.append("emphysema")
    if smoking_status == "never":
        pass
    elif pack_years is not None:
        if pack_years >= HEAVY_SMOKING_PACK_YEARS:
            high_reasons.append(f"{pack_years:g} pack-years (>= {HEAVY_SMOKING_PACK_YEARS:g}, assumed 'heavy')")
    elif smoking_status in ("former", "current"):
        high_reasons.append(f"{smoking_status} smoker, pack-years unknown (assumed heavy)")
    else:
        high_reasons.append("smoking history unknown (assumed high risk)")
        notes.append("smoking history unknown: high-risk pathway assumed")
    if high_reasons:
        return "high", ["high risk: " + ", ".join(high_reasons), *notes]
    return "low", ["low risk: minimal or no smoking history and no other known risk factor", *notes]


def size_bin(mean_diameter_mm: float) -> SizeBin:
    """Fleischner size bin of an average diameter rounded to the nearest mm."""
    d = int(mean_diameter_mm + 0.5)
    if d < 6:
        return "<6"
    if d <= 8:
        return "6-8"
    return ">8"


def fleischner_recommendation(
    *,
    kind: str,
    mean_diameter_mm: float,
    multiple: bool,
    risk: Risk,
    solid_component_mm: float | None = None,
) -> str:
    """The table cell for the dominant nodule.

    Parameters
    ----------
    kind : ``solid``, ``part-solid`` or ``ground-glass`` of the dominant nodule.
    mean_diameter_mm : its average diameter.
    multiple : more than one (non-calcified) nodule on the scan.
    risk : ``low`` or ``high`` from :func:`fleischner_risk`.
    solid_component_mm : for part-solid nodules; >= 6 mm adds the guideline's
        "highly suspicious" note.
    """
    b = size_bin(mean_diameter_mm)
    if kind == "solid":
        return _SOLID[(multiple, risk, b)]
    if kind not in ("part-solid", "ground-glass"):
        raise ValueError(f"Fleischner: unknown nodule type {kind!r}")
    big = b != "<6"
    text = _SUBSOLID[("multiple" if multiple else kind, big)]
    if kind == "part-solid" and big and solid_component_mm is not None and solid_component_mm >= 6.0:
        text += "; a persistent part-solid nodule with solid component >= 6 mm is highly suspicious"
    return text
