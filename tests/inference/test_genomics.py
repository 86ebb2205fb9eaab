"""Genomic readers on small realistic files: VEP CSQ, SnpEff ANN, unannotated
(hotspots by coordinates in GRCh37 and GRCh38), gzip and BGZF, tumour/normal,
MAF, biomarker tables, malformed lines."""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import pytest

from inference.errors import InputError
from inference.io.genomics import read_genomics, read_vcf

DATA = Path(__file__).resolve().parents[1] / "data" / "clinical"


def _line_of(path: Path, needle: str) -> int:
    for i, ln in enumerate(path.read_text().splitlines(), start=1):
        if needle in ln:
            return i
    raise AssertionError(needle)


def _by_gene(res, gene):
    hits = [v for v in res.variants if v["gene"] == gene]
    assert len(hits) == 1, [v["gene"] for v in res.variants]
    return hits[0]


def test_vep_tumour_normal_vcf_normalised_with_origin_vaf_and_levels():
    res = read_genomics(DATA / "tumor_normal_vep.vcf")
    assert res.build == "GRCh38" and "contig" in res.build_evidence
    assert res.tumor_sample == "TUMOR" and res.normal_sample == "NORMAL"
    assert res.patient is not None and res.patient.patient_id == "PT-0042"
    egfr = _by_gene(res, "EGFR")
    assert egfr["protein_change"] == "p.L858R"  # from p.Leu858Arg
    assert egfr["hgvs_c"] == "c.2573T>G"
    assert egfr["vaf"] == pytest.approx(0.31) and egfr["depth"] == 100
    assert egfr["origin"] == "somatic"
    assert egfr["actionable"] and egfr["evidence_level"] == "1" and "osimertinib" in egfr["drugs"]
    dpyd = _by_gene(res, "DPYD")
    assert dpyd["origin"] == "germline" and dpyd["zygosity"] == "heterozygous"
    assert dpyd["pgx"]["allele"] == "*2A"
    tp53 = _by_gene(res, "TP53")
    assert tp53["protein_change"] == "p.R273H" and not tp53["actionable"]


def test_malformed_vcf_lines_become_issues_with_line_numbers_and_the_rest_loads():
    path = DATA / "tumor_normal_vep.vcf"
    res = read_vcf(path)
    bad_cols = _line_of(path, "55191900")
    bad_pos = _line_of(path, "notapos")
    lines = {i.line: i for i in res.issues}
    assert bad_cols in lines and "columns" in lines[bad_cols].message
    assert bad_pos in lines and "notapos" in lines[bad_pos].message
    assert str(path) in lines[bad_pos].one_line()
    assert len(res.variants) == 3  # EGFR, DPYD, TP53 still loaded around the bad lines


def test_vcf_with_no_parsable_record_is_unusable(tmp_path):
    src = (DATA / "tumor_normal_vep.vcf").read_text().splitlines()
    header = [ln for ln in src if ln.startswith("#")]
    p = tmp_path / "allbad.vcf"
    p.write_text("\n".join(header + ["chr1\tX\t.\tA\tG\t.\tPASS\t.\tGT\t0/1\t0/0"]) + "\n")
    with pytest.raises(InputError, match="none of the 1 VCF records"):
        read_vcf(p)


def test_snpeff_ann_vcf_exon19_deletion_and_kras_g12c():
    res = read_genomics(DATA / "single_snpeff.vcf")
    assert res.annotation == "SnpEff ANN" and res.build == "GRCh37"
    kras = _by_gene(res, "KRAS")
    assert kras["protein_change"] == "p.G12C" and kras["kb_id"] == "KRAS_G12C"
    assert set(kras["drugs"]) >= {"sotorasib", "adagrasib"}
    egfr = _by_gene(res, "EGFR")
    assert egfr["variant_class"] == "inframe_deletion" and egfr["kb_id"] == "EGFR_EX19DEL"
    assert egfr["vaf"] == pytest.approx(60 / 210, abs=1e-3)
    # sample name "LUAD-017-T" names the patient without its tissue suffix
    assert res.patient.patient_id == "LUAD-017"


@pytest.mark.parametrize(
    ("name", "build", "expected"),
    [
        ("unannotated_grch38.vcf", "GRCh38", {("EGFR", "p.L858R"), ("BRAF", "p.V600E")}),
        ("unannotated_grch37.vcf", "GRCh37", {("EGFR", "p.L858R"), ("KRAS", "p.G12C")}),
    ],
)
def test_unannotated_vcf_hotspots_matched_by_coordinates_in_detected_build(name, build, expected):
    res = read_genomics(DATA / name)
    assert res.annotation == "none" and res.build == build
    found = {(v["gene"], v["protein_change"]) for v in res.variants if v["gene"]}
    assert found == expected
    for v in res.variants:
        if v["gene"]:
            assert v["evidence_level"] == "1" and build in v["matched_by"]


def test_grch38_coordinate_is_not_matched_in_a_grch37_file():
    res = read_genomics(DATA / "unannotated_grch37.vcf")
    v = next(v for v in res.variants if v["pos"] == 55191822)
    assert v["gene"] is None and not v["actionable"]


def test_unannotated_vcf_without_build_says_so(tmp_path):
    text = (DATA / "unannotated_grch37.vcf").read_text().replace("##reference=", "##note=")
    p = tmp_path / "nobuild.vcf"
    p.write_text(text)
    res = read_genomics(p)
    assert res.build is None
    assert any("build not detected" in i.message for i in res.issues)
    assert not any(v["gene"] for v in res.variants)


def _bgzf_compress(data: bytes, block: int = 4000) -> bytes:
    """Minimal BGZF writer (SAM spec 4.1): gzip members with a BC extra field."""
    out = b""
    chunks = [data[i : i + block] for i in range(0, len(data), block)] + [b""]  # last: EOF block
    for chunk in chunks:
        comp = zlib.compressobj(6, zlib.DEFLATED, -15)
        cdata = comp.compress(chunk) + comp.flush()
        bsize = len(cdata) + 25  # total block size - 1
        header = struct.pack("<4BI2BH2BHH", 31, 139, 8, 4, 0, 0, 255, 6, 66, 67, 2, bsize)
        out += header + cdata + struct.pack("<2I", zlib.crc32(chunk) & 0xFFFFFFFF, len(chunk))
    return out


@pytest.mark.parametrize("mode", ["gzip", "bgzf"])
def test_compressed_vcf_reads_like_plain(tmp_path, mode):
    raw = (DATA / "tumor_normal_vep.vcf").read_bytes()
    p = tmp_path / "t.vcf.gz"
    if mode == "gzip":
        with gzip.open(p, "wb") as fh:
            fh.write(raw)
    else:
        p.write_bytes(_bgzf_compress(raw, block=700))  # several blocks
        assert p.read_bytes()[12:14] == b"BC"
    plain = read_genomics(DATA / "tumor_normal_vep.vcf")
    comp = read_genomics(p)
    key = lambda r: [(v["gene"], v["protein_change"], v["vaf"], v["origin"]) for v in r.variants]  # noqa: E731
    assert key(comp) == key(plain)
    assert [i.line for i in comp.issues] == [i.line for i in plain.issues]


def test_maf_tcga_barcode_levels_and_bad_row():
    path = DATA / "tcga_lung.maf"
    res = read_genomics(path)
    assert res.kind == "maf" and res.build == "GRCh37"
    assert res.patient.patient_id == "TCGA-05-4244"
    kras = _by_gene(res, "KRAS")
    assert kras["evidence_level"] == "1" and kras["vaf"] == pytest.approx(0.40)
    t790m = _by_gene(res, "EGFR")
    assert t790m["kb_id"] == "EGFR_T790M" and "osimertinib" in t790m["drugs"]
    assert [i.line for i in res.issues] == [_line_of(path, "STK11")]
    assert "STK11" not in {v["gene"] for v in res.variants}


def test_biomarker_table_fusion_exon14_pdl1_negative_and_unknown_gene():
    path = DATA / "biomarkers.csv"
    res = read_genomics(path)
    by = {b["gene"]: b for b in res.biomarkers}
    assert by["ALK"]["kb_id"] == "ALK_FUSION" and by["ALK"]["evidence_level"] == "1"
    assert "alectinib" in by["ALK"]["drugs"]
    assert by["MET"]["kb_id"] == "MET_EX14" and "capmatinib" in by["MET"]["drugs"]
    assert by["PD-L1"]["tps"] == 60 and by["PD-L1"]["tier"] == "high"
    assert by["EGFR"]["present"] is False and not by["EGFR"]["actionable"]
    unknown = [i for i in res.issues if "FOOBAR1" in i.message]
    assert len(unknown) == 1 and unknown[0].line == _line_of(path, "FOOBAR1")
    assert by["FOOBAR1"]["actionable"] is False  # kept, not interpreted


def test_biomarker_table_dpyd_genotype_row(tmp_path):
    p = tmp_path / "pgx.csv"
    p.write_text("gene,alteration,value\nDPYD,*2A/*2A,homozygous\n")
    res = read_genomics(p)
    b = res.biomarkers[0]
    assert b["pgx"]["allele"] == "*2A" and b["zygosity"] == "homozygous"
    call = res.to_findings()["pgx"][0]
    assert call["activity_score"] == 0 and call["action"] == "avoid"


def test_not_a_genomic_file_raises_one_line():
    with pytest.raises(InputError) as e:
        read_genomics(DATA / "not_genomic.txt")
    assert "\n" not in e.value.one_line() and "not_genomic.txt" in e.value.one_line()


def test_tumour_only_vcf_pgx_allele_is_germline(tmp_path):
    src = DATA / "unannotated_grch38.vcf"
    text = src.read_text().replace("##contig=<ID=chr7", "##contig=<ID=chr1,length=248956422>\n##contig=<ID=chr7")
    text += "chr1\t97450058\trs3918290\tC\tT\t60\tPASS\t.\tGT:AD\t1/1:0,40\n"
    p = tmp_path / "t.vcf"
    p.write_text(text)
    res = read_genomics(p)
    d = next(v for v in res.variants if v["pos"] == 97450058)
    assert d["gene"] == "DPYD" and d["origin"] == "germline" and d["zygosity"] == "homozygous"


_CSQ_HDR = (
    "##fileformat=VCFv4.2\n##reference=GRCh38\n"
    '##INFO=<ID=DP,Number=1,Type=Integer,Description="Depth">\n'
    '##INFO=<ID=CSQ,Number=.,Type=String,Description="Consequence annotations from Ensembl VEP. '
    'Format: Allele|Consequence|SYMBOL|EXON|INTRON|HGVSc|HGVSp|CANONICAL">\n'
    "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
)


def test_sites_only_vcf_met_exon14_splice_site_multiallelic_and_bad_info(tmp_path):
    body = [
        # MET intron 14 donor: no protein change; the intron number decides
        "7\t116771994\t.\tG\tA\t.\tPASS\tDP=80;CSQ=A|splice_donor_variant|MET||14/20|c.3028+1G>A||YES",
        # multi-allelic: each ALT takes its own CSQ entry (VEP writes deletions as '-')
        "12\t25245350\t.\tCC\tAC,C\t.\tPASS\tDP=90;CSQ=AC|missense_variant|KRAS|2/6||c.35G>T|p.Gly12Val|YES,"
        "-|frameshift_variant|KRAS|2/6||c.34del|p.Gly12fs|YES",
        "7\t55191822\t.\tT\tG\t.\tPASS\tDP=notanumber;CSQ=G|missense_variant|EGFR|21/28||c.2573T>G|p.Leu858Arg|YES",
        "7\t55181378\t.\tC\tT\t.\tPASS\tDP=70;CSQ=T|missense_variant|EGFR|20/28||c.2369C>T|p.Thr790Met|YES",
    ]
    p = tmp_path / "sites.vcf"
    p.write_bytes((_CSQ_HDR + "\n".join(body) + "\n").replace("\n", "\r\n").encode())  # CRLF as from Windows
    res = read_vcf(p)
    assert res.samples == [] and res.build == "GRCh38"
    met = _by_gene(res, "MET")
    assert met["kb_id"] == "MET_EX14" and "capmatinib" in met["drugs"]
    kras = [v for v in res.variants if v["gene"] == "KRAS"]
    assert [v["protein_change"] for v in kras] == ["p.G12V", "p.G12fs"]
    # DP=notanumber: vcfpy keeps the record with the raw string; one issue names the line
    assert [i.line for i in res.issues] == [8] and "notanumber" in res.issues[0].message
    l858r = next(v for v in res.variants if v["protein_change"] == "p.L858R")
    assert l858r["depth"] is None and l858r["evidence_level"] == "1"


def test_met_splice_variant_in_another_intron_is_not_exon14():
    from inference.clinical.knowledge import load_kb

    kb = load_kb()
    assert kb.match_alteration("MET", None, variant_class="splice", intron=2) == []
    assert kb.match_alteration("MET", None, variant_class="splice", intron=13)[0].entry.id == "MET_EX14"


def test_snpeff_gene_fusion_breakend_is_an_alk_fusion(tmp_path):
    hdr = (DATA / "single_snpeff.vcf").read_text().split("#CHROM")[0]
    rec = ("2\t29446394\t.\tA\tA]chr2:42522656]\t.\tPASS\tDP=40;ANN=A]chr2:42522656]|gene_fusion|HIGH|ALK&EML4|"
           "ENSG1&ENSG2|gene_variant|ENSG1|||||||||\tGT:AD:DP\t0/1:30,10:40")  # fmt: skip
    p = tmp_path / "sv.vcf"
    p.write_text(hdr + "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tLUAD-017-T\n" + rec + "\n")
    res = read_vcf(p)
    alk = _by_gene(res, "ALK")
    assert alk["variant_class"] == "fusion" and alk["partner"] == "EML4" and alk["kb_id"] == "ALK_FUSION"


def test_vcf_without_records_is_a_valid_empty_result(tmp_path):
    header = [ln for ln in (DATA / "tumor_normal_vep.vcf").read_text().splitlines() if ln.startswith("#")]
    p = tmp_path / "empty.vcf"
    p.write_text("\n".join(header) + "\n")
    res = read_vcf(p)
    assert res.variants == [] and res.usable and res.build == "GRCh38"


def test_strelka_tier_counts_and_varscan_freq_give_vaf(tmp_path):
    hdr = (
        "##fileformat=VCFv4.2\n##reference=GRCh38\n##source=strelka\n"
        '##INFO=<ID=SOMATIC,Number=0,Type=Flag,Description="Somatic">\n'
        + "".join(f'##FORMAT=<ID={b}U,Number=2,Type=Integer,Description="tier1,tier2 {b} counts">\n' for b in "ACGT")
        + '##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Depth">\n'
        '##FORMAT=<ID=FREQ,Number=1,Type=String,Description="Variant allele frequency">\n'
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tNORMAL\tTUMOR\n"
    )
    recs = [
        "chr7\t55191822\t.\tT\tG\t.\tPASS\tSOMATIC\tDP:AU:CU:GU:TU\t40:0,0:0,0:0,0:40,40\t100:0,0:0,0:25,25:75,75",
        "chr12\t25245351\t.\tC\tA\t.\tPASS\tSOMATIC\tFREQ\t0%\t12.5%",
    ]  # fmt: skip
    p = tmp_path / "strelka.vcf"
    p.write_text(hdr + "\n".join(recs) + "\n")
    res = read_vcf(p)
    assert res.tumor_sample == "TUMOR" and res.normal_sample == "NORMAL"
    egfr, kras = res.variants
    assert egfr["gene"] == "EGFR" and egfr["vaf"] == pytest.approx(0.25) and egfr["origin"] == "somatic"
    assert kras["gene"] == "KRAS" and kras["vaf"] == pytest.approx(0.125) and kras["origin"] == "somatic"
