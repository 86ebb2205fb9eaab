"""Labs from CSV and FHIR: unit conversion with pint, flags, bad rows, series,
and clinical facts from FHIR."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from inference.clinical.knowledge import load_kb
from inference.errors import InputError
from inference.io.fhir_clinical import read_clinical_fhir
from inference.io.labs import UNIT_NOT_UNDERSTOOD, convert_lab_value, lab_series, read_labs

DATA = Path(__file__).resolve().parents[1] / "data" / "clinical"


def _line_of(path: Path, needle: str) -> int:
    return next(i for i, ln in enumerate(path.read_text().splitlines(), start=1) if needle in ln)


def _rows(res, name):
    return [r for r in res.rows if r["name"] == name]


def test_csv_creatinine_umol_converted_with_factor_88_4_and_flagged():
    res = read_labs(DATA / "labs.csv")
    creat = sorted(_rows(res, "Creatinine"), key=lambda r: r["date"])
    assert creat[0]["original_unit"] == "µmol/L" and creat[0]["unit"] == "mg/dL"
    assert creat[0]["value"] == pytest.approx(106 / 88.4, abs=1e-3)
    assert creat[0]["unit_status"] == "converted" and creat[0]["flag"] is None
    assert creat[1]["value"] == 1.4 and creat[1]["flag"] == "H"
    neut = _rows(res, "Neutrophils")[0]
    assert neut["unit"] == "10^9/L" and neut["flag"] == "L"  # UCUM 10*9/L understood
    bili = _rows(res, "Bilirubin total")[0]
    assert bili["value"] == pytest.approx(30 / 17.1, abs=0.01) and bili["flag"] == "H"
    hb = _rows(res, "Hemoglobin")[0]
    assert hb["loinc"] == "718-7"  # named only; LOINC filled from the knowledge base
    assert res.patient.patient_id == "PT-0042"


def test_csv_unknown_unit_kept_unconverted_with_issue():
    path = DATA / "labs.csv"
    res = read_labs(path)
    cea = _rows(res, "CEA")[0]
    assert cea["unit_status"] == UNIT_NOT_UNDERSTOOD and cea["value"] == 4.2 and cea["unit"] == "furlongs"
    assert cea["flag"] is None
    issue = next(i for i in res.issues if "furlongs" in i.message)
    assert issue.line == _line_of(path, "furlongs") and issue.path == str(path)


def test_csv_duplicate_row_impossible_date_and_bad_value_each_one_issue():
    path = DATA / "labs.csv"
    res = read_labs(path)
    assert len(_rows(res, "Platelets")) == 1
    by_line = {i.line: i.message for i in res.issues}
    plt_lines = [i for i, ln in enumerate(path.read_text().splitlines(), start=1) if ",Platelets," in ln]
    assert "duplicate" in by_line[plt_lines[1]]
    assert "impossible" in by_line[_line_of(path, "2026-02-30")]
    assert "not a number" in by_line[_line_of(path, ",abc,")]
    assert not any(r["date"] == "2026-02-30" for r in res.rows)


def test_future_date_is_impossible(tmp_path):
    p = tmp_path / "l.csv"
    p.write_text("loinc,value,unit,date\n2160-0,1.0,mg/dL,2099-01-01\n2160-0,1.1,mg/dL,2025-01-01\n")
    res = read_labs(p)
    assert len(res.rows) == 1 and res.issues[0].line == 2


@pytest.mark.parametrize(
    ("analyte", "value", "unit", "expected"),
    [
        ("platelets", 210, "10^3/uL", 210),
        ("platelets", 210, "x10E9/L", 210),
        ("neutrophils", 2000, "/µL", 2.0),
        ("hemoglobin", 130, "g/L", 13.0),
        ("cea", 2.5, "µg/L", 2.5),
        ("alt", 40, "IU/L", 40),
        ("creatinine", 88.4, "umol/L", 1.0),
        ("creatinine", 10, "mg/L", 1.0),
    ],
)
def test_unit_conversions(analyte, value, unit, expected):
    a = next(x for x in load_kb().analytes if x.id == analyte)
    v, u, status = convert_lab_value(value, unit, a)
    assert u == a.unit and v == pytest.approx(expected, rel=1e-3)


@pytest.mark.parametrize("unit", ["furlongs", "mg/dL", ""])
def test_wrong_dimension_or_unknown_unit_not_converted(unit):
    a = next(x for x in load_kb().analytes if x.id == "platelets")
    v, _, status = convert_lab_value(100, unit, a)
    assert v is None and status == UNIT_NOT_UNDERSTOOD


def test_fhir_bundle_labs_patient_own_range_and_invalid_entry():
    path = DATA / "labs.fhir.json"
    res = read_labs(path)
    assert res.kind == "fhir"
    assert res.patient.patient_id == "PT-0042" and res.patient.sex == "F"
    assert res.patient.birth_date == date(1956, 3, 14)
    creat = sorted(_rows(res, "Creatinine"), key=lambda r: r["date"])
    assert creat[1]["value"] == pytest.approx(115 / 88.4, abs=1e-3)
    # the lab's own range (45-90 umol/L) is converted with the value
    assert creat[1]["ref_high"] == pytest.approx(90 / 88.4, abs=1e-3) and creat[1]["flag"] == "H"
    assert _rows(res, "Platelets")[0]["flag"] == "L"
    assert len(res.issues) == 1 and "entry 5" in res.issues[0].message and "2026-02-30" in res.issues[0].message


def test_fhir_social_history_observations_are_not_labs(tmp_path):
    data = json.loads((DATA / "labs.fhir.json").read_text())
    data["entry"] += json.loads((DATA / "clinical.fhir.json").read_text())["entry"][1:]
    p = tmp_path / "mixed.json"
    p.write_text(json.dumps(data))
    res = read_labs(p)
    assert {r["name"] for r in res.rows} == {"Creatinine", "Neutrophils", "Platelets"}
    assert len(res.issues) == 1


def test_lab_series_sorted_and_skips_unconverted_units():
    res = read_labs(DATA / "labs.csv")
    s = lab_series(res.rows)
    assert [p["date"] for p in s["Creatinine"]] == ["2026-01-10", "2026-02-14"]
    assert "CEA" not in s


def test_labs_file_without_value_column_is_unusable(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="value"):
        read_labs(p)


def test_clinical_fhir_facts():
    f = read_clinical_fhir(DATA / "clinical.fhir.json", reference_date=date(2026, 2, 20))
    assert f.smoking_status == "former" and f.pack_years == 32 and f.years_since_quit == 6
    assert f.family_history_lung_cancer is True
    assert f.age_years == 69 and f.sex == "F"  # birthday 14 March: still 69 on 20 Feb 2026
    assert f.patient.name == "Jane Doe"


def test_clinical_fhir_quit_date_and_text_only_pack_years(tmp_path):
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"resource": {"resourceType": "Observation", "status": "final",
                          "code": {"coding": [{"system": "http://loinc.org", "code": "72166-2"}]},
                          "valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct", "code": "77176002"}]}}},
            {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "Smoking history (pack-years)"},
                          "valueQuantity": {"value": 45}}},
            {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "Date quit smoking"},
                          "valueDateTime": "2016-02-20"}},
        ],
    }  # fmt: skip
    p = tmp_path / "c.json"
    p.write_text(json.dumps(bundle))
    f = read_clinical_fhir(p, reference_date=date(2026, 2, 20))
    assert f.smoking_status == "current" and f.pack_years == 45 and f.years_since_quit == 10
    assert f.patient is None and f.age_years is None
