"""Patient identity across DICOM, VCF, MAF, labs CSV and FHIR: each kind of
mismatch is detected; a matching set is consistent; mismatching data is held
back until confirmed."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from inference.clinical.identity import compare_identities
from inference.clinical.precision import fill_findings, read_clinical_inputs
from inference.types import PatientInfo

DATA = Path(__file__).resolve().parents[1] / "data" / "clinical"
DICOM = PatientInfo(patient_id="PT-0042", name="DOE^JANE", birth_date=date(1956, 3, 14), sex="F")


def _fhir_patient(tmp_path: Path, **changes) -> Path:
    data = json.loads((DATA / "clinical.fhir.json").read_text())
    pat = data["entry"][0]["resource"]
    if "patient_id" in changes:
        pat["identifier"][0]["value"] = changes["patient_id"]
    if "name" in changes:
        pat["name"] = [{"use": "official", "family": changes["name"][0], "given": [changes["name"][1]]}]
    if "birth_date" in changes:
        pat["birthDate"] = changes["birth_date"]
    if "sex" in changes:
        pat["gender"] = changes["sex"]
    p = tmp_path / "clinical.fhir.json"
    p.write_text(json.dumps(data))
    return p


def _inputs(tmp_path, clinical=None, genomics=(), labs=()):
    return read_clinical_inputs(
        genomics=list(genomics), labs=list(labs), clinical=clinical, dicom_patient=DICOM, study_date=date(2026, 2, 20)
    )


def test_matching_set_is_consistent_across_spellings():
    inp = _inputs(
        None,
        clinical=DATA / "clinical.fhir.json",
        genomics=[DATA / "tumor_normal_vep.vcf"],
        labs=[DATA / "labs.csv", DATA / "labs.fhir.json"],
    )
    ident = inp.identity
    assert ident["consistent"] and ident["conflicts"] == []
    assert set(ident["sources"]) == {
        "dicom", "genomics:tumor_normal_vep.vcf", "labs:labs.csv", "labs:labs.fhir.json", "clinical:clinical.fhir.json"
    }  # fmt: skip
    assert ident["sources"]["clinical:clinical.fhir.json"]["name"] == "Jane Doe"  # vs DICOM DOE^JANE: same person


@pytest.mark.parametrize(
    ("field", "change", "value"),
    [
        ("patient_id", {"patient_id": "PT-9999"}, "PT-9999"),
        ("name", {"name": ("Smith", "John")}, "John Smith"),
        ("birth_date", {"birth_date": "1956-03-15"}, "1956-03-15"),
        ("sex", {"sex": "male"}, "M"),
    ],
)
def test_each_kind_of_mismatch_is_detected(tmp_path, field, change, value):
    inp = _inputs(tmp_path, clinical=_fhir_patient(tmp_path, **change))
    ident = inp.identity
    assert not ident["consistent"]
    assert [c["field"] for c in ident["conflicts"]] == [field]
    vals = ident["conflicts"][0]["values"]
    assert vals["clinical:clinical.fhir.json"] == value
    assert "dicom" in vals
    assert ident["mismatched_sources"] == ["clinical:clinical.fhir.json"]


def test_vcf_individual_mismatch(tmp_path):
    p = tmp_path / "other.vcf"
    p.write_text((DATA / "tumor_normal_vep.vcf").read_text().replace("Individual=PT-0042", "Individual=PT-7777"))
    ident = _inputs(tmp_path, genomics=[p]).identity
    assert not ident["consistent"]
    assert ident["conflicts"][0]["values"] == {"dicom": "PT-0042", "genomics:other.vcf": "PT-7777"}


def test_maf_barcode_mismatch():
    ident = _inputs(None, genomics=[DATA / "tcga_lung.maf"]).identity
    assert not ident["consistent"]
    assert ident["conflicts"][0]["values"]["genomics:tcga_lung.maf"] == "TCGA-05-4244"


def test_labs_csv_patient_id_mismatch(tmp_path):
    p = tmp_path / "labs.csv"
    p.write_text((DATA / "labs.csv").read_text().replace("PT-0042", "PT-0043"))
    assert not _inputs(tmp_path, labs=[p]).identity["consistent"]


def test_sample_suffix_and_name_order_are_not_conflicts():
    a = PatientInfo(patient_id="PT-0042", name="DOE^JANE^M")
    b = PatientInfo(patient_id="pt-0042-T", name="Jane Doe")
    assert compare_identities({"dicom": a, "genomics:x.vcf": b})["consistent"]
    c = PatientInfo(patient_id="PT-00421")
    assert not compare_identities({"dicom": a, "genomics:x.vcf": c})["consistent"]


def test_mismatching_data_is_held_back_until_confirmed(tmp_path):
    p = tmp_path / "other.vcf"
    p.write_text((DATA / "tumor_normal_vep.vcf").read_text().replace("Individual=PT-0042", "Individual=PT-7777"))
    inp = _inputs(tmp_path, genomics=[p], labs=[DATA / "labs.csv"])
    findings: dict = {"warnings": []}
    fill_findings(findings, inp)
    assert findings["genomics"] == {}
    assert findings["labs"]  # the labs agree with the CT and are still combined
    assert findings["identity"]["withheld_sources"] == [str(p)]
    w = [x for x in findings["warnings"] if x.startswith("identity conflict")]
    assert len(w) == 1 and "PT-7777" in w[0] and str(p) in w[0] and "--confirm-identity" in w[0]

    inp2 = _inputs(tmp_path, genomics=[p], labs=[DATA / "labs.csv"])
    confirmed: dict = {}
    fill_findings(confirmed, inp2, confirmed_identity=True)
    assert any(v["gene"] == "EGFR" for v in confirmed["genomics"]["variants"])
    assert confirmed["identity"]["confirmed"] and confirmed["identity"]["conflicts"]


def test_clinical_facts_of_a_mismatching_file_are_not_used_until_confirmed(tmp_path):
    p = _fhir_patient(tmp_path, sex="male")
    inp = _inputs(tmp_path, clinical=p)
    assert inp.facts.smoking_status is None and inp.facts.pack_years is None
    assert inp.facts.sex == "F"  # from the CT
    ok = read_clinical_inputs(genomics=[], labs=[], clinical=p, dicom_patient=DICOM, study_date=date(2026, 2, 20),
                              confirmed_identity=True)  # fmt: skip
    assert ok.facts.smoking_status == "former" and ok.facts.pack_years == 32


def test_age_from_birth_date_at_study_date_and_unusable_file_is_one_issue():
    inp = read_clinical_inputs(
        genomics=[DATA / "broken_header.vcf", DATA / "tumor_normal_vep.vcf"], labs=[], clinical=None,
        dicom_patient=PatientInfo(patient_id="PT-0042", birth_date=date(1956, 3, 14)), study_date=date(2026, 3, 14),
    )  # fmt: skip
    assert inp.facts.age_years == 70
    errors = [i for i in inp.issues if i.code == "error"]
    assert len(errors) == 1 and "broken_header.vcf" in errors[0].one_line()
    assert any(v["gene"] == "EGFR" for v in inp.genomics["variants"])
