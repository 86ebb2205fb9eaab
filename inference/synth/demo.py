"""The demo patient: one synthetic person, consistent identifiers in every file.

Why generated rather than shipped: two 512² CT series are ~250 MB of DICOM,
far above what belongs in the repository, while the generator makes them in
seconds. They are written once into ``inference.paths.cache_dir()/demo/<version>``:
into a temporary folder first, renamed atomically when complete, so an
interrupted generation never leaves half a patient behind.

Contents: baseline and 12-month follow-up chest CT (DICOM), a tumour VCF
(somatic EGFR L858R, germline DPYD*2A, benign polymorphisms), labs as a FHIR R4
Bundle and as CSV, clinical facts as a FHIR R4 Bundle, ``truth.json`` (every
nodule in both studies, matches and VDTs) and a README saying it is synthetic.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
import uuid
from datetime import date
from pathlib import Path
from typing import Any, Callable

import numpy as np

from inference.types import DemoPatient, PatientInfo, Progress

__all__ = [
    "DEMO_VERSION",
    "DEMO_PATIENT",
    "ensure_demo_patient",
    "generate_demo_patient",
    "write_vcf",
    "write_labs",
    "write_clinical_fhir",
    "lab_rows",
]

#: Bump when the generator's output changes, so old caches are not reused.
DEMO_VERSION = "v1"
DEMO_SEED = 20250310

DEMO_PATIENT = PatientInfo(
    patient_id="CLINVIEW-DEMO-001",
    name="SYNTHETIC^DEMO",
    birth_date=date(1961, 1, 17),
    sex="F",
)
BASELINE_DATE = date(2025, 3, 10)
FOLLOWUP_DATE = date(2026, 3, 9)
_FAMILY = "Synthetic"
_GIVEN = "Demo"
_NS = uuid.UUID("6f1c1d3e-9b7a-4f7e-8a53-0c1d2e3f4a5b")

_FILES = {
    "baseline": "baseline_ct",
    "followup": "followup_ct",
    "vcf": "tumour.vcf",
    "labs_fhir": "labs.fhir.json",
    "labs_csv": "labs.csv",
    "clinical": "clinical.fhir.json",
    "truth": "truth.json",
    "readme": "README.txt",
}


def _demo(root: Path) -> DemoPatient:
    return DemoPatient(
        patient_id=DEMO_PATIENT.patient_id or "",
        root=root,
        baseline_dir=root / _FILES["baseline"],
        followup_dir=root / _FILES["followup"],
        vcf=root / _FILES["vcf"],
        labs_fhir=root / _FILES["labs_fhir"],
        labs_csv=root / _FILES["labs_csv"],
        clinical_fhir=root / _FILES["clinical"],
        truth_json=root / _FILES["truth"],
    )


def ensure_demo_patient(*, progress: Callable[[Progress], None] | None = None) -> DemoPatient:
    """Return the demo patient, generating it into the user cache on first use.

    Returns
    -------
    DemoPatient
        Paths of every file (they all exist).
    """
    from inference.paths import cache_dir

    base = cache_dir() / "demo"
    root = base / DEMO_VERSION
    if (root / _FILES["readme"]).is_file() and (root / _FILES["truth"]).is_file():
        return _demo(root)
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{DEMO_VERSION}-", dir=base))
    try:
        generate_demo_patient(tmp, progress=progress)
        try:
            os.replace(tmp, root)
        except OSError:
            # another process finished first (the target exists and is not empty)
            if not (root / _FILES["truth"]).is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return _demo(root)


def _demo_specs(an: Any) -> list[Any]:
    """The demo's nodules: one suspicious grower and a typical mix of benign ones."""
    from inference.synth.nodules import make_spec

    rng = np.random.default_rng(DEMO_SEED + 1)
    plan = [
        # kind, diameter mm, lobe (1 RUL, 2 RML, 3 RLL, 4 LUL, 5 LLL), VDT days
        ("spiculated", 6.0, 1, 230.0),  # suspicious, grows ~9 -> ~13 mm (measured) in a year
        ("solid", 4.5, 5, None),  # small, stable
        ("calcified-diffuse", 6.0, 3, None),  # calcified granuloma
        ("ground-glass", 11.0, 4, 900.0),  # slow pure GGN
        ("perifissural", 5.5, None, None),  # benign intrapulmonary lymph node
        ("solid", 7.0, 3, None),  # inflammatory: resolves at follow-up
    ]
    specs: list[Any] = []
    for kind, d, lobe, vdt in plan:
        sp = None
        for _ in range(5):
            sp = make_spec(rng, an, len(specs) + 1, kind, d, lobe=lobe, avoid=specs)
            if sp is not None:
                break
        if sp is None:
            continue
        sp.vdt_days = vdt
        specs.append(sp)
    return specs


def generate_demo_patient(root: str | Path, *, progress: Callable[[Progress], None] | None = None) -> DemoPatient:
    """Write every file of the demo patient into ``root`` (created).

    Deterministic: the same version writes the same bytes.
    """
    from inference.synth.anatomy import make_anatomy
    from inference.synth.dicom_writer import derive_uid, write_ct_series
    from inference.synth.followup import make_followup
    from inference.synth.phantom import Acquisition, render_phantom

    def step(f: float, msg: str) -> None:
        if progress is not None:
            progress(Progress(f, msg))

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    step(0.0, "demo patient: anatomy")
    rng = np.random.default_rng(DEMO_SEED)
    an = make_anatomy(rng, sex="F", emphysema=False, vessel_density=0.9)
    specs = _demo_specs(an)
    slice_mm = 1.25
    # cover the lungs, apex to the costophrenic recesses
    z0 = min(an.z_dome_r, an.z_dome_l) - 62.0 * an.scale
    z1 = an.z_apex + 12.0
    acq = Acquisition(
        slice_mm=slice_mm,
        pixel_mm=0.7,
        matrix=(512, 512),
        kernel="sharp",
        dose=0.6,
        n_slices=int(np.ceil((z1 - z0) / slice_mm)),
        z_start_mm=float(z0),
        fov_center_xy=(0.0, float(an.body_yc - 20.0 + 6.0)),
    )
    shift = np.array([0.0, -20.0, -320.0])
    step(0.05, "demo patient: baseline CT")
    base = render_phantom(an, specs, acq, np.eye(3), shift, np.random.default_rng(DEMO_SEED + 2), seed=DEMO_SEED, options={"demo": True})
    pid = DEMO_PATIENT.patient_id
    st_b = derive_uid("clinview-demo", pid, "study", "baseline")
    st_f = derive_uid("clinview-demo", pid, "study", "followup")
    se_b = derive_uid("clinview-demo", pid, "series", "baseline")
    se_f = derive_uid("clinview-demo", pid, "series", "followup")
    # the follow-up renders (numpy, mostly outside the GIL) while the
    # baseline's DICOM files are written
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        fut = pool.submit(
            make_followup,
            base, DEMO_SEED + 3, months=12, vdt_days={sp.id: sp.vdt_days for sp in specs},
            resolve=specs[-1].id if len(specs) >= 6 else True, new_kind="solid", new_diameter_mm=5.5, new_lobe=5,
            rotation_deg=(1.2, -0.8, 2.0), shift_mm=(4.0, -3.0, 7.5),
        )
        step(0.35, "demo patient: writing baseline DICOM; follow-up CT")
        write_ct_series(
            base, root / _FILES["baseline"], patient=DEMO_PATIENT, study_uid=st_b, series_uid=se_b,
            study_date=BASELINE_DATE, description="CHEST LUNG 1.25mm (synthetic)", accession_number="DEMO0001",
            series_number=2,
        )
        fu = fut.result()
    step(0.8, "demo patient: writing follow-up DICOM")
    write_ct_series(
        fu, root / _FILES["followup"], patient=DEMO_PATIENT, study_uid=st_f, series_uid=se_f,
        study_date=FOLLOWUP_DATE, description="CHEST LUNG 1.25mm (synthetic)", accession_number="DEMO0002",
        series_number=2,
    )
    step(0.92, "demo patient: genomics, labs, clinical facts")
    write_vcf(root / _FILES["vcf"], DEMO_PATIENT)
    write_labs(root / _FILES["labs_fhir"], root / _FILES["labs_csv"], DEMO_PATIENT)
    write_clinical_fhir(root / _FILES["clinical"], DEMO_PATIENT)
    truth = {
        "synthetic": True,
        "generator": f"clinview.synth demo {DEMO_VERSION}",
        "patient_id": pid,
        "baseline": {
            "study_instance_uid": st_b, "series_instance_uid": se_b, "date": BASELINE_DATE.isoformat(),
            "nodules": [r.to_dict() for r in base.records],
        },
        "followup": {
            "study_instance_uid": st_f, "series_instance_uid": se_f, "date": FOLLOWUP_DATE.isoformat(),
            "nodules": [r.to_dict() for r in fu.records],
        },
        **fu.followup.to_dict(),
    }
    (root / _FILES["truth"]).write_text(json.dumps(truth, indent=1))
    (root / _FILES["readme"]).write_text(
        "SYNTHETIC DEMO PATIENT - NOT A REAL PERSON, NOT FOR CLINICAL USE\n\n"
        f"Generated by clinview ({DEMO_VERSION}). Every image, variant, lab value and\n"
        "clinical fact here was made up by a program. PatientID "
        f"{pid}, name {DEMO_PATIENT.name}.\n\n"
        "baseline_ct/       chest CT, " + BASELINE_DATE.isoformat() + "\n"
        "followup_ct/       chest CT, " + FOLLOWUP_DATE.isoformat() + " (patient repositioned)\n"
        "tumour.vcf         somatic + germline variants (GRCh38)\n"
        "labs.fhir.json     labs as a FHIR R4 Bundle; labs.csv: the same labs\n"
        "clinical.fhir.json smoking history, family history (FHIR R4)\n"
        "truth.json         ground truth of every nodule in both studies\n"
    )
    step(1.0, "demo patient ready")
    return _demo(root)


# --------------------------------------------------------------------------- genomics


def write_vcf(path: Path, patient: PatientInfo) -> None:
    """Tumour/normal VCF 4.2 on GRCh38 with VEP-style CSQ annotation.

    Coordinates (checked against memory of dbSNP/ClinVar, high confidence):
    EGFR c.2573T>G p.L858R (rs121434568) is GRCh38 chr7:55191822 T>G
    (GRCh37 chr7:55259515); DPYD c.1905+1G>A (*2A, rs3918290) is GRCh38
    chr1:97450058 C>T (GRCh37 chr1:97915614; DPYD is on the minus strand,
    hence C>T). Benign passengers: TP53 c.215C>G p.P72R (rs1042522) GRCh38
    chr17:7676154 G>C and EGFR c.2361G>A p.Q787= (rs1050171) GRCh38
    chr7:55181378 G>A -- common germline polymorphisms (high-moderate confidence).
    """
    pid = patient.patient_id
    fmt = "Allele|Consequence|IMPACT|SYMBOL|Gene|Feature_type|Feature|BIOTYPE|EXON|INTRON|HGVSc|HGVSp|Existing_variation"
    header = [
        "##fileformat=VCFv4.2",
        "##fileDate=20250320",
        "##source=clinview-synthetic-demo",
        "##reference=GRCh38",
        "##contig=<ID=chr1,length=248956422,assembly=GRCh38>",
        "##contig=<ID=chr7,length=159345973,assembly=GRCh38>",
        "##contig=<ID=chr17,length=83257441,assembly=GRCh38>",
        f"##SAMPLE=<ID=TUMOR,Individual={pid},Description=\"Primary tumour, synthetic\">",
        f"##SAMPLE=<ID=NORMAL,Individual={pid},Description=\"Blood (germline), synthetic\">",
        '##FILTER=<ID=PASS,Description="All filters passed">',
        '##INFO=<ID=SOMATIC,Number=0,Type=Flag,Description="Somatic mutation (absent from the normal)">',
        '##INFO=<ID=GERMLINE,Number=0,Type=Flag,Description="Germline variant (present in the normal)">',
        f'##INFO=<ID=CSQ,Number=.,Type=String,Description="Consequence annotations from Ensembl VEP. Format: {fmt}">',
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        '##FORMAT=<ID=AD,Number=R,Type=Integer,Description="Allelic depths for the ref and alt alleles">',
        '##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Read depth">',
        '##FORMAT=<ID=AF,Number=A,Type=Float,Description="Allele fraction">',
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tTUMOR\tNORMAL",
    ]
    rows = [
        ("chr1", 97450058, "rs3918290", "C", "T", "GERMLINE",
         "T|splice_donor_variant|HIGH|DPYD|ENSG00000188641|Transcript|ENST00000370192|protein_coding||14/22|ENST00000370192.8:c.1905+1G>A||rs3918290",
         "0/1:212,198:410:0.483", "0/1:160,151:311:0.486"),
        ("chr7", 55181378, "rs1050171", "G", "A", "GERMLINE",
         "A|synonymous_variant|LOW|EGFR|ENSG00000146648|Transcript|ENST00000275493|protein_coding|20/28||ENST00000275493.7:c.2361G>A|ENSP00000275493.2:p.Gln787%3D|rs1050171",
         "0/1:301,289:590:0.49", "0/1:200,190:390:0.487"),
        ("chr7", 55191822, "rs121434568", "T", "G", "SOMATIC",
         "G|missense_variant|MODERATE|EGFR|ENSG00000146648|Transcript|ENST00000275493|protein_coding|21/28||ENST00000275493.7:c.2573T>G|ENSP00000275493.2:p.Leu858Arg|rs121434568",
         "0/1:428,187:615:0.304", "0/0:402,0:402:0"),
        ("chr17", 7676154, "rs1042522", "G", "C", "GERMLINE",
         "C|missense_variant|MODERATE|TP53|ENSG00000141510|Transcript|ENST00000269305|protein_coding|4/11||ENST00000269305.9:c.215C>G|ENSP00000269305.4:p.Pro72Arg|rs1042522",
         "1/1:3,350:353:0.992", "1/1:1,298:299:0.997"),
    ]
    lines = list(header)
    for chrom, pos, rid, ref, alt, flag, csq, tum, nor in rows:
        lines.append("\t".join([chrom, str(pos), rid, ref, alt, "60", "PASS", f"{flag};CSQ={csq}", "GT:AD:DP:AF", tum, nor]))
    path.write_text("\n".join(lines) + "\n")


# --------------------------------------------------------------------------- labs

#: (loinc, name, unit (UCUM), values at the three draw dates)
_LABS = [
    ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", (0.92, 1.01, 1.16)),
    ("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", (13.1, 12.8, 12.3)),
    ("6690-2", "Leukocytes [#/volume] in Blood by Automated count", "10*3/uL", (7.2, 6.8, 7.9)),
    ("751-8", "Neutrophils [#/volume] in Blood by Automated count", "10*3/uL", (4.4, 4.1, 5.2)),
    ("777-3", "Platelets [#/volume] in Blood by Automated count", "10*3/uL", (256.0, 241.0, 268.0)),
    ("1742-6", "Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma", "U/L", (21.0, 24.0, 27.0)),
    ("1920-8", "Aspartate aminotransferase [Enzymatic activity/volume] in Serum or Plasma", "U/L", (23.0, 22.0, 29.0)),
    ("1975-2", "Bilirubin.total [Mass/volume] in Serum or Plasma", "mg/dL", (0.6, 0.5, 0.7)),
    ("2039-6", "Carcinoembryonic Ag [Mass/volume] in Serum or Plasma", "ng/mL", (3.4, 4.6, 7.9)),
]
_LAB_DATES = (date(2025, 3, 3), date(2025, 9, 15), date(2026, 3, 2))
#: PD-L1 TPS on the biopsy (once). LOINC 85147-7 as the MII FHIR example uses
#: it with a % value; clinical-facts §8.5 notes no dedicated TPS code exists.
_PDL1 = ("85147-7", "PD-L1 by clone 22C3 [Interpretation] in Tissue by Immune stain (tumor proportion score)", "%", 60.0, date(2026, 3, 20))


def lab_rows(patient: PatientInfo) -> list[dict[str, Any]]:
    """Every lab value of the demo as rows ``patient_id, loinc, name, value, unit, date``."""
    rows = []
    for loinc, name, unit, values in _LABS:
        for d, v in zip(_LAB_DATES, values):
            rows.append({"patient_id": patient.patient_id, "loinc": loinc, "name": name, "value": v, "unit": unit, "date": d.isoformat()})
    loinc, name, unit, v, d = _PDL1
    rows.append({"patient_id": patient.patient_id, "loinc": loinc, "name": name, "value": v, "unit": unit, "date": d.isoformat()})
    return rows


def _uuid(*parts: object) -> str:
    return str(uuid.uuid5(_NS, "/".join(str(p) for p in parts)))


def _patient_resource(patient: PatientInfo) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": _uuid("patient", patient.patient_id),
        "identifier": [{"system": "urn:clinview:demo:patient-id", "value": patient.patient_id}],
        "name": [{"family": _FAMILY, "given": [_GIVEN], "text": "Demo Synthetic (not a real person)"}],
        "gender": {"F": "female", "M": "male"}.get(patient.sex or "", "unknown"),
        "birthDate": patient.birth_date.isoformat() if patient.birth_date else None,
    }


def _bundle(entries: list[dict[str, Any]], tag: str) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "id": _uuid("bundle", tag),
        "type": "collection",
        "entry": [{"fullUrl": f"urn:uuid:{e['id']}", "resource": e} for e in entries],
    }


def _validate_r4(bundle: dict[str, Any]) -> None:
    """Validate with the R4-compatible models of fhir.resources (the package's
    top level is R5 since 7.x; R4B shares R4's Patient/Observation/FamilyMemberHistory)."""
    from fhir.resources.R4B.bundle import Bundle

    Bundle.model_validate(bundle)


def write_labs(fhir_path: Path, csv_path: Path, patient: PatientInfo) -> None:
    """Labs as a FHIR R4 Bundle (Patient + Observations) and the same rows as CSV."""
    pat = _patient_resource(patient)
    ref = {"reference": f"urn:uuid:{pat['id']}"}
    obs = []
    for r in lab_rows(patient):
        obs.append(
            {
                "resourceType": "Observation",
                "id": _uuid("lab", r["loinc"], r["date"]),
                "status": "final",
                "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}],
                "code": {"coding": [{"system": "http://loinc.org", "code": r["loinc"], "display": r["name"]}], "text": r["name"]},
                "subject": ref,
                "effectiveDateTime": r["date"],
                "valueQuantity": {"value": r["value"], "unit": r["unit"], "system": "http://unitsofmeasure.org", "code": r["unit"]},
            }
        )
    bundle = _bundle([pat, *obs], "labs")
    _validate_r4(bundle)
    fhir_path.write_text(json.dumps(bundle, indent=1))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=["patient_id", "loinc", "name", "value", "unit", "date"], lineterminator="\n")
    w.writeheader()
    for r in lab_rows(patient):
        w.writerow(r)
    csv_path.write_text(buf.getvalue())


def write_clinical_fhir(path: Path, patient: PatientInfo) -> None:
    """Smoking status (former), 40 pack-years, quit 5 years ago, mother with lung cancer."""
    pat = _patient_resource(patient)
    ref = {"reference": f"urn:uuid:{pat['id']}"}
    when = "2025-03-10"
    social = [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "social-history"}]}]
    entries = [
        pat,
        {
            "resourceType": "Observation", "id": _uuid("smoking-status"), "status": "final", "category": social,
            "code": {"coding": [{"system": "http://loinc.org", "code": "72166-2", "display": "Tobacco smoking status"}], "text": "Tobacco smoking status"},
            "subject": ref, "effectiveDateTime": when,
            "valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct", "code": "8517006", "display": "Ex-smoker"}], "text": "Former smoker"},
        },
        {
            # LOINC 8664-5 and SNOMED 401201003 (cigarette pack-years) are both
            # used for pack-years in the wild; both codings plus a plain text
            "resourceType": "Observation", "id": _uuid("pack-years"), "status": "final", "category": social,
            "code": {
                "coding": [
                    {"system": "http://loinc.org", "code": "8664-5", "display": "Cigarettes smoked total (pack per year) - Reported"},
                    {"system": "http://snomed.info/sct", "code": "401201003", "display": "Cigarette pack-years"},
                ],
                "text": "Tobacco smoking pack-years",
            },
            "subject": ref, "effectiveDateTime": when,
            "valueQuantity": {"value": 40, "unit": "{pack-years}", "system": "http://unitsofmeasure.org", "code": "{pack-years}"},
        },
        {
            # no code is certain here: SNOMED 228486009 "Time since stopped
            # smoking" (moderate confidence), so the text says it plainly
            "resourceType": "Observation", "id": _uuid("years-since-quit"), "status": "final", "category": social,
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "228486009", "display": "Time since stopped smoking"}], "text": "Years since quitting smoking"},
            "subject": ref, "effectiveDateTime": when,
            "valueQuantity": {"value": 5, "unit": "a", "system": "http://unitsofmeasure.org", "code": "a"},
        },
        {
            "resourceType": "FamilyMemberHistory", "id": _uuid("family-history"), "status": "completed",
            "patient": ref, "date": when,
            "relationship": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode", "code": "MTH", "display": "mother"}]},
            "condition": [{"code": {"coding": [{"system": "http://snomed.info/sct", "code": "363358000", "display": "Malignant tumor of lung"}], "text": "Lung cancer"}}],
        },
    ]
    bundle = _bundle(entries, "clinical")
    _validate_r4(bundle)
    path.write_text(json.dumps(bundle, indent=1))
