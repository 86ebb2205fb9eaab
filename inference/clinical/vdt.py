"""Volume doubling time (VDT) of a nodule between two scans.

``VDT = Δt · ln 2 / ln(V2 / V1)`` (exponential growth; clinical-facts.md §5,
cross-checked in two sources). From diameters of a sphere, ``V ∝ d³`` gives
``VDT = Δt · ln 2 / (3 ln(D2 / D1))``.

No growth: when ``V2 <= V1`` the nodule is not doubling, and a negative or
infinite "doubling time" would be read as a number by a careless consumer.
These functions therefore return ``None`` for stable or shrinking nodules;
callers print "no growth" instead of a VDT. The JSON contract stores ``null``.

Interpretation bands (solid nodules, BTS 2015 / NELSON as summarised in the fact
sheet): < 400 d suspicious; 400-600 d indeterminate (UNVERIFIED in the primary
text); > 600 d typical of benign lesions. Subsolid cancers often have VDT > 400
d (mean ≈ 600-850 d, PMC5945695), so the band is not applied to them.
"""

from __future__ import annotations

import math

__all__ = ["VDT_SOURCE", "volume_doubling_time", "vdt_from_diameters", "vdt_band"]

VDT_SOURCE = "VDT = Δt·ln2/ln(V2/V1) (exponential growth; clinical-facts.md §5); bands per BTS 2015/NELSON"


def volume_doubling_time(v1: float, v2: float, days: float) -> float | None:
    """Days for the volume to double, assuming exponential growth.

    Parameters
    ----------
    v1, v2 : volume (mm³, or any unit shared by both) at the earlier and later scan.
    days : interval between the scans, > 0.

    Returns
    -------
    float or None
        ``None`` when the nodule did not grow (``v2 <= v1``): there is no
        doubling time, and we do not return ``inf``/negative values that could
        be plotted or thresholded by mistake.

    Raises
    ------
    ValueError
        Non-positive volumes or interval.
    """
    if not (v1 > 0 and v2 > 0):
        raise ValueError(f"VDT needs positive volumes, got {v1} and {v2}")
    if not days > 0:
        raise ValueError(f"VDT needs a positive interval in days, got {days}")
    if v2 <= v1:
        return None
    return float(days) * math.log(2.0) / math.log(float(v2) / float(v1))


def vdt_from_diameters(d1_mm: float, d2_mm: float, days: float) -> float | None:
    """VDT from two diameters, treating the nodule as a sphere (V ∝ d³)."""
    if not (d1_mm > 0 and d2_mm > 0):
        raise ValueError(f"VDT needs positive diameters, got {d1_mm} and {d2_mm}")
    return volume_doubling_time(d1_mm**3, d2_mm**3, days)


def vdt_band(vdt_days: float | None, nodule_type: str = "solid") -> str:
    """Words for a VDT, with the caveat for subsolid nodules."""
    if vdt_days is None:
        return "no growth"
    if nodule_type != "solid":
        return "subsolid: VDT thresholds for solid nodules do not apply (subsolid cancers grow slowly)"
    if vdt_days < 400:
        return "< 400 days: in the range of most lung cancers (suspicious)"
    if vdt_days <= 600:
        return "400-600 days: indeterminate"
    return "> 600 days: typical of benign lesions"
