"""FHIR R4 Bundles: resource loading (shared with the labs reader), the patient's
identity and the clinical facts the risk models need (smoking, pack-years,
years since quitting, family history, emphysema, prior cancer).

Why each entry is validated on its own: one invalid resource (an impossible
date, a missing required element) would make ``Bundle.model_validate`` reject
the whole file. Validating entry by entry with the ``fhir.resources.R4B``
classes (R4-compatible for Patient/Observation/FamilyMemberHistory/Condition;
the top-level package of fhir.resources >= 7 is R5) turns that into one
:class:`Issue` naming the entry, and the rest still loads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from inference.errors import InputError
from inference.types import ClinicalFacts, Issue, PatientInfo

__all__ = [
    "FhirResources",
    "load_fhir_resources",
    "patient_from_fhir",
    "read_clinical_fhir",
    "age_at",
    "codings",
]

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"

_SMOKING_SNOMED = {
    "8517006": "former",
    "266919005": "never",
    "8392000": "never",
    "77176002": "current",
    "449868002": "current",
    "428041000124106": "current",
    "230059006": "current",
    "428071000124103": "current",
    "428061000124105": "current",
    "65568007": "current",
    "266927001": None,
}
_PACK_YEAR_CODES = {"8664-5", "401201003", "63640-7"}
_LUNG_CANCER_SNOMED = {"363358000", "93880001", "254637007", "254632001", "187875007"}
_EMPHYSEMA_SNOMED = {"87433001", "68328006"}


@dataclass
class FhirResources:
    """Validated resources of one JSON file, by type, plus the issues met."""

    source: str
    by_type: dict[str, list[tuple[int, Any]]] = field(default_factory=dict)
    issues: list[Issue] = field(default_factory=list)
    n_entries: int = 0

    def of(self, rtype: str) -> list[tuple[int, Any]]:
        return self.by_type.get(rtype, [])


def _one_line_validation(e: Exception) -> str:
    errs = getattr(e, "errors", None)
    if callable(errs):
        try:
            first = errs()[0]
            loc = ".".join(str(x) for x in first.get("loc", ()))
            return f"{loc}: {first.get('msg', '')} (value {str(first.get('input', ''))[:40]!r})"
        except (IndexError, TypeError, KeyError):
            pass
    return str(e).splitlines()[0][:200]


def load_fhir_resources(path: str | Path) -> FhirResources:
    """Parse a FHIR JSON file (a Bundle or a single resource) into validated
    R4B resource objects, one :class:`Issue` per invalid entry.

    Raises
    ------
    InputError
        Not JSON, or no ``resourceType``.
    """
    from fhir.resources.R4B import get_fhir_model_class

    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read: {e}", where=str(p)) from e
    except json.JSONDecodeError as e:
        raise InputError(f"not valid JSON (line {e.lineno}: {e.msg})", where=str(p)) from e
    if not isinstance(data, dict) or "resourceType" not in data:
        raise InputError("not a FHIR resource: no resourceType", where=str(p))
    out = FhirResources(source=str(p))
    if data["resourceType"] == "Bundle":
        raw = [(i, (e or {}).get("resource")) for i, e in enumerate(data.get("entry") or [])]
    else:
        raw = [(0, data)]
    out.n_entries = len(raw)
    for i, res in raw:
        if not isinstance(res, dict) or "resourceType" not in res:
            out.issues.append(Issue(f"entry {i}: no resource or resourceType; skipped", str(p)))
            continue
        rtype = str(res["resourceType"])
        try:
            cls = get_fhir_model_class(rtype)
        except (KeyError, ValueError) as e:
            out.issues.append(Issue(f"entry {i}: unknown resourceType {rtype!r} ({e}); skipped", str(p)))
            continue
        try:
            obj = cls.model_validate(res)
        except ValueError as e:  # pydantic.ValidationError is a ValueError
            rid = res.get("id", "?")
            out.issues.append(Issue(f"entry {i} ({rtype}/{rid}): invalid, {_one_line_validation(e)}; skipped", str(p)))
            continue
        out.by_type.setdefault(rtype, []).append((i, obj))
    return out


def codings(concept: Any) -> list[tuple[str, str, str]]:
    """``(system, code, display)`` of a CodeableConcept, plus ``("text", "", text)``."""
    if concept is None:
        return []
    out = [(c.system or "", c.code or "", c.display or "") for c in (concept.coding or [])]
    if concept.text:
        out.append(("text", "", concept.text))
    return out


def _text_of(concept: Any) -> str:
    return " ".join(d for _, _, d in codings(concept) if d).lower()


def patient_from_fhir(patient: Any) -> PatientInfo:
    """PatientInfo from a FHIR Patient: the first identifier (MR preferred),
    the official name, birthDate and gender."""
    pid = None
    idents = list(patient.identifier or [])
    idents.sort(key=lambda i: 0 if any(c.code == "MR" for c in ((i.type.coding if i.type else None) or [])) else 1)
    for ident in idents:
        if ident.value:
            pid = ident.value
            break
    # The resource id is a server-local logical id, not the patient's ID: not used
    # (name, birth date and sex are still compared when no identifier is given).
    name = None
    for n in patient.name or []:
        if n.text:
            name = n.text
        else:
            parts = [*(n.given or []), n.family or ""]
            name = " ".join(x for x in parts if x).strip() or None
        if name and (n.use in (None, "official", "usual")):
            break
    sex = {"female": "F", "male": "M", "other": "O"}.get(patient.gender or "")
    bd = patient.birthDate
    if isinstance(bd, datetime):
        bd = bd.date()
    return PatientInfo(patient_id=pid, name=name, birth_date=bd, sex=sex)  # type: ignore[arg-type]


def age_at(birth: date | None, when: date | None) -> float | None:
    """Whole years between birth and ``when`` (today when ``when`` is None)."""
    if birth is None:
        return None
    when = when or date.today()
    years = when.year - birth.year - ((when.month, when.day) < (birth.month, birth.day))
    return float(years) if years >= 0 else None


def _obs_date(obs: Any) -> date | None:
    d = obs.effectiveDateTime or (obs.effectivePeriod.start if obs.effectivePeriod else None) or obs.issued
    if isinstance(d, datetime):
        return d.date()
    return d if isinstance(d, date) else None


def read_clinical_fhir(path: str | Path, *, reference_date: date | None = None) -> ClinicalFacts:
    """Clinical facts from a FHIR R4 Bundle (or single resource).

    Reads: Patient (identity, age at ``reference_date``), smoking status
    (LOINC 72166-2 with a SNOMED value), pack-years (LOINC 8664-5, SNOMED
    401201003 or a code text containing "pack-year"), years since quitting (a
    quantity in years, or a quit date), FamilyMemberHistory of lung cancer,
    Conditions of emphysema or cancer. Unknown facts stay ``None``.

    Raises
    ------
    InputError
        Not FHIR JSON, or nothing clinical in it.
    """
    p = Path(path)
    res = load_fhir_resources(p)
    issues = list(res.issues)
    patient = None
    pats = res.of("Patient")
    if pats:
        patient = patient_from_fhir(pats[0][1])
        if len(pats) > 1:
            issues.append(Issue(f"{len(pats)} Patient resources; the first is used", str(p)))
    smoking = None
    pack_years = None
    years_since_quit = None
    quit_date: date | None = None
    for i, obs in res.of("Observation"):
        cs = codings(obs.code)
        codes = {c for _, c, _ in cs}
        text = _text_of(obs.code)
        if "72166-2" in codes or "smoking status" in text:
            vc = obs.valueCodeableConcept
            status = None
            found = False
            for _, code, disp in codings(vc):
                if code in _SMOKING_SNOMED:
                    status, found = _SMOKING_SNOMED[code], True
                    break
                dl = disp.lower()
                for word, st in (("never", "never"), ("former", "former"), ("ex-", "former"), ("current", "current"), ("smoker", "current")):
                    if word in dl:
                        status, found = st, True
                        break
                if found:
                    break
            if not found:
                issues.append(Issue(f"entry {i}: smoking status value not understood; ignored", str(p)))
            smoking = status if found else smoking
            continue
        if codes & _PACK_YEAR_CODES or "pack-year" in text or "pack year" in text or "pack_year" in text:
            if obs.valueQuantity is not None and obs.valueQuantity.value is not None:
                pack_years = float(obs.valueQuantity.value)
            else:
                issues.append(Issue(f"entry {i}: pack-years without a numeric value; ignored", str(p)))
            continue
        if "quit" in text or "stopped smoking" in text:
            if obs.valueQuantity is not None and obs.valueQuantity.value is not None:
                unit = (obs.valueQuantity.code or obs.valueQuantity.unit or "a").lower()
                v = float(obs.valueQuantity.value)
                years_since_quit = v / 12.0 if unit.startswith("mo") else v
            elif obs.valueDateTime is not None:
                qd = obs.valueDateTime
                quit_date = qd.date() if isinstance(qd, datetime) else qd
            continue
    if years_since_quit is None and quit_date is not None:
        years_since_quit = age_at(quit_date, reference_date)
    family = None
    for _, fmh in res.of("FamilyMemberHistory"):
        for cond in fmh.condition or []:
            cs = codings(cond.code)
            t = _text_of(cond.code)
            if {c for _, c, _ in cs} & _LUNG_CANCER_SNOMED or (
                "lung" in t and any(w in t for w in ("cancer", "carcinoma", "neoplasm", "malignan", "tumo"))
            ):
                family = True
        if family is None and fmh.condition:
            family = False
    emphysema = None
    known_cancer = None
    for _, cond in res.of("Condition"):
        cs = codings(cond.code)
        t = _text_of(cond.code)
        codes = {c for _, c, _ in cs}
        if codes & _EMPHYSEMA_SNOMED or "emphysema" in t:
            emphysema = True
        if codes & _LUNG_CANCER_SNOMED or any(w in t for w in ("cancer", "carcinoma", "malignant neoplasm", "lymphoma", "melanoma")):
            known_cancer = True
    if patient is None and smoking is None and pack_years is None and family is None and emphysema is None:
        raise InputError(
            "no Patient, smoking, family-history or condition resource found",
            where=str(p),
            fix="expected a FHIR R4 Bundle with Patient and Observation/FamilyMemberHistory resources",
        )
    return ClinicalFacts(
        age_years=age_at(patient.birth_date, reference_date) if patient else None,
        sex=patient.sex if patient else None,
        smoking_status=smoking,  # type: ignore[arg-type]
        pack_years=pack_years,
        years_since_quit=years_since_quit,
        family_history_lung_cancer=family,
        emphysema=emphysema,
        known_cancer=known_cancer,
        source=str(p),
        patient=patient,
        issues=tuple(issues),
    )
