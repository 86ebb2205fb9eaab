"""``clinview info FILE`` for genomic, lab and clinical files: what was read,
what was skipped and why.

Why a text description rather than a dump: the user's question is "did the
tool understand my file?", so the lines name the detected kind, genome build
(and the evidence for it), samples and patient identity, the key variants with
their evidence level, the lab analytes with their date range, and one line per
skipped record with its reason.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from inference.errors import InputError
from inference.types import Issue, PatientInfo

__all__ = ["describe_file", "detect_kind"]

_MAX_VARIANT_LINES = 40


def detect_kind(path: Path) -> str | None:
    """``vcf``, ``maf``, ``biomarkers``, ``labs_csv``, ``fhir`` or ``None``."""
    from inference.io.genomics import _read_lines, detect_genomic_kind

    with open(path, "rb") as fh:
        head = fh.read(4096)
    if head.lstrip().startswith(b"{"):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None
        return "fhir" if isinstance(data, dict) and "resourceType" in data else None
    lines = _read_lines(path)[:200]
    kind = detect_genomic_kind(path, lines)
    if kind:
        return kind
    first = next((ln for ln in lines if ln.strip() and not ln.startswith("#")), "")
    cols = {c.strip().lower() for c in first.replace(";", ",").replace("\t", ",").split(",")}
    if ("value" in cols or "result" in cols) and (cols & {"loinc", "name", "test", "analyte", "code"}):
        return "labs_csv"
    return None


def _patient_line(p: PatientInfo | None, evidence: str = "") -> str:
    if p is None:
        return "patient: not stated in the file"
    parts = [f"ID {p.patient_id}" if p.patient_id else None, f"name {p.name}" if p.name else None,
             f"born {p.birth_date.isoformat()}" if p.birth_date else None, f"sex {p.sex}" if p.sex else None]  # fmt: skip
    s = "patient: " + ", ".join(x for x in parts if x)
    return s + (f" (from {evidence})" if evidence else "")


def _issue_lines(issues: list[Issue]) -> list[str]:
    if not issues:
        return ["skipped: nothing"]
    return [f"skipped or noted ({len(issues)}):"] + [f"  {i.one_line()}" for i in issues]


def _describe_genomics(path: Path) -> tuple[list[str], bool]:
    from inference.io.genomics import read_genomics, pgx_calls

    r = read_genomics(path)
    lines = []
    if r.kind == "vcf":
        lines.append(f"{path}: VCF, annotation {r.annotation}, {r.n_lines} record line(s)")
        lines.append(f"genome build: {r.build or 'not detected'}" + (f" (from {r.build_evidence})" if r.build_evidence else ""))
        roles = []
        for s in r.samples:
            role = "tumour" if s == r.tumor_sample else ("normal" if s == r.normal_sample else "")
            roles.append(f"{s} ({role})" if role else s)
        lines.append("samples: " + (", ".join(roles) if roles else "none (sites only)"))
    elif r.kind == "maf":
        lines.append(f"{path}: MAF, {r.n_lines} row(s)")
        lines.append(f"genome build: {r.build or 'not detected'}" + (f" (from {r.build_evidence})" if r.build_evidence else ""))
        lines.append("samples: " + (", ".join(r.samples) if r.samples else "none"))
    else:
        lines.append(f"{path}: biomarker table, {r.n_lines} row(s)")
    lines.append(_patient_line(r.patient, r.patient_evidence))
    if r.variants:
        n_act = sum(1 for v in r.variants if v.get("actionable"))
        lines.append(f"{len(r.variants)} variant(s) read, {n_act} actionable:")
        shown = sorted(r.variants, key=lambda v: (not v.get("actionable"), not v.get("pgx"), v.get("gene") or "~"))
        for v in shown[:_MAX_VARIANT_LINES]:
            loc = f"{v['chrom']}:{v['pos']} {v['ref']}>{v['alt']}" if v.get("chrom") else ""
            vaf = f" VAF {v['vaf']:.2f}" if isinstance(v.get("vaf"), (int, float)) else ""
            dp = f" depth {v['depth']}" if v.get("depth") else ""
            lvl = f"  OncoKB level {v['evidence_level']} ({v['kb_id']})" if v.get("evidence_level") else ""
            pgx = f"  PGx {v['pgx']['gene']} {v['pgx']['allele']} {v.get('zygosity') or ''}" if v.get("pgx") else ""
            name = f"{v.get('gene') or '(no gene)'} {v.get('protein_change') or v.get('hgvs_c') or ''}".strip()
            lines.append(f"  {name} {loc}{vaf}{dp} {v.get('origin', '')}{lvl}{pgx}".rstrip())
        if len(shown) > _MAX_VARIANT_LINES:
            lines.append(f"  ... {len(shown) - _MAX_VARIANT_LINES} more")
    if r.biomarkers:
        lines.append(f"{len(r.biomarkers)} biomarker row(s):")
        for b in r.biomarkers:
            extra = ""
            if b.get("tps") is not None:
                extra = f"  TPS {b['tps']:g} % ({b.get('tier')})"
            elif b.get("evidence_level"):
                extra = f"  OncoKB level {b['evidence_level']} ({b['kb_id']})"
            elif b.get("pgx"):
                extra = f"  PGx {b['pgx']['allele']} {b.get('zygosity')}"
            absent = "" if b.get("present", True) else "  (absent)"
            lines.append(f"  {b['gene']} {b['alteration']} = {b.get('value')}{extra}{absent}")
    for c in pgx_calls(r.variants + r.biomarkers):
        lines.append(f"pharmacogenomics: {c['gene']} {c['genotype']}, activity score {c['activity_score']:g} -> {c['phenotype']}: {c['recommendation']}")
    lines += _issue_lines(r.issues)
    return lines, r.usable


def _describe_labs(res: Any, path: Path, header: str) -> list[str]:
    from inference.io.labs import UNIT_NOT_UNDERSTOOD

    lines = [f"{path}: {header}, {len(res.rows)} result(s) read"]
    lines.append(_patient_line(res.patient))
    by: dict[str, list[dict[str, Any]]] = {}
    for r in res.rows:
        by.setdefault(r["name"], []).append(r)
    for name, rows in sorted(by.items()):
        rows.sort(key=lambda r: r["date"])
        last = rows[-1]
        unit_note = " (unit not understood)" if last.get("unit_status") == UNIT_NOT_UNDERSTOOD else ""
        conv = f" (converted from {last['original_value']} {last['original_unit']})" if last.get("unit_status") == "converted" else ""
        flag = f" {last['flag']}" if last.get("flag") else ""
        span = rows[0]["date"] if len(rows) == 1 else f"{rows[0]['date']} .. {last['date']}"
        lines.append(
            f"  {name} ({last.get('loinc') or 'no LOINC'}): {len(rows)} result(s) {span}; latest {last['value']:g} {last['unit']}{flag}{conv}{unit_note}"
        )
    return lines


def _describe_fhir(path: Path) -> tuple[list[str], bool]:
    from inference.io.fhir_clinical import load_fhir_resources, read_clinical_fhir
    from inference.io.labs import read_labs_fhir

    fr = load_fhir_resources(path)
    counts = ", ".join(f"{len(v)} {k}" for k, v in sorted(fr.by_type.items())) or "no valid resource"
    lines = [f"{path}: FHIR, {fr.n_entries} entr(y/ies): {counts}"]
    usable = False
    issues: list[Issue] = list(fr.issues)
    try:
        labs = read_labs_fhir(path)
    except InputError:
        labs = None
    if labs is not None:
        usable = True
        lines += _describe_labs(labs, path, "lab Observations")[1:]
        issues += [i for i in labs.issues if i not in issues]
    try:
        facts = read_clinical_fhir(path)
    except InputError:
        facts = None
    if facts is not None:
        usable = True
        if labs is None:
            lines.append(_patient_line(facts.patient))
        known = {
            "age (today)": facts.age_years,
            "sex": facts.sex,
            "smoking": facts.smoking_status,
            "pack-years": facts.pack_years,
            "years since quit": facts.years_since_quit,
            "family history of lung cancer": facts.family_history_lung_cancer,
            "emphysema": facts.emphysema,
            "prior cancer": facts.known_cancer,
        }
        stated = [f"{k} {v}" for k, v in known.items() if v is not None]
        if stated:
            lines.append("clinical facts: " + "; ".join(stated))
    if not usable:
        first = f"; first problem: {issues[0].message}" if issues else ""
        return [f"{path}: FHIR JSON without a usable Patient, lab Observation or clinical resource{first}"], False
    lines += _issue_lines(issues)
    return lines, usable


def describe_file(path: Path) -> tuple[list[str], bool]:
    """Lines describing what a genomic, lab or clinical file holds and whether
    it is usable. An unusable file gives one line naming the file and why;
    this function does not raise for bad content."""
    p = Path(path)
    if not p.is_file():
        return [f"{p}: no such file"], False
    try:
        kind = detect_kind(p)
        if kind in ("vcf", "maf", "biomarkers"):
            return _describe_genomics(p)
        if kind == "labs_csv":
            from inference.io.labs import read_labs_csv

            res = read_labs_csv(p)
            return _describe_labs(res, p, "labs CSV") + _issue_lines(res.issues), res.usable
        if kind == "fhir":
            return _describe_fhir(p)
    except InputError as e:
        return [e.one_line()], False
    except (OSError, UnicodeDecodeError) as e:
        return [f"{p}: cannot read ({e})"], False
    return [
        f"{p}: not a recognised clinical file (expected VCF, MAF, biomarker table gene,alteration,value, "
        "labs CSV with value and loinc/name columns, or FHIR JSON)"
    ], False
