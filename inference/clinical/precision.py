"""The precision-medicine aggregator the pipeline calls: read the genomic, lab
and clinical files, check that they all belong to the CT's patient, and write
the ``genomics``, ``labs``, ``derived`` and ``identity`` blocks of
findings.json.

Why data is held back on an identity conflict instead of raising: the rest of
the analysis (the CT) is still valid and useful; but another patient's
mutation must never reach the treatment suggestions. So a mismatching file's
data is left out, a warning says which file names whom and how to confirm,
and ``identity`` records the conflict. After a person confirms
(``confirmed_identity=True``, e.g. a ``--confirm-identity`` CLI flag) the data
is combined and the conflict stays recorded.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from inference.clinical.egfr import egfr_from_labs
from inference.clinical.identity import compare_identities
from inference.clinical.knowledge import load_kb
from inference.errors import InputError
from inference.io.fhir_clinical import age_at
from inference.io.genomics import GenomicsResult, pgx_calls, read_genomics
from inference.io.labs import LabsResult, lab_series, read_labs
from inference.types import ClinicalFacts, Issue, PatientInfo

__all__ = ["ClinicalInputs", "read_clinical_inputs", "fill_findings", "DISCLAIMER"]

DISCLAIMER = "decision support: verify against current guidelines"


@dataclass
class ClinicalInputs:
    """Everything read from the non-imaging inputs of one analysis.

    ``genomics``/``labs``/``derived`` hold the data of the sources that agree
    with the CT's patient (or of all sources once identity is confirmed);
    ``identity`` says which sources were held back.
    """

    facts: ClinicalFacts
    genomics: dict[str, Any]
    labs: list[dict[str, Any]]
    derived: dict[str, Any]
    identity: dict[str, Any]
    issues: list[Issue] = field(default_factory=list)
    genomics_results: list[GenomicsResult] = field(default_factory=list)
    labs_results: list[LabsResult] = field(default_factory=list)
    clinical_facts: ClinicalFacts | None = None
    dicom_patient: PatientInfo | None = None
    study_date: date | None = None
    source_files: dict[str, str] = field(default_factory=dict)  # identity key -> path


def _key(kind: str, path: str | Path) -> str:
    return f"{kind}:{Path(path).name}"


def _pdl1_from_labs(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """PD-L1 TPS reported in a lab file (FHIR LOINC 85147-7 with a % value, or a
    CSV row named PD-L1) becomes a biomarker row, so the PD-L1 rules see it
    wherever the lab system put it."""
    kb = load_kb()
    out = []
    for r in rows:
        if r.get("analyte") != "pdl1_tps" or r.get("unit_status") not in ("ok", "converted"):
            continue
        tps = float(r["value"])
        tier = next((e for e in kb.pdl1 if "tps_min" in e and e["tps_min"] <= tps <= e["tps_max"]), None)
        out.append(
            {
                "gene": "PD-L1", "alteration": "TPS", "value": f"{tps:g} %", "tps": tps,
                "tier": tier["tier"] if tier else None, "source_kb": tier["source"] if tier else None,
                "present": True, "actionable": False, "evidence_level": None, "drugs": [], "kb_id": None,
                "source": r.get("source"), "line": r.get("line"), "entry": r.get("entry"), "date": r.get("date"),
                "from_labs": True,
            }  # fmt: skip
        )
    return out


def _combine_genomics(parts: list[GenomicsResult], labs_rows: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    extra = _pdl1_from_labs(labs_rows or [])
    if not parts and not extra:
        return {}
    variants: list[dict[str, Any]] = []
    biomarkers: list[dict[str, Any]] = []
    for r in parts:
        for v in r.variants:
            variants.append({**v, "source": r.source})
        biomarkers.extend({**b, "source": r.source} for b in r.biomarkers)
    biomarkers.extend(extra)
    builds = sorted({r.build for r in parts if r.build})
    first = parts[0] if parts else None
    return {
        "source": "; ".join([r.source for r in parts] + sorted({str(b["source"]) for b in extra})),
        "build": builds[0] if len(builds) == 1 else (", ".join(builds) if builds else None),
        "sample": (first.tumor_sample or (first.samples[0] if first.samples else None)) if first else None,
        "variants": variants,
        "biomarkers": biomarkers,
        "pgx": pgx_calls(variants + biomarkers),
        "issues": [i.one_line() for r in parts for i in r.issues],
        "files": [
            {
                "source": r.source,
                "kind": r.kind,
                "build": r.build,
                "build_evidence": r.build_evidence,
                "samples": r.samples,
                "tumor_sample": r.tumor_sample,
                "normal_sample": r.normal_sample,
                "annotation": r.annotation,
                "n_variants": len(r.variants),
                "n_biomarkers": len(r.biomarkers),
            }
            for r in parts
        ],
    }


def _combine_labs(parts: list[LabsResult]) -> list[dict[str, Any]]:
    """Rows of all files; the same result given twice (CSV and FHIR of one
    lab) is kept once: same analyte, day and value."""
    seen: set[tuple[Any, ...]] = set()
    rows: list[dict[str, Any]] = []
    for r in parts:
        for row in r.rows:
            k = (row.get("analyte") or row["name"], row["date"], row["value"], row["unit"])
            if k in seen:
                continue
            seen.add(k)
            rows.append(row)
    rows.sort(key=lambda x: (x["name"], x["date"]))
    return rows


def _trusted(inputs_identity: dict[str, Any], confirmed: bool) -> set[str]:
    """Identity keys whose data may be combined."""
    if inputs_identity.get("consistent", True) or confirmed:
        return set(inputs_identity.get("sources", {}))
    return set(inputs_identity.get("sources", {})) - set(inputs_identity.get("mismatched_sources", []))


def _facts_and_derived(
    *,
    clinical: ClinicalFacts | None,
    clinical_ok: bool,
    dicom_patient: PatientInfo | None,
    lab_patients: list[PatientInfo],
    study_date: date | None,
    labs: list[dict[str, Any]],
) -> tuple[ClinicalFacts, dict[str, Any]]:
    base = clinical if (clinical is not None and clinical_ok) else ClinicalFacts()
    patients = [p for p in ([base.patient] if base.patient else []) + ([dicom_patient] if dicom_patient else []) + lab_patients]
    birth = next((p.birth_date for p in patients if p.birth_date), None)
    sex = base.sex or next((p.sex for p in patients if p.sex), None)
    age = base.age_years
    if birth is not None:
        age = age_at(birth, study_date)  # recomputed at the study date, not today
    if age is None:
        age = next((p.age_years for p in patients if p.age_years is not None), None)
    facts = dataclasses.replace(base, age_years=age, sex=sex, patient=base.patient or dicom_patient)
    derived = egfr_from_labs(labs, birth_date=birth, age_years=age, sex=sex)
    return facts, derived


def read_clinical_inputs(
    *,
    genomics: list[Path],
    labs: list[Path],
    clinical: Path | None,
    dicom_patient: PatientInfo | None,
    study_date: date | None,
    confirmed_identity: bool = False,
) -> ClinicalInputs:
    """Read every non-imaging input; never raises for a bad file.

    A file that cannot be used at all becomes an error :class:`Issue` (its
    one line names the file and why); malformed lines inside usable files come
    back as issues too. ``facts`` holds the clinical facts (age computed from
    the birth date at ``study_date`` when missing) of sources that agree with
    the CT's patient, or of all sources with ``confirmed_identity``.
    """
    issues: list[Issue] = []
    gparts: list[GenomicsResult] = []
    lparts: list[LabsResult] = []
    sources: dict[str, PatientInfo | None] = {}
    files: dict[str, str] = {}
    if dicom_patient is not None:
        sources["dicom"] = dicom_patient
    kb = load_kb()
    # genomic and lab files go through the same steps: a file unusable as a whole
    # becomes one error line; its patient identity is recorded for the check below
    readers: tuple[tuple[str, list[Path], Any, list[Any]], ...] = (
        ("genomics", genomics, read_genomics, gparts),
        ("labs", labs, read_labs, lparts),
    )
    for kind, paths, reader, parts in readers:
        for path in paths:
            try:
                r = reader(path, kb=kb)
            except InputError as e:
                issues.append(Issue(e.what, e.where or str(path), code="error"))
                continue
            parts.append(r)
            issues.extend(r.issues)
            sources[_key(kind, path)] = r.patient
            files[_key(kind, path)] = str(path)
    clin: ClinicalFacts | None = None
    if clinical is not None:
        from inference.io.fhir_clinical import read_clinical_fhir

        try:
            clin = read_clinical_fhir(clinical, reference_date=study_date)
        except InputError as e:
            issues.append(Issue(e.what, e.where or str(clinical), code="error"))
        else:
            issues.extend(clin.issues)
            sources[_key("clinical", clinical)] = clin.patient
            files[_key("clinical", clinical)] = str(clinical)
    identity = compare_identities(sources)
    trusted = _trusted(identity, confirmed_identity)
    g_ok = [r for r in gparts if _key("genomics", r.source) in trusted]
    l_ok = [r for r in lparts if _key("labs", r.source) in trusted]
    labs_rows = _combine_labs(l_ok)
    clin_ok = clinical is not None and _key("clinical", clinical) in trusted
    facts, derived = _facts_and_derived(
        clinical=clin,
        clinical_ok=clin_ok,
        dicom_patient=dicom_patient,
        lab_patients=[r.patient for r in l_ok if r.patient],
        study_date=study_date,
        labs=labs_rows,
    )
    return ClinicalInputs(
        facts=facts,
        genomics=_combine_genomics(g_ok, labs_rows),
        labs=labs_rows,
        derived=derived,
        identity=identity,
        issues=issues,
        genomics_results=gparts,
        labs_results=lparts,
        clinical_facts=clin,
        dicom_patient=dicom_patient,
        study_date=study_date,
        source_files=files,
    )


def _identity_warning(identity: dict[str, Any], files: dict[str, str]) -> str:
    parts = []
    for c in identity["conflicts"]:
        vals = ", ".join(f"{k}={v!r}" for k, v in c["values"].items())
        parts.append(f"{c['field']} differs ({vals})")
    held = ", ".join(files.get(k, k) for k in identity.get("mismatched_sources", []))
    return (
        f"identity conflict: {'; '.join(parts)}. Not combined: {held or 'none'}. "
        "If these files belong to the same patient, confirm (CLI: --confirm-identity; viewer: the banner's Confirm button)"
    )


def fill_findings(findings: dict[str, Any], inputs: ClinicalInputs, *, confirmed_identity: bool = False) -> None:
    """Write ``genomics``, ``labs``, ``lab_series``, ``derived``, ``identity``,
    ``knowledge_base`` and ``decision_support_notice`` into ``findings``, and
    one warning per input issue.

    When identity is not consistent and not confirmed, the mismatching
    sources' data is left out (their keys empty) and a warning says which
    file belongs to whom and how to confirm.
    """
    identity = dict(inputs.identity)
    trusted = _trusted(identity, confirmed_identity)
    if confirmed_identity and not identity.get("consistent", True):
        g_parts = inputs.genomics_results
        l_parts = inputs.labs_results
        labs_rows = _combine_labs(l_parts)
        clin_ok = inputs.clinical_facts is not None
        facts, derived = _facts_and_derived(
            clinical=inputs.clinical_facts,
            clinical_ok=clin_ok,
            dicom_patient=inputs.dicom_patient,
            lab_patients=[r.patient for r in l_parts if r.patient],
            study_date=inputs.study_date,
            labs=labs_rows,
        )
        inputs.facts, inputs.genomics, inputs.labs, inputs.derived = facts, _combine_genomics(g_parts, labs_rows), labs_rows, derived
    withheld = sorted(set(identity.get("sources", {})) - trusted)
    identity["confirmed"] = bool(confirmed_identity)
    identity["withheld_sources"] = [inputs.source_files.get(k, k) for k in withheld]
    # None: no genomic file was read at all; {}: files were read but held back
    findings["genomics"] = inputs.genomics if inputs.genomics else ({} if inputs.genomics_results else None)
    findings["labs"] = list(inputs.labs)
    findings["lab_series"] = lab_series(inputs.labs)
    findings["derived"] = dict(inputs.derived)
    findings["identity"] = identity
    kb = load_kb()
    findings["knowledge_base"] = {"version": kb.version, "date": kb.date, "folder": str(kb.folder)}
    findings["decision_support_notice"] = DISCLAIMER
    warnings = findings.setdefault("warnings", [])
    for i in inputs.issues:
        line = i.one_line()
        if line not in warnings:
            warnings.append(line)
    if not identity.get("consistent", True):
        w = _identity_warning(identity, inputs.source_files)
        if confirmed_identity:
            w = "identity conflict confirmed by the user; data combined. " + w.split(". Not combined")[0]
        warnings.append(w)
    pat = findings.get("patient")
    if isinstance(pat, dict):
        f = inputs.facts
        if pat.get("age_years") is None and f.age_years is not None:
            pat["age_years"] = f.age_years
        if pat.get("sex") is None and f.sex is not None:
            pat["sex"] = f.sex
        if pat.get("birth_date") is None and f.patient is not None and f.patient.birth_date is not None:
            pat["birth_date"] = f.patient.birth_date.isoformat()
