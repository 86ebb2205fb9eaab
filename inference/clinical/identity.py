"""Patient identity across DICOM, genomic, lab and clinical files.

Why this is strict: combining another patient's EGFR mutation or creatinine
with this CT would produce a confident, wrong treatment suggestion. Any field
that two sources state differently is a conflict; nothing is combined until a
person confirms (see :func:`inference.clinical.precision.fill_findings`).

Tolerances are only for *spelling*, never for content: IDs compare
case-insensitively and a sample-derived ID may carry a tissue suffix
(``PT-0042`` vs ``PT-0042-T``); names compare as sets of words, so DICOM
``DOE^JANE`` equals FHIR ``Jane Doe`` and a missing middle name is not a
conflict; birth dates and sex must be equal.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from typing import Any

from inference.types import PatientInfo

__all__ = ["compare_identities", "same_value", "FIELDS"]

FIELDS: tuple[str, ...] = ("patient_id", "name", "birth_date", "sex")


def _name_tokens(name: str) -> frozenset[str]:
    s = unicodedata.normalize("NFKD", name)
    s = "".join(ch for ch in s if not unicodedata.combining(ch)).lower()
    return frozenset(t for t in re.split(r"[\^\s,.\-']+", s) if t and t not in {"mr", "mrs", "ms", "dr"})


def _norm_id(s: str) -> str:
    return s.strip().upper()


def same_value(field: str, a: Any, b: Any) -> bool:
    """Whether two sources agree on one field (see module docstring)."""
    if field == "patient_id":
        x, y = _norm_id(str(a)), _norm_id(str(b))
        if x == y:
            return True
        short, long_ = sorted((x, y), key=len)
        return long_.startswith(short) and long_[len(short)] in "-_." and len(long_) - len(short) <= 8
    if field == "name":
        ta, tb = _name_tokens(str(a)), _name_tokens(str(b))
        return bool(ta and tb) and (ta <= tb or tb <= ta)
    return a == b


def _display(v: Any) -> Any:
    return v.isoformat() if isinstance(v, date) else v


def compare_identities(sources: dict[str, PatientInfo | None], *, reference: str | None = None) -> dict[str, Any]:
    """Compare patient identity fields across named sources.

    Parameters
    ----------
    sources
        ``{"dicom": PatientInfo, "genomics:tumour.vcf": PatientInfo, ...}``;
        ``None`` or an all-empty PatientInfo means the file states no identity
        (it is listed but cannot conflict).
    reference
        The source others are judged against when deciding which files to
        hold back (default: ``"dicom"`` if present, else the first source).

    Returns
    -------
    dict
        The findings ``identity`` block: ``consistent``, ``conflicts``
        (``[{field, values: {source: value}}]``), ``sources`` (what each file
        said), ``reference`` and ``mismatched_sources`` (sources disagreeing
        with the reference on any field).
    """
    stated = {k: v for k, v in sources.items() if v is not None}
    if reference is None:
        reference = "dicom" if "dicom" in stated else next(iter(stated), None)
    conflicts: list[dict[str, Any]] = []
    mismatched: set[str] = set()
    for f in FIELDS:
        vals = {k: getattr(p, f) for k, p in stated.items() if getattr(p, f) not in (None, "")}
        if len(vals) < 2:
            continue
        names = list(vals)
        agree = all(same_value(f, vals[a], vals[b]) for i, a in enumerate(names) for b in names[i + 1 :])
        if agree:
            continue
        conflicts.append({"field": f, "values": {k: _display(v) for k, v in vals.items()}})
        ref_val = vals.get(reference) if reference else None
        if ref_val is None:
            # the reference does not state this field: hold back all but the first
            first = names[0]
            mismatched.update(k for k in names[1:] if not same_value(f, vals[first], vals[k]))
        else:
            mismatched.update(k for k in names if k != reference and not same_value(f, ref_val, vals[k]))
    return {
        "consistent": not conflicts,
        "conflicts": conflicts,
        "sources": {
            k: ({f: _display(getattr(p, f)) for f in FIELDS} if p is not None else None) for k, p in sources.items()
        },
        "reference": reference,
        "mismatched_sources": sorted(mismatched),
    }
