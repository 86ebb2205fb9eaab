"""The demo patient: one identity across CT, VCF, labs and clinical files; the
ground truth agrees with the images; generation is atomic.

One full generation (two 512² CT series) is the expensive part, so it is done
once per module and every check reads the same folder.
"""

from __future__ import annotations

import csv
import json
from datetime import date
from pathlib import Path

import numpy as np
import pydicom
import pytest

from inference.errors import CancelledError
from inference.synth.demo import DEMO_VERSION, ensure_demo_patient
from inference.types import DemoPatient, Progress

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoPatient:
    mp = pytest.MonkeyPatch()
    mp.setenv("CLINVIEW_CACHE_DIR", str(tmp_path_factory.mktemp("democache")))
    try:
        yield ensure_demo_patient()
    finally:
        mp.undo()


def _headers(folder: Path) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(folder.glob("*.dcm"))]


def test_interrupted_generation_leaves_no_half_patient(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLINVIEW_CACHE_DIR", str(tmp_path))

    def stop(p: Progress) -> None:
        if "baseline" in p.message:
            raise CancelledError()

    with pytest.raises(CancelledError):
        ensure_demo_patient(progress=stop)
    assert list((tmp_path / "demo").iterdir()) == [], "no partial folder may remain"


def test_every_file_exists_and_names_the_same_patient(demo: DemoPatient) -> None:
    assert demo.root.name == DEMO_VERSION
    for p in (demo.vcf, demo.labs_fhir, demo.labs_csv, demo.clinical_fhir, demo.truth_json):
        assert p.is_file(), p
    assert "SYNTHETIC" in (demo.root / "README.txt").read_text()
    pid = demo.patient_id
    base, fu = _headers(demo.baseline_dir), _headers(demo.followup_dir)
    assert len(base) >= 150 and len(fu) >= 150
    for ds in base + fu:
        assert ds.PatientID == pid
    assert {str(ds.PatientName) for ds in base + fu} == {str(base[0].PatientName)}
    assert {ds.PatientBirthDate for ds in base + fu} == {base[0].PatientBirthDate}
    assert base[0].StudyInstanceUID != fu[0].StudyInstanceUID
    d0 = date.fromisoformat(base[0].StudyDate[:4] + "-" + base[0].StudyDate[4:6] + "-" + base[0].StudyDate[6:])
    d1 = date.fromisoformat(fu[0].StudyDate[:4] + "-" + fu[0].StudyDate[4:6] + "-" + fu[0].StudyDate[6:])
    assert 350 <= (d1 - d0).days <= 380
    assert (base[0].Rows, base[0].Columns) == (512, 512)
    assert 0.55 <= float(base[0].PixelSpacing[0]) <= 0.95
    assert 1.0 <= float(base[0].SliceThickness) <= 1.25
    assert f"Individual={pid}" in demo.vcf.read_text()
    bundle = json.loads(demo.labs_fhir.read_text())
    pats = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"]
    assert pats[0]["identifier"][0]["value"] == pid
    with open(demo.labs_csv, newline="") as fh:
        assert {r["patient_id"] for r in csv.DictReader(fh)} == {pid}
    truth = json.loads(demo.truth_json.read_text())
    assert truth["patient_id"] == pid and truth["synthetic"] is True


def test_truth_agrees_with_the_ct_images(demo: DemoPatient) -> None:
    from inference.api import load_series

    truth = json.loads(demo.truth_json.read_text())
    kinds = set()
    for key, folder in (("baseline", demo.baseline_dir), ("followup", demo.followup_dir)):
        vol = load_series(folder)
        assert vol.series is None or vol.series.patient.patient_id == demo.patient_id
        for n in truth[key]["nodules"]:
            k, j, i = (int(v) for v in np.rint(vol.lps_to_voxel(n["center_lps_mm"])))
            assert [k, j, i] == n["center_voxel_zyx"]
            hu = float(np.median(vol.array[k - 1 : k + 2, j - 1 : j + 2, i - 1 : i + 2]))
            kinds.add(n["type"])
            if n["type"] == "ground-glass":
                assert -850 < hu < -250, (n["id"], hu)
            elif n["type"] == "calcified":
                assert hu > 164, (n["id"], hu)
            else:
                assert hu > -400, (n["id"], n["subtype"], hu)
            # the parenchyma 2 diameters away is lung, not nodule
            assert 3 <= n["mean_diameter_mm"] <= 30
    assert {"solid", "ground-glass", "calcified"} <= kinds


def test_followup_truth_grows_resolves_and_adds(demo: DemoPatient) -> None:
    t = json.loads(demo.truth_json.read_text())
    b = {n["id"]: n for n in t["baseline"]["nodules"]}
    f = {n["id"]: n for n in t["followup"]["nodules"]}
    assert 4 <= len(b) <= 7
    assert len(t["resolved"]) == 1 and t["resolved"][0] in b and t["resolved"][0] not in f
    assert len(t["new"]) == 1 and t["new"][0] in f and t["new"][0] not in b
    growers = [int(k) for k, v in t["vdt_days"].items() if v is not None and v < 400]
    assert growers, "one suspicious nodule must grow"
    g = growers[0]
    assert b[g]["lobe"] in ("RUL", "LUL") and b[g]["features"].get("spiculated")
    assert f[g]["mean_diameter_mm"] - b[g]["mean_diameter_mm"] > 1.5  # Lung-RADS growth
    # the VDT computed from the truth volumes is close to the one used
    vdt = t["interval_days"] * np.log(2) / np.log(f[g]["volume_mm3"] / b[g]["volume_mm3"])
    assert vdt == pytest.approx(t["vdt_days"][str(g)], rel=0.25)
    T = np.asarray(t["baseline_to_followup_lps"])
    assert np.allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-6)
    moved = T @ np.append(b[g]["center_lps_mm"], 1.0)
    assert np.linalg.norm(moved[:3] - np.asarray(f[g]["center_lps_mm"])) < 3.0


def test_vcf_holds_egfr_l858r_somatic_and_dpyd_germline(demo: DemoPatient) -> None:
    import vcfpy

    reader = vcfpy.Reader.from_path(str(demo.vcf))
    assert reader.header.samples.names == ["TUMOR", "NORMAL"]
    assert any(line.key == "reference" and line.value == "GRCh38" for line in reader.header.lines)
    assert "CSQ" in reader.header.info_ids()
    recs = {(r.CHROM, r.POS): r for r in reader}
    egfr = recs[("chr7", 55191822)]
    assert (egfr.REF, egfr.ALT[0].value) == ("T", "G")
    assert "p.Leu858Arg" in egfr.INFO["CSQ"][0]
    assert 0.2 <= egfr.call_for_sample["TUMOR"].data["AF"][0] <= 0.4
    assert egfr.call_for_sample["NORMAL"].data["GT"] == "0/0"
    dpyd = recs[("chr1", 97450058)]
    assert (dpyd.REF, dpyd.ALT[0].value) == ("C", "T")
    assert dpyd.call_for_sample["NORMAL"].data["GT"] == "0/1"
    assert "c.1905+1G>A" in dpyd.INFO["CSQ"][0]


def test_labs_are_valid_fhir_r4_and_match_the_csv(demo: DemoPatient) -> None:
    from fhir.resources.R4B.bundle import Bundle

    bundle = Bundle.model_validate_json(demo.labs_fhir.read_text())
    assert bundle.type == "collection"
    obs = [e.resource for e in bundle.entry if e.resource.__resource_type__ == "Observation"]
    fhir_rows = {
        (o.code.coding[0].code, float(o.valueQuantity.value), str(o.effectiveDateTime)[:10]) for o in obs
    }
    with open(demo.labs_csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["patient_id", "loinc", "name", "value", "unit", "date"]
    assert {(r["loinc"], float(r["value"]), r["date"]) for r in rows} == fhir_rows
    codes = {r["loinc"] for r in rows}
    assert {"2160-0", "718-7", "6690-2", "751-8", "777-3", "1742-6", "1920-8", "1975-2", "2039-6", "85147-7"} <= codes
    assert all(o.status == "final" and o.valueQuantity.system == "http://unitsofmeasure.org" for o in obs)
    # creatinine trend; eGFR (CKD-EPI 2021, clinical-facts §8.1) < 60 on the last date
    creat = sorted((r["date"], float(r["value"])) for r in rows if r["loinc"] == "2160-0")
    assert len(creat) >= 2 and creat[-1][1] > creat[0][1]
    pat = next(e.resource for e in bundle.entry if e.resource.__resource_type__ == "Patient")
    last = date.fromisoformat(creat[-1][0])
    age = last.year - pat.birthDate.year - ((last.month, last.day) < (pat.birthDate.month, pat.birthDate.day))
    scr, k = creat[-1][1], (0.7 if pat.gender == "female" else 0.9)
    a = -0.241 if pat.gender == "female" else -0.302
    egfr = 142 * min(scr / k, 1) ** a * max(scr / k, 1) ** -1.2 * 0.9938**age * (1.012 if pat.gender == "female" else 1)
    assert egfr < 60


def test_clinical_facts_read_back(demo: DemoPatient) -> None:
    from fhir.resources.R4B.bundle import Bundle

    from inference.io.fhir_clinical import read_clinical_fhir

    Bundle.model_validate_json(demo.clinical_fhir.read_text())
    facts = read_clinical_fhir(demo.clinical_fhir, reference_date=date(2025, 3, 10))
    assert facts.smoking_status == "former"
    assert facts.pack_years == 40
    assert facts.years_since_quit == 5
    assert facts.family_history_lung_cancer is True
    assert facts.sex == "F" and facts.age_years == 64
    assert facts.patient is not None and facts.patient.patient_id == demo.patient_id


def test_second_call_reuses_the_cache(demo: DemoPatient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLINVIEW_CACHE_DIR", str(demo.root.parent.parent))
    before = demo.truth_json.stat().st_mtime_ns
    again = ensure_demo_patient()
    assert again == demo
    assert demo.truth_json.stat().st_mtime_ns == before
