"""Treatment suggestions from real parsed files: targeted options with levels,
PD-L1, renal caution, haematology, DPYD, work-up; every one cited."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from inference.clinical.precision import DISCLAIMER, fill_findings, read_clinical_inputs
from inference.clinical.suggestions import suggest
from inference.types import PatientInfo

DATA = Path(__file__).resolve().parents[1] / "data" / "clinical"
MALE70 = PatientInfo(patient_id="PT-0042", sex="M", birth_date=date(1955, 6, 1))


def _run(genomics=(), labs=(), clinical=None, patient=MALE70, nodules=None, exam=None, confirmed=False):
    inp = read_clinical_inputs(
        genomics=list(genomics), labs=list(labs), clinical=clinical, dicom_patient=patient, study_date=date(2026, 2, 20)
    )
    f: dict = {"patient": {"id": patient.patient_id}, "nodules": nodules or [], "exam": exam or {}, "warnings": []}
    fill_findings(f, inp, confirmed_identity=confirmed)
    return f, suggest(f, inp)


def _one(sugs, **kv):
    hits = [s for s in sugs if all(s.get(k) == v for k, v in kv.items())]
    assert len(hits) == 1, [(s["rule"], s["text"][:50]) for s in sugs]
    return hits[0]



def test_egfr_l858r_osimertinib_level_1_with_rationale_and_source():
    f, sugs = _run(genomics=[DATA / "tumor_normal_vep.vcf"])
    s = _one(sugs, kind="therapy", kb_id="EGFR_L858R")
    assert "osimertinib" in s["drugs"] and s["evidence_level"] == "1"
    assert "EGFR p.L858R" in s["rationale"] and "VAF 0.31" in s["rationale"]
    assert "OncoKB" in s["source"] and "2026-07-20" in s["source"]
    assert f["decision_support_notice"] == DISCLAIMER


def test_kras_g12c_sotorasib_adagrasib():
    _, sugs = _run(genomics=[DATA / "tcga_lung.maf"], patient=PatientInfo(patient_id="TCGA-05-4244"))
    s = _one(sugs, kind="therapy", kb_id="KRAS_G12C")
    assert set(s["drugs"]) == {"sotorasib", "adagrasib"} and s["evidence_level"] == "1"


def test_alk_fusion_from_biomarker_table():
    _, sugs = _run(genomics=[DATA / "biomarkers.csv"])
    s = _one(sugs, kind="therapy", kb_id="ALK_FUSION")
    assert "alectinib" in s["drugs"] and "lorlatinib" in s["drugs"]
    assert "biomarkers.csv line 2" in s["rationale"]
    # the absent EGFR exon 19 deletion must not produce a suggestion
    assert not [x for x in sugs if x.get("kb_id") == "EGFR_EX19DEL"]


def test_pdl1_high_without_driver_suggests_immunotherapy():
    _, sugs = _run(genomics=[DATA / "biomarkers_pdl1_only.csv"])
    s = _one(sugs, rule="PDL1_HIGH_NO_DRIVER")
    assert "pembrolizumab" in s["drugs"] and "75 %" in s["rationale"] and "no actionable driver" in s["rationale"]


def test_pdl1_high_with_egfr_driver_defers_to_targeted_therapy():
    _, sugs = _run(genomics=[DATA / "biomarkers_pdl1_only.csv", DATA / "tumor_normal_vep.vcf"])
    assert not [s for s in sugs if s["rule"] == "PDL1_HIGH_NO_DRIVER"]
    s = _one(sugs, rule="PDL1_WITH_DRIVER")
    assert s["kind"] == "caution" and "EGFR p.L858R" in s["rationale"]


def _labs(tmp_path, rows):
    p = tmp_path / "labs.csv"
    p.write_text("patient_id,loinc,name,value,unit,date\n" + "\n".join(rows) + "\n")
    return p


def test_egfr_below_60_cisplatin_caution(tmp_path):
    p = _labs(tmp_path, ["PT-0042,2160-0,Creatinine,1.3,mg/dL,2026-02-01"])
    f, sugs = _run(labs=[p])
    assert f["derived"]["egfr_ckd_epi_2021"] == 59.1  # male, 70 at the creatinine date
    s = _one(sugs, rule="RENAL_CISPLATIN")
    assert s["kind"] == "caution" and set(s["drugs"]) == {"cisplatin", "carboplatin"}
    assert "59.1" in s["text"] and "carboplatin" in s["text"] and "creatinine 1.3 mg/dL" in s["rationale"]


def test_normal_kidney_function_no_cisplatin_caution(tmp_path):
    p = _labs(tmp_path, ["PT-0042,2160-0,Creatinine,88.4,umol/L,2026-02-01"])
    f, sugs = _run(labs=[p])
    assert f["derived"]["egfr_ckd_epi_2021"] > 60
    assert not [s for s in sugs if s["rule"] == "RENAL_CISPLATIN"]


def test_low_neutrophils_and_platelets_latest_value_counts(tmp_path):
    p = _labs(
        tmp_path,
        [
            "PT-0042,751-8,Neutrophils,1.1,10^9/L,2026-01-01",
            "PT-0042,751-8,Neutrophils,3.0,10^9/L,2026-02-01",
            "PT-0042,777-3,Platelets,80,10*9/L,2026-02-01",
        ],
    )
    _, sugs = _run(labs=[p])
    assert not [s for s in sugs if s["rule"] == "LOW_NEUTROPHILS"]  # recovered by the latest count
    assert "80" in _one(sugs, rule="LOW_PLATELETS")["rationale"]


def test_dpyd_star2a_het_halves_fluoropyrimidine_dose():
    _, sugs = _run(genomics=[DATA / "tumor_normal_vep.vcf"])
    s = _one(sugs, kind="pgx")
    assert s["dose_percent"] == 50 and "50 %" in s["text"]
    assert set(s["drugs"]) == {"fluorouracil", "capecitabine"} and "CPIC" in s["source"]
    assert "*2A heterozygous" in s["rationale"]


def test_dpyd_homozygous_avoid(tmp_path):
    p = tmp_path / "pgx.csv"
    p.write_text("gene,alteration,value\nDPYD,c.1905+1G>A,homozygous\n")
    _, sugs = _run(genomics=[p])
    s = _one(sugs, kind="pgx")
    assert "avoid" in s["text"] and s["dose_percent"] == 0


def test_workup_from_lung_rads_and_brock():
    nodules = [{"id": 1, "brock_probability": 0.18, "lung_rads": "4B", "mean_diameter_mm": 17.0, "type": "solid"},
               {"id": 2, "brock_probability": 0.02, "lung_rads": "2"}]  # fmt: skip
    exam = {"lung_rads": {"category": "4B", "version": "v2022"}}
    _, sugs = _run(nodules=nodules, exam=exam)
    assert sugs[0]["kind"] == "workup"
    lr = _one(sugs, rule="WORKUP_LR4BX")
    assert "PET-CT" in lr["text"] and "biopsy" in lr["text"] and "4B" in lr["rationale"]
    br = _one(sugs, rule="WORKUP_BROCK10")
    assert "nodule 1" in br["rationale"] and "18.0 %" in br["rationale"]
    _, low = _run(nodules=[{"id": 1, "brock_probability": 0.02, "lung_rads": "2"}], exam={"lung_rads": {"category": "2"}})
    assert not [s for s in low if s["kind"] == "workup"]


def test_every_suggestion_is_cited_and_explained(tmp_path):
    p = _labs(tmp_path, ["PT-0042,2160-0,Creatinine,2.0,mg/dL,2026-02-01", "PT-0042,1975-2,Bilirubin,40,umol/L,2026-02-01"])
    f, sugs = _run(genomics=[DATA / "tumor_normal_vep.vcf", DATA / "biomarkers.csv"], labs=[p],
                   exam={"lung_rads": {"category": "4A"}})  # fmt: skip
    f["suggestions"] = sugs
    json.loads(json.dumps(f))  # findings.json needs no custom encoder for these blocks
    assert {s["kind"] for s in sugs} == {"workup", "therapy", "caution", "pgx"}
    for s in sugs:
        assert s["text"] and s["source"] and s["rationale"] and isinstance(s["drugs"], list)
        assert s["kind"] in ("workup", "therapy", "caution", "pgx")


def test_identity_conflict_keeps_other_patients_mutation_out_of_suggestions(tmp_path):
    p = tmp_path / "other.vcf"
    p.write_text((DATA / "tumor_normal_vep.vcf").read_text().replace("Individual=PT-0042", "Individual=PT-7777"))
    _, sugs = _run(genomics=[p])
    assert not [s for s in sugs if s.get("kb_id") == "EGFR_L858R" or s["kind"] == "pgx"]
    _, confirmed = _run(genomics=[p], confirmed=True)
    assert [s for s in confirmed if s.get("kb_id") == "EGFR_L858R"]


def test_ugt1a1_poor_metaboliser_irinotecan_70_percent_and_het_no_action(tmp_path):
    p = tmp_path / "pgx.csv"
    p.write_text("gene,alteration,value\nUGT1A1,*28/*28,detected\n")
    _, sugs = _run(genomics=[p])
    s = _one(sugs, kind="pgx")
    assert s["drugs"] == ["irinotecan"] and s["dose_percent"] == 70 and s["verified"] is False
    p.write_text("gene,alteration,value\nUGT1A1,*28,heterozygous\n")
    _, het = _run(genomics=[p])
    assert not [x for x in het if x["kind"] == "pgx"]


def test_pdl1_reported_in_a_lab_file_reaches_the_pdl1_rules(tmp_path):
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "Observation", "status": "final", "effectiveDateTime": "2026-02-01",
                      "code": {"coding": [{"system": "http://loinc.org", "code": "85147-7",
                                           "display": "PD-L1 by clone 22C3 [Interpretation] in Tissue by Immune stain"}]},
                      "valueQuantity": {"value": 70, "unit": "%", "system": "http://unitsofmeasure.org", "code": "%"}}}]}  # fmt: skip
    p = tmp_path / "pdl1.fhir.json"
    p.write_text(json.dumps(bundle))
    f, sugs = _run(labs=[p])
    assert f["genomics"]["biomarkers"][0]["tps"] == 70
    s = _one(sugs, rule="PDL1_HIGH_NO_DRIVER")
    assert "pdl1.fhir.json entry 0" in s["rationale"]
    low = _labs(tmp_path, ["PT-0042,,PD-L1 TPS,20,%,2026-02-01"])
    _, sugs = _run(labs=[low])
    assert _one(sugs, rule="PDL1_LOW_NO_DRIVER")["evidence_level"] == "FDA label"


def test_class_only_match_is_not_called_actionable(tmp_path):
    p = tmp_path / "b.csv"
    p.write_text("gene,alteration,value\nFGFR3,S249C,detected\n")
    f, sugs = _run(genomics=[p])
    b = f["genomics"]["biomarkers"][0]
    assert b["evidence_level"] == "2" and b["actionable"] is False and "oncogenicity" in b["review"]
    assert not [s for s in sugs if s["kind"] == "therapy"]
