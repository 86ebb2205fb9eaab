"""Kidney function: CKD-EPI 2021 (race-free) eGFR from serum creatinine.

Why 2021 and not 2009/MDRD: the 2021 equation drops the race coefficient and
is what KDIGO-aligned labs now report (LOINC 98979-8). Constants from
clinical-facts section 8.1 ([MDCalc-ckdepi], [skillsbench], Inker NEJM 2021).
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

__all__ = ["ckd_epi_2021", "egfr_from_labs", "kdigo_category"]


def ckd_epi_2021(scr_mg_dl: float, age_years: float, sex: Literal["F", "M"]) -> float:
    """eGFR in mL/min/1.73 m² (CKD-EPI 2021 creatinine equation).

    ``142 × min(Scr/κ, 1)^α × max(Scr/κ, 1)^−1.200 × 0.9938^age × 1.012 [female]``
    with κ = 0.7 (F) / 0.9 (M) and α = −0.241 (F) / −0.302 (M).

    Raises
    ------
    ValueError
        Non-positive creatinine, negative age, or a sex other than F/M (the
        equation is defined only for those two).
    """
    if scr_mg_dl <= 0:
        raise ValueError(f"creatinine must be positive, got {scr_mg_dl}")
    if age_years < 0:
        raise ValueError(f"age must be non-negative, got {age_years}")
    if sex == "F":
        kappa, alpha, factor = 0.7, -0.241, 1.012
    elif sex == "M":
        kappa, alpha, factor = 0.9, -0.302, 1.0
    else:
        raise ValueError(f"CKD-EPI 2021 needs sex F or M, got {sex!r}")
    r = scr_mg_dl / kappa
    return 142.0 * min(r, 1.0) ** alpha * max(r, 1.0) ** -1.200 * 0.9938**age_years * factor


def kdigo_category(egfr: float) -> str:
    """KDIGO GFR category (G3b-G5 bands are background knowledge, UNVERIFIED)."""
    for cut, cat in ((90, "G1"), (60, "G2"), (45, "G3a"), (30, "G3b"), (15, "G4")):
        if egfr >= cut:
            return cat
    return "G5"


def egfr_from_labs(
    labs: list[dict[str, Any]],
    *,
    birth_date: date | None,
    age_years: float | None,
    sex: str | None,
) -> dict[str, Any]:
    """``derived`` block: eGFR from the most recent creatinine in mg/dL.

    Age is taken at the creatinine's date when the birth date is known (a
    two-year-old result should not use today's age), else ``age_years``.
    Returns ``{}`` with a ``egfr_reason`` reason when a fact is missing, so
    the panel can say *why* there is no eGFR instead of showing nothing.
    """
    from inference.io.fhir_clinical import age_at

    creats = [
        r
        for r in labs
        if r.get("analyte") == "creatinine" and r.get("unit") == "mg/dL" and r.get("unit_status") in ("ok", "converted")
        and r.get("comparator") in (None, "")
    ]
    if not creats:
        return {"egfr_ckd_epi_2021": None, "egfr_reason": "no serum creatinine in a convertible unit"}
    latest = max(creats, key=lambda r: r["date"])
    when = date.fromisoformat(latest["date"])
    age = age_at(birth_date, when) if birth_date else age_years
    if age is None:
        return {"egfr_ckd_epi_2021": None, "egfr_reason": "age unknown (no birth date or age)"}
    if sex not in ("F", "M"):
        return {"egfr_ckd_epi_2021": None, "egfr_reason": "sex unknown or not F/M"}
    value = ckd_epi_2021(float(latest["value"]), float(age), sex)  # type: ignore[arg-type]
    return {
        "egfr_ckd_epi_2021": round(value, 1),
        "egfr_kdigo": kdigo_category(value),
        "egfr_source": (
            f"CKD-EPI 2021 from creatinine {latest['value']} mg/dL on {latest['date']} "
            f"({latest.get('source', '')}), age {age:.0f}, sex {sex}"
        ),
        "egfr_date": latest["date"],
        "egfr_unit": "mL/min/1.73m2",
    }
