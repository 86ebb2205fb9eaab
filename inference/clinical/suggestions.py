"""Treatment and work-up suggestions: rules as data over the whole findings.

The rules live in ``resources/knowledge/suggestion_rules.yaml``; this module
only knows the condition *types* (Lung-RADS, Brock, actionable alteration,
resistance, PD-L1, derived or lab thresholds, pharmacogenomics) and how to
name the facts each rule used. Why: a reviewer can read, date and cite every
rule without reading Python, and adding a threshold does not need a release
of code. Each suggestion carries ``text``, ``drugs``, ``evidence_level``,
``source`` and a ``rationale`` naming the facts; the panel leads with
:data:`DISCLAIMER`.

Suggestions only use what is in ``findings`` (after
:func:`inference.clinical.precision.fill_findings`), so data held back by an
identity conflict never reaches them.
"""

from __future__ import annotations

from typing import Any

from inference.clinical.knowledge import LEVEL_ORDER, KnowledgeBase, load_kb
from inference.clinical.precision import DISCLAIMER, ClinicalInputs

__all__ = ["suggest", "DISCLAIMER", "KIND_ORDER"]

KIND_ORDER = ("workup", "therapy", "caution", "pgx")
_LR_ORDER = ["0", "1", "2", "3", "4A", "4B", "4X"]


def _fmt_drugs(drugs: list[str]) -> str:
    return ", ".join(drugs)


def _alterations(findings: dict[str, Any]) -> list[dict[str, Any]]:
    """Present somatic alterations (variants + biomarker rows) with KB fields."""
    g = findings.get("genomics") or {}
    out = []
    for v in g.get("variants", []) or []:
        if v.get("origin") == "germline" or not v.get("kb_id"):
            continue
        if v.get("filter") not in (None, "PASS", "."):
            continue
        label = v.get("protein_change") or v.get("hgvs_c") or v.get("consequence") or "variant"
        where = _where(v)
        vaf = f", VAF {v['vaf']:.2f}" if isinstance(v.get("vaf"), (int, float)) else ""
        depth = f", depth {v['depth']}" if v.get("depth") else ""
        how = f", matched by {v['matched_by']}" if v.get("matched_by") else ""
        out.append({**v, "label": label, "fact": f"{v['gene']} {label} ({v.get('origin', 'somatic')}{vaf}{depth}; {where}{how})"})
    for b in g.get("biomarkers", []) or []:
        if not b.get("present", True) or not b.get("kb_id"):
            continue
        where = _where(b)
        out.append({**b, "label": b.get("alteration"), "fact": f"{b['gene']} {b.get('alteration')} = {b.get('value')!s} ({where})"})
    return out


def _where(item: dict[str, Any]) -> str:
    """``file line N`` (CSV, VCF, MAF) or ``file entry N`` (FHIR Bundle)."""
    f = _short(item.get("source"))
    if item.get("line") is not None:
        return f"{f} line {item['line']}"
    if item.get("entry") is not None:
        return f"{f} entry {item['entry']}"
    return f


def _short(path: Any) -> str:
    if not path:
        return "?"
    from pathlib import Path

    return "; ".join(Path(p.strip()).name for p in str(path).split(";"))


def _latest(findings: dict[str, Any], analyte: str) -> dict[str, Any] | None:
    rows = [
        r
        for r in findings.get("labs", []) or []
        if r.get("analyte") == analyte and r.get("unit_status") in ("ok", "converted") and isinstance(r.get("value"), (int, float))
    ]
    return max(rows, key=lambda r: r["date"]) if rows else None


def _rule_source(rule: dict[str, Any], kb: KnowledgeBase) -> str:
    src = rule.get("source", "")
    date = rule.get("date") or kb.rules.get("date", "")
    return f"{src} (KB {kb.rules.get('version', '')}, {date})"


def _base(rule: dict[str, Any], kb: KnowledgeBase, text: str, rationale: str, **kw: Any) -> dict[str, Any]:
    s = {
        "kind": rule["kind"],
        "text": text,
        "drugs": list(kw.pop("drugs", rule.get("drugs") or [])),
        "evidence_level": kw.pop("evidence_level", rule.get("evidence_level")),
        "source": kw.pop("source", _rule_source(rule, kb)),
        "rationale": rationale,
        "rule": rule["id"],
        "verified": kw.pop("verified", rule.get("verified", True)),
    }
    note = kw.pop("note", rule.get("note"))
    if note:
        s["note"] = note
    s.update(kw)
    return s


def suggest(findings: dict[str, Any], inputs: ClinicalInputs | None = None) -> list[dict[str, Any]]:
    """Evaluate the suggestion rules over ``findings``.

    Parameters
    ----------
    findings
        The findings dict after the risk scores (``nodules[].brock_probability``,
        ``lung_rads``, ``exam.lung_rads.category``) and
        :func:`~inference.clinical.precision.fill_findings` have filled it.
    inputs
        The :class:`ClinicalInputs`; used for the clinical facts named in the
        rationale (may be ``None``).

    Returns
    -------
    list of dict
        ``{kind, text, drugs, evidence_level, source, rationale, rule,
        verified}`` ordered work-up, therapy, caution, pharmacogenomics.
        :data:`DISCLAIMER` is also written to
        ``findings["decision_support_notice"]`` for the panel's header.
    """
    kb = load_kb()
    findings.setdefault("decision_support_notice", DISCLAIMER)
    out: list[dict[str, Any]] = []
    alterations = _alterations(findings)
    drivers = [a for a in alterations if a.get("evidence_level") in LEVEL_ORDER[:3] and a.get("actionable")]
    for rule in kb.rules.get("rules", []):
        cond = rule.get("when", {})
        t = cond.get("type")
        if t == "lung_rads":
            out += _lung_rads(rule, cond, findings, kb)
        elif t == "brock":
            out += _brock(rule, cond, findings, kb)
        elif t == "actionable":
            out += _actionable(rule, cond, alterations, kb)
        elif t == "resistance":
            out += _resistance(rule, cond, alterations, kb)
        elif t == "pdl1":
            out += _pdl1(rule, cond, findings, drivers, kb)
        elif t == "derived_below":
            d = findings.get("derived") or {}
            val = d.get(cond["key"])
            if isinstance(val, (int, float)) and val < cond["value"]:
                text = rule["text"].format(value=val)
                out.append(_base(rule, kb, text, f"{cond['key']} = {val} < {cond['value']}: {d.get('egfr_source', '')}"))
        elif t == "lab_below":
            r = _latest(findings, cond["analyte"])
            if r and r["value"] < cond["value"]:
                text = rule["text"].format(value=r["value"], date=r["date"])
                out.append(_base(rule, kb, text, f"latest {r['name']} {r['value']} {r['unit']} on {r['date']} ({_where(r)}) < {cond['value']}"))
        elif t == "lab_above_uln":
            r = _latest(findings, cond["analyte"])
            if r and r.get("ref_high") is not None and r["value"] > cond.get("factor", 1.0) * r["ref_high"]:
                text = rule["text"].format(value=r["value"], uln=r["ref_high"], date=r["date"])
                out.append(_base(rule, kb, text, f"latest {r['name']} {r['value']} {r['unit']} on {r['date']} above upper limit {r['ref_high']} ({_where(r)})"))
        elif t == "pgx":
            for call in (findings.get("genomics") or {}).get("pgx", []) or []:
                if call["gene"] == cond["gene"] and call.get("action") in cond.get("actions", []):
                    text = rule["text"].format(**{k: call.get(k) for k in ("genotype", "activity_score", "phenotype", "recommendation")})
                    out.append(
                        _base(
                            rule, kb, text,
                            f"germline {call['gene']} {call['genotype']} -> activity score {call['activity_score']} "
                            f"({call['phenotype']}); CPIC/DPWG table",
                            dose_percent=call.get("dose_percent"),
                        )  # fmt: skip
                    )
    out.sort(key=lambda s: KIND_ORDER.index(s["kind"]) if s["kind"] in KIND_ORDER else len(KIND_ORDER))
    return out


def _lung_rads(rule: dict[str, Any], cond: dict[str, Any], findings: dict[str, Any], kb: KnowledgeBase) -> list[dict[str, Any]]:
    exam = (findings.get("exam") or {}).get("lung_rads") or {}
    cat = exam.get("category")
    where = "exam Lung-RADS"
    if not cat:
        cats = [str(n.get("lung_rads")) for n in findings.get("nodules", []) or [] if n.get("lung_rads") and n.get("review") != "rejected"]
        cats = [c for c in cats if c in _LR_ORDER]
        if cats:
            cat = max(cats, key=_LR_ORDER.index)
            where = "highest nodule Lung-RADS"
    if not cat or str(cat) not in cond.get("categories", []):
        return []
    text = rule["text"].format(category=cat)
    return [_base(rule, kb, text, f"{where} {cat} ({exam.get('version', 'v2022')})")]


def _brock(rule: dict[str, Any], cond: dict[str, Any], findings: dict[str, Any], kb: KnowledgeBase) -> list[dict[str, Any]]:
    best = None
    for n in findings.get("nodules", []) or []:
        p = n.get("brock_probability")
        if isinstance(p, (int, float)) and n.get("review") != "rejected" and (best is None or p > best["brock_probability"]):
            best = n
    if best is None or best["brock_probability"] < cond["min"]:
        return []
    p = best["brock_probability"]
    text = rule["text"].format(probability_pct=f"{100 * p:.1f}", nodule=best.get("id"))
    size = best.get("mean_diameter_mm") or best.get("long_axis_mm")
    size_s = f", {size:.1f} mm" if isinstance(size, (int, float)) else ""
    size_s += f" {best['type']}" if best.get("type") else ""
    return [_base(rule, kb, text, f"nodule {best.get('id')}{size_s}: Brock {100 * p:.1f} % >= {100 * cond['min']:.0f} %")]


def _actionable(rule: dict[str, Any], cond: dict[str, Any], alterations: list[dict[str, Any]], kb: KnowledgeBase) -> list[dict[str, Any]]:
    out = []
    seen: set[str] = set()
    by_id = {e.id: e for e in kb.entries}
    for a in alterations:
        e = by_id.get(a["kb_id"])
        if e is None or e.id in seen:
            continue
        lv = e.level
        if lv not in cond.get("levels", []) or e.match.get("review_only"):
            continue
        seen.add(e.id)
        drugs = list(e.levels.get(lv, []))
        text = rule["text"].format(gene=e.gene, alteration=a["label"], level=lv, drug_list=_fmt_drugs(drugs))
        if e.first_line:
            text += f"; first line: {_fmt_drugs(list(e.first_line))}"
        others = [f"level {k}: {_fmt_drugs(v)}" for k, v in e.levels.items() if k != lv and k in LEVEL_ORDER and v]
        rationale = f"{a['fact']} -> KB {e.id} ({e.alteration})" + (f"; also {'; '.join(others)}" if others else "")
        note = e.note if not e.verified or e.note else None
        out.append(
            _base(
                rule, kb, text, rationale,
                drugs=drugs, evidence_level=lv, source=f"{e.source} (KB entry {e.id}, {e.date})",
                verified=e.verified, note=note, kb_id=e.id,
            )  # fmt: skip
        )
    return out


def _resistance(rule: dict[str, Any], cond: dict[str, Any], alterations: list[dict[str, Any]], kb: KnowledgeBase) -> list[dict[str, Any]]:
    out = []
    seen: set[tuple[str, str]] = set()
    by_id = {e.id: e for e in kb.entries}
    for a in alterations:
        for m in a.get("kb_matches", []) or []:
            e = by_id.get(m["kb_id"])
            if e is None:
                continue
            for lv in cond.get("levels", []):
                drugs = e.levels.get(lv) or []
                if not drugs or (e.id, lv) in seen:
                    continue
                seen.add((e.id, lv))
                text = rule["text"].format(gene=e.gene, alteration=a["label"], level=lv, drug_list=_fmt_drugs(drugs))
                out.append(
                    _base(
                        rule, kb, text, f"{a['fact']} -> KB {e.id} ({e.alteration}) level {lv}",
                        drugs=list(drugs), evidence_level=lv, source=f"{e.source} (KB entry {e.id}, {e.date})",
                        verified=e.verified, note=e.note or None, kb_id=e.id,
                    )  # fmt: skip
                )
    return out


def _pdl1(
    rule: dict[str, Any], cond: dict[str, Any], findings: dict[str, Any], drivers: list[dict[str, Any]], kb: KnowledgeBase
) -> list[dict[str, Any]]:
    g = findings.get("genomics") or {}
    rows = [b for b in g.get("biomarkers", []) or [] if b.get("gene") == "PD-L1" and isinstance(b.get("tps"), (int, float))]
    if not rows:
        return []
    b = rows[-1]
    tps = float(b["tps"])
    if not cond["tps_min"] <= tps <= cond["tps_max"]:
        return []
    has_driver = bool(drivers)
    if cond.get("no_driver", True) == has_driver:
        return []
    n_var = len(g.get("variants", []) or [])
    driver_names = ", ".join(f"{d['gene']} {d['label']}" for d in drivers)
    text = rule["text"].format(tps=f"{tps:g}", drivers=driver_names)
    where = _where(b)
    if has_driver:
        rationale = f"PD-L1 TPS {tps:g} % ({where}); actionable driver(s): {driver_names}"
    else:
        rationale = (
            f"PD-L1 TPS {tps:g} % ({where}); no actionable driver among {n_var} variant(s) and "
            f"{len(g.get('biomarkers', []) or [])} biomarker row(s)"
        )
    return [_base(rule, kb, text, rationale)]
