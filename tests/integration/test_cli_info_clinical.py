"""``clinview info FILE`` on genomic, lab and clinical files, through the real
console script: exit 0 with what was read for a usable file; exit 2 with one
line and no traceback for an unusable one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1] / "data" / "clinical"


def _clinview() -> list[str]:
    exe = Path(sys.executable).parent / "clinview"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "clinview.cli"]


def _info(path: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ}
    env.pop("CLINVIEW_DEBUG", None)
    return subprocess.run([*_clinview(), "info", str(path), *extra], capture_output=True, text=True, timeout=120, env=env)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("tumor_normal_vep.vcf", ["GRCh38", "TUMOR (tumour)", "EGFR p.L858R", "OncoKB level 1", "DPYD", "PT-0042", ":24:"]),
        ("single_snpeff.vcf", ["SnpEff ANN", "KRAS p.G12C", "EGFR p.E746_A750del"]),
        ("unannotated_grch37.vcf", ["GRCh37", "EGFR p.L858R", "KRAS p.G12C"]),
        ("tcga_lung.maf", ["MAF", "TCGA-05-4244", "KRAS p.G12C", "EGFR p.T790M", "row skipped"]),
        ("biomarkers.csv", ["ALK fusion", "TPS 60 %", "unknown gene 'FOOBAR1'"]),
        ("labs.csv", ["Creatinine (2160-0): 2 result(s)", "converted from 30.0 umol/L", "furlongs", "duplicate", "impossible"]),
        ("labs.fhir.json", ["Jane Doe", "Platelets", "entry 5"]),
        ("clinical.fhir.json", ["smoking former", "pack-years 32.0", "family history of lung cancer True"]),
    ],
)
def test_info_on_usable_files(name, expected):
    r = _info(DATA / name)
    assert r.returncode == 0, r.stderr
    for text in expected:
        assert text in r.stdout, (text, r.stdout)
    assert "Traceback" not in r.stdout + r.stderr


def test_info_json_output():
    r = _info(DATA / "tumor_normal_vep.vcf", "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["usable"] is True and any("EGFR p.L858R" in ln for ln in data["lines"])


@pytest.mark.parametrize("name", ["broken_header.vcf", "not_genomic.txt"])
def test_info_on_unusable_file_exits_2_with_one_line(name):
    r = _info(DATA / name)
    assert r.returncode == 2
    out = (r.stdout + r.stderr).strip().splitlines()
    assert len(out) == 1 and name in out[0]
    assert "Traceback" not in r.stdout + r.stderr


def test_info_on_fhir_with_only_invalid_entries_exits_2_one_line(tmp_path):
    p = tmp_path / "bad.fhir.json"
    p.write_text(json.dumps({"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "Patient", "birthDate": "1956-02-30"}}]}))  # fmt: skip
    r = _info(p)
    assert r.returncode == 2
    out = (r.stdout + r.stderr).strip().splitlines()
    assert len(out) == 1 and "bad.fhir.json" in out[0] and "birthDate" in out[0]


def test_info_on_gzipped_vcf(tmp_path):
    import gzip

    p = tmp_path / "t.vcf.gz"
    with gzip.open(p, "wb") as fh:
        fh.write((DATA / "tumor_normal_vep.vcf").read_bytes())
    r = _info(p)
    assert r.returncode == 0 and "EGFR p.L858R" in r.stdout
