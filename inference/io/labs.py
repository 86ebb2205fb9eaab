"""Lab results from CSV or FHIR R4 Bundles, in canonical units, flagged, with
per-analyte series for trend plots.

Why pint with a custom registry: lab units come in many spellings
(``10^9/L``, ``10*9/L`` (UCUM), ``/µL``, ``IU/L``, ``µmol/L``) and a silent
mis-conversion is worse than none. Every unit is parsed into a pint quantity
and converted to the analyte's canonical unit; molar <-> mass conversions use
the analyte's molar mass from the knowledge base (creatinine 113.12 g/mol,
which reproduces the clinical factor 88.4). A unit pint cannot parse, or one
of the wrong dimension, keeps the row as *unit not understood* with an
:class:`Issue`; it is never converted by guesswork and never used for eGFR.
"""

from __future__ import annotations

import csv
import io
import re
import tokenize
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from inference.clinical.knowledge import KnowledgeBase, LabAnalyte, load_kb
from inference.errors import InputError
from inference.types import Issue, PatientInfo

__all__ = [
    "LabsResult",
    "read_labs",
    "read_labs_csv",
    "read_labs_fhir",
    "convert_lab_value",
    "lab_series",
    "UNIT_NOT_UNDERSTOOD",
]

UNIT_NOT_UNDERSTOOD = "unit not understood"
_EARLIEST = date(1900, 1, 1)


@dataclass
class LabsResult:
    """Rows (findings ``labs`` dicts), the patient the file names, and issues."""

    source: str
    kind: str  # "csv" | "fhir"
    rows: list[dict[str, Any]] = field(default_factory=list)
    patient: PatientInfo | None = None
    issues: list[Issue] = field(default_factory=list)
    n_lines: int = 0

    @property
    def usable(self) -> bool:
        return bool(self.rows)


@lru_cache(maxsize=1)
def _ureg() -> Any:
    import pint

    ureg = pint.UnitRegistry(autoconvert_offset_to_baseunit=True)
    # International unit of enzyme activity == pint's enzyme_unit (U, umol/min)
    ureg.define("international_unit = enzyme_unit = IU")
    return ureg


def _normalise_unit(u: str) -> str | None:
    """Lab spellings → a pint expression; ``None`` when empty."""
    s = u.strip()
    if not s:
        return None
    s = s.replace("µ", "u").replace("μ", "u").replace("×", "x").replace(" ", "")
    s = re.sub(r"\{[^}]*\}", "", s)  # UCUM annotations {cells}
    low = s.lower()
    # counts per volume: 10^9/L, 10*9/L, x10E9/L, G/L, 10^3/uL, K/uL, /mm3
    m = re.match(r"^x?10[\^*eE]?(\d+)/(l|ul|ml|mm3)$", low)
    if m:
        return f"1e{m.group(1)}/{_vol(m.group(2))}"
    if low in ("g/l",) and u.strip() == "G/L":
        return "1e9/L"
    if low in ("k/ul", "thou/ul", "k/mm3"):
        return "1e3/uL"
    m = re.match(r"^(cells)?/(l|ul|ml|mm3)$", low)
    if m:
        return f"1/{_vol(m.group(2))}"
    if low in ("u/l", "iu/l", "units/l"):
        return "U/L"
    if low in ("%", "percent"):
        return "percent"
    m = re.match(r"^(p|n|u|m|)?(g|mol)/(dl|l|ml)$", low)
    if m:
        return f"{m.group(1) or ''}{m.group(2)}/{_vol(m.group(3))}"
    return s


def _vol(v: str) -> str:
    return {"l": "L", "ul": "uL", "ml": "mL", "dl": "dL", "mm3": "mm**3"}[v.lower()]


def _is_egfr_unit(u: str) -> bool:
    return bool(re.match(r"^ml/min(/1\.73(m2|m\^2|_?m2|sqm|m²)?)?$", re.sub(r"[\s{}]", "", u.lower().replace("µ", "u"))))


def convert_lab_value(value: float, unit: str, analyte: LabAnalyte) -> tuple[float | None, str, str]:
    """Convert ``value`` in ``unit`` to the analyte's canonical unit.

    Returns ``(value, unit, status)`` where status is ``"ok"``, ``"converted"``
    or :data:`UNIT_NOT_UNDERSTOOD` (value ``None``: the caller keeps the
    original).
    """
    import pint

    if analyte.id == "egfr":
        return (value, analyte.unit, "ok") if _is_egfr_unit(unit) else (None, unit, UNIT_NOT_UNDERSTOOD)
    src = _normalise_unit(unit)
    dst = _normalise_unit(analyte.unit)
    if src is None or dst is None:
        return None, unit, UNIT_NOT_UNDERSTOOD
    ureg = _ureg()
    try:
        q = value * ureg(src)
        target = ureg(dst)
        if not hasattr(q, "to"):
            return None, unit, UNIT_NOT_UNDERSTOOD
        if q.dimensionality == target.dimensionality:
            out = q.to(target.units).magnitude / target.magnitude
        elif analyte.molar_mass_g_mol:
            mm = analyte.molar_mass_g_mol * ureg("g/mol")
            if (q * mm).dimensionality == target.dimensionality:
                out = (q * mm).to(target.units).magnitude / target.magnitude
            elif (q / mm).dimensionality == target.dimensionality:
                out = (q / mm).to(target.units).magnitude / target.magnitude
            else:
                return None, unit, UNIT_NOT_UNDERSTOOD
        else:
            return None, unit, UNIT_NOT_UNDERSTOOD
    except (pint.errors.PintError, AttributeError, TypeError, ValueError, SyntaxError, tokenize.TokenError):
        return None, unit, UNIT_NOT_UNDERSTOOD
    status = "ok" if abs(out - value) <= 1e-9 * max(1.0, abs(value)) else "converted"
    return float(out), analyte.unit, status


def _parse_value(s: str) -> tuple[float | None, str | None]:
    """``"1.2"`` → (1.2, None); ``"<5"`` → (5.0, "<"); ``"1,2"`` (decimal comma) → 1.2."""
    t = s.strip().replace(" ", "")
    m = re.match(r"^(<=|>=|<|>|≤|≥)?(-?\d+(?:[.,]\d+)?)$", t)
    if not m:
        return None, None
    return float(m.group(2).replace(",", ".")), m.group(1)


def _parse_date(s: str) -> tuple[date | None, str | None]:
    """Date from ISO ``YYYY-MM-DD`` (optionally with a time) or ``DD.MM.YYYY``.
    Returns ``(date, problem)``."""
    t = s.strip()
    if not t:
        return None, "no date"
    for fmt in ("%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%d.%m.%Y", "%Y%m%d"):
        try:
            d = datetime.strptime(t[:19] if "T" in t or " " in t else t, fmt).date()
            break
        except ValueError:
            continue
    else:
        try:
            d = datetime.fromisoformat(t.replace("Z", "+00:00")).date()
        except ValueError:
            return None, f"impossible or unreadable date {t!r}"
    if d < _EARLIEST or d > date.today():
        return None, f"impossible date {t!r} (before 1900 or in the future)"
    return d, None


def _flag(value: float | None, lo: float | None, hi: float | None) -> str | None:
    if value is None:
        return None
    if lo is not None and value < lo:
        return "L"
    if hi is not None and value > hi:
        return "H"
    return None


def _make_row(
    *,
    kb: KnowledgeBase,
    name: str,
    loinc: str | None,
    value: float,
    comparator: str | None,
    unit: str,
    when: date,
    source: str,
    line: int | None,
    ref_low: float | None,
    ref_high: float | None,
    issues: list[Issue],
    where: str,
) -> dict[str, Any]:
    analyte = kb.analyte(loinc=loinc, name=name)
    row: dict[str, Any] = {
        "name": analyte.name if analyte else name,
        "loinc": loinc or (analyte.loinc[0] if analyte else None),
        "analyte": analyte.id if analyte else None,
        "value": value,
        "unit": unit,
        "date": when.isoformat(),
        "flag": None,
        "ref_low": ref_low,
        "ref_high": ref_high,
        "source": source,
        "line": line,
        "comparator": comparator,
        "original_value": value,
        "original_unit": unit,
        "unit_status": "ok",
    }
    if analyte is None:
        issues.append(Issue(f"unknown analyte {name or loinc!r}: kept as given, not flagged", where, line))
        row["unit_status"] = "analyte not known"
        row["flag"] = _flag(value, ref_low, ref_high)
        return row
    conv, cunit, status = convert_lab_value(value, unit, analyte)
    if conv is None:
        issues.append(
            Issue(f"{analyte.name}: unit {unit!r} not understood (expected e.g. {analyte.unit}); row kept unconverted", where, line)
        )
        row["unit_status"] = UNIT_NOT_UNDERSTOOD
        row["flag"] = None
        return row
    factor = conv / value if value else 1.0
    row["value"] = round(conv, 4)
    row["unit"] = cunit
    row["unit_status"] = status
    if ref_low is not None or ref_high is not None:
        # the lab's own range, in the lab's unit: same multiplicative conversion
        row["ref_low"] = round(ref_low * factor, 4) if ref_low is not None and value else ref_low
        row["ref_high"] = round(ref_high * factor, 4) if ref_high is not None and value else ref_high
        row["range_source"] = "lab"
    else:
        row["ref_low"], row["ref_high"] = analyte.ref_low, analyte.ref_high
        row["range_source"] = "typical adult range (knowledge base)"
    row["flag"] = _flag(row["value"], row["ref_low"], row["ref_high"])
    return row


def _dedupe(rows: list[dict[str, Any]], issues: list[Issue], where: str) -> list[dict[str, Any]]:
    seen: dict[tuple[Any, ...], dict[str, Any]] = {}
    out = []
    for r in rows:
        key = (r.get("analyte") or r["name"], r["date"], r.get("time"), r["value"], r["unit"])
        if key in seen:
            first = seen[key].get("line")
            ref = f"line {first}" if first is not None else "an earlier entry"
            issues.append(Issue(f"duplicate of {ref} ({r['name']} {r['value']} {r['unit']} on {r['date']}); skipped", where, r.get("line")))
            continue
        seen[key] = r
        out.append(r)
    return out


_CSV_COLS = {
    "patient_id": ("patient_id", "patientid", "patient", "mrn", "pid"),
    "loinc": ("loinc", "loinc_code", "code"),
    "name": ("name", "test", "analyte", "test_name", "display"),
    "value": ("value", "result", "value_numeric"),
    "unit": ("unit", "units", "ucum"),
    "date": ("date", "datetime", "effective", "collected", "effective_date", "sample_date"),
    "ref_low": ("ref_low", "reference_low", "low"),
    "ref_high": ("ref_high", "reference_high", "high"),
    "range": ("reference_range", "range", "ref_range"),
}


def read_labs_csv(path: str | Path, *, kb: KnowledgeBase | None = None) -> LabsResult:
    """Labs CSV: a header with ``value`` and ``loinc`` or ``name``, plus
    ``unit`` and ``date`` (and optionally ``patient_id``, ``ref_low``,
    ``ref_high`` or ``reference_range``). Comma, semicolon or tab separated.

    Raises
    ------
    InputError
        Missing columns, or no usable row.
    """
    p = Path(path)
    kb = kb or load_kb()
    try:
        text = p.read_text(encoding="utf-8-sig", errors="replace")
    except OSError as e:
        raise InputError(f"cannot read: {e}", where=str(p)) from e
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    delim = "\t" if "\t" in first else (";" if first.count(";") > first.count(",") else ",")
    reader = csv.reader(io.StringIO(text), delimiter=delim)
    rows = list(reader)
    if not rows:
        raise InputError("empty labs file", where=str(p))
    header = [h.strip().lower() for h in rows[0]]
    col: dict[str, int] = {}
    for key, names in _CSV_COLS.items():
        for n in names:
            if n in header:
                col[key] = header.index(n)
                break
    if "value" not in col or ("loinc" not in col and "name" not in col):
        raise InputError(
            "labs CSV needs a 'value' column and a 'loinc' or 'name' column",
            where=str(p),
            fix="header e.g. patient_id,loinc,name,value,unit,date",
        )
    res = LabsResult(source=str(p), kind="csv")
    pids: list[str] = []
    out: list[dict[str, Any]] = []

    def cell(row: list[str], key: str) -> str:
        i = col.get(key)
        return row[i].strip() if i is not None and i < len(row) else ""

    for lineno, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        res.n_lines += 1
        if len(row) != len(header):
            res.issues.append(Issue(f"expected {len(header)} fields, found {len(row)}; row skipped", str(p), lineno))
            continue
        pid = cell(row, "patient_id")
        if pid and pid not in pids:
            pids.append(pid)
        name, loinc = cell(row, "name"), cell(row, "loinc") or None
        value, comp = _parse_value(cell(row, "value"))
        if value is None:
            res.issues.append(Issue(f"value {cell(row, 'value')!r} is not a number; row skipped", str(p), lineno))
            continue
        when, problem = _parse_date(cell(row, "date"))
        if when is None:
            res.issues.append(Issue(f"{problem}; row skipped", str(p), lineno))
            continue
        lo = _parse_value(cell(row, "ref_low"))[0] if cell(row, "ref_low") else None
        hi = _parse_value(cell(row, "ref_high"))[0] if cell(row, "ref_high") else None
        rng = cell(row, "range")
        m = re.match(r"^\s*(\d+(?:\.\d+)?)\s*[-–]\s*(\d+(?:\.\d+)?)\s*$", rng) if rng else None
        if m:
            lo, hi = float(m.group(1)), float(m.group(2))
        r = _make_row(
            kb=kb, name=name, loinc=loinc, value=value, comparator=comp, unit=cell(row, "unit"), when=when,
            source=str(p), line=lineno, ref_low=lo, ref_high=hi, issues=res.issues, where=str(p),
        )  # fmt: skip
        out.append(r)
    res.rows = _dedupe(out, res.issues, str(p))
    if pids:
        res.patient = PatientInfo(patient_id=pids[0])
        if len(pids) > 1:
            res.issues.append(Issue(f"labs file holds {len(pids)} patient IDs ({', '.join(pids[:4])}); identity check uses the first", str(p)))
    if not res.rows:
        raise InputError(f"no usable lab row among {res.n_lines}", where=str(p))
    return res


def read_labs_fhir(path: str | Path, *, kb: KnowledgeBase | None = None) -> LabsResult:
    """Lab Observations (``valueQuantity``) and the Patient from a FHIR R4
    Bundle. Observations that are not numeric labs (smoking status, notes) are
    ignored without an issue; invalid entries each give one issue.

    Raises
    ------
    InputError
        Not FHIR JSON, or no numeric lab Observation.
    """
    from inference.io.fhir_clinical import LOINC, codings, load_fhir_resources, patient_from_fhir

    p = Path(path)
    kb = kb or load_kb()
    fr = load_fhir_resources(p)
    res = LabsResult(source=str(p), kind="fhir", issues=list(fr.issues), n_lines=fr.n_entries)
    pats = fr.of("Patient")
    if pats:
        res.patient = patient_from_fhir(pats[0][1])
    out: list[dict[str, Any]] = []
    for i, obs in fr.of("Observation"):
        q = obs.valueQuantity
        if q is None or q.value is None:
            continue
        cs = codings(obs.code)
        loinc = next((c for s, c, _ in cs if s == LOINC and c), None)
        name = next((d for s, _, d in cs if d), "") or (loinc or "")
        cats = {c for cat in (obs.category or []) for _, c, _ in codings(cat)}
        if kb.analyte(loinc=loinc, name=name) is None and "laboratory" not in cats:
            continue  # pack-years, vital signs ...: not a lab result, not an error
        when_raw = obs.effectiveDateTime or (obs.effectivePeriod.start if obs.effectivePeriod else None) or obs.issued
        if when_raw is None:
            res.issues.append(Issue(f"entry {i} ({name}): no effective date; skipped", str(p)))
            continue
        when = when_raw.date() if isinstance(when_raw, datetime) else when_raw
        if when < _EARLIEST or when > date.today():
            res.issues.append(Issue(f"entry {i} ({name}): impossible date {when.isoformat()}; skipped", str(p)))
            continue
        lo = hi = None
        for rr in obs.referenceRange or []:
            lo = float(rr.low.value) if rr.low is not None and rr.low.value is not None else lo
            hi = float(rr.high.value) if rr.high is not None and rr.high.value is not None else hi
            break
        unit = q.code or q.unit or ""
        r = _make_row(
            kb=kb, name=name, loinc=loinc, value=float(q.value), comparator=q.comparator, unit=unit, when=when,
            source=str(p), line=None, ref_low=lo, ref_high=hi, issues=res.issues, where=str(p),
        )  # fmt: skip
        r["entry"] = i
        if isinstance(when_raw, datetime):
            r["time"] = when_raw.isoformat()
        out.append(r)
    res.rows = _dedupe(out, res.issues, str(p))
    if not res.rows:
        raise InputError("no numeric lab Observation (valueQuantity) found", where=str(p))
    return res


def read_labs(path: str | Path, *, kb: KnowledgeBase | None = None) -> LabsResult:
    """CSV or FHIR JSON, chosen by content (a JSON object with resourceType)."""
    p = Path(path)
    if not p.is_file():
        raise InputError("no such file", where=str(p))
    with open(p, "rb") as fh:
        head = fh.read(512).lstrip()
    if head.startswith(b"{"):
        return read_labs_fhir(p, kb=kb)
    return read_labs_csv(p, kb=kb)


def lab_series(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Per-analyte time series for trend plots: ``{name: [{date, value, unit,
    flag}, ...]}`` sorted by date; rows whose unit was not understood are left
    out because their values are not comparable."""
    series: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r.get("unit_status") in (UNIT_NOT_UNDERSTOOD,):
            continue
        series.setdefault(r["name"], []).append({k: r.get(k) for k in ("date", "value", "unit", "flag", "source")})
    for v in series.values():
        v.sort(key=lambda x: x["date"])
    return series
