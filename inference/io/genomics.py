"""Genomic inputs: VCF 4.x (plain, gzip or BGZF; VEP CSQ, SnpEff ANN or none),
MAF (TCGA / cBioPortal) and simple biomarker tables.

Every reader returns a :class:`GenomicsResult`: variants normalised to gene and
one-letter HGVS p. change with VAF and depth, the genome build and how it was
detected, the patient identity the file states, and one :class:`Issue` per
malformed line. A bad line never stops the rest of the file from loading; only a
file with nothing usable raises :class:`inference.errors.InputError`.

Why vcfpy is fed line by line: ``vcfpy.Reader`` raises on the first malformed
record and cannot resume, so the header is parsed by vcfpy as a whole and each
record line is handed to vcfpy's record parser separately. Field parsing (INFO
types, FORMAT calls, ALT records) stays in the library.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
import warnings
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Iterable

from inference.clinical.knowledge import (
    KnowledgeBase,
    load_kb,
    one_letter_protein,
    variant_class_from_protein,
)
from inference.errors import InputError
from inference.types import Issue, PatientInfo

__all__ = [
    "GenomicsResult",
    "read_genomics",
    "read_vcf",
    "read_maf",
    "read_biomarkers",
    "detect_genomic_kind",
    "detect_build",
    "pgx_calls",
    "annotate_alteration",
]

# Contig lengths that tell the builds apart (UCSC/Ensembl primary assembly).
_CONTIG_LENGTHS: dict[str, dict[str, int]] = {
    "GRCh37": {"1": 249250621, "7": 159138663, "12": 133851895, "17": 81195210, "X": 155270560},
    "GRCh38": {"1": 248956422, "7": 159345973, "12": 133275309, "17": 83257441, "X": 156040895},
}
_BUILD_WORDS = (
    ("GRCh38", re.compile(r"grch38|hg38|b38|hs38|grch38\.p\d+", re.I)),
    ("GRCh37", re.compile(r"grch37|hg19|b37|hs37d5|human_g1k_v37|grch37\.p\d+", re.I)),
)
_GENERIC_SAMPLE = re.compile(r"^(tumou?r|normal|sample\d*|s\d+|t|n|germline|somatic|none|unknown|\d+)$", re.I)
_MAX_WARN_TYPES = 5


@dataclass
class GenomicsResult:
    """What one genomic file yielded (variants and biomarkers as findings dicts)."""

    source: str
    kind: str  # "vcf" | "maf" | "biomarkers"
    build: str | None = None
    build_evidence: str = ""
    samples: list[str] = field(default_factory=list)
    tumor_sample: str | None = None
    normal_sample: str | None = None
    patient: PatientInfo | None = None
    patient_evidence: str = ""
    variants: list[dict[str, Any]] = field(default_factory=list)
    biomarkers: list[dict[str, Any]] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    n_lines: int = 0
    annotation: str = "none"  # "VEP CSQ" | "SnpEff ANN" | "none" | "MAF" | "table"

    n_bad: int = 0  # record lines that could not be parsed

    @property
    def usable(self) -> bool:
        """A file is usable when it holds results, or (a VCF) when it parsed
        cleanly with no variant records: "nothing found" is a result too."""
        if self.variants or self.biomarkers:
            return True
        return self.kind == "vcf" and self.n_bad == 0

    def to_findings(self) -> dict[str, Any]:
        """The ``genomics`` block of findings.json for this file alone."""
        return {
            "source": self.source,
            "kind": self.kind,
            "build": self.build,
            "build_evidence": self.build_evidence,
            "sample": self.tumor_sample or (self.samples[0] if self.samples else None),
            "samples": list(self.samples),
            "annotation": self.annotation,
            "variants": list(self.variants),
            "biomarkers": list(self.biomarkers),
            "pgx": pgx_calls(self.variants + self.biomarkers),
            "issues": [i.one_line() for i in self.issues],
        }


# --------------------------------------------------------------------------- dispatch
def _open_text(path: Path) -> io.TextIOBase:
    """Plain or gzip/BGZF text. BGZF is multi-member gzip, which :mod:`gzip` reads."""
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == b"\x1f\x8b":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="replace", newline="")
    return open(path, encoding="utf-8", errors="replace", newline="")


def _read_lines(path: Path) -> list[str]:
    try:
        with _open_text(path) as fh:
            return fh.read().splitlines()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise InputError(f"cannot read: {e}", where=str(path)) from e


def detect_genomic_kind(path: Path, head: list[str] | None = None) -> str | None:
    """``"vcf"``, ``"maf"``, ``"biomarkers"`` or ``None`` from the first lines."""
    lines = head if head is not None else _read_lines(path)[:200]
    for ln in lines:
        if not ln.strip():
            continue
        if ln.startswith("##fileformat=VCF"):
            return "vcf"
        if ln.startswith("#") and not ln.startswith("#CHROM"):
            continue  # MAF version comment lines
        low = [c.strip().lower() for c in re.split(r"[\t,;]", ln)]
        if "hugo_symbol" in low:
            return "maf"
        if "gene" in low and ("alteration" in low or "biomarker" in low or "variant" in low):
            return "biomarkers"
        return None
    return None


def read_genomics(path: str | Path, *, kb: KnowledgeBase | None = None) -> GenomicsResult:
    """Read any supported genomic file, detecting its kind from its content.

    Raises
    ------
    InputError
        When the file cannot be read, is of no known kind, or has no usable record.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError("no such file", where=str(p))
    lines = _read_lines(p)
    kind = detect_genomic_kind(p, lines[:200])
    if kind == "vcf":
        return read_vcf(p, kb=kb, _lines=lines)
    if kind == "maf":
        return read_maf(p, kb=kb, _lines=lines)
    if kind == "biomarkers":
        return read_biomarkers(p, kb=kb, _lines=lines)
    raise InputError(
        "not a VCF (##fileformat=VCF), MAF (Hugo_Symbol column) or biomarker table (gene,alteration,value)",
        where=str(p),
    )


# --------------------------------------------------------------------------- annotation
def annotate_alteration(
    kb: KnowledgeBase,
    gene: str | None,
    protein_change: str | None,
    *,
    variant_class: str | None = None,
    exon: int | None = None,
    intron: int | None = None,
    text: str = "",
) -> dict[str, Any]:
    """KB fields for one alteration: actionable, evidence_level, drugs, kb_id(s).

    Sensitivity entries win over resistance-only entries for the headline level;
    all matched entries are listed in ``kb_matches`` for the rationale.
    """
    out: dict[str, Any] = {
        "actionable": False,
        "evidence_level": None,
        "drugs": [],
        "resistance_drugs": [],
        "kb_id": None,
        "kb_matches": [],
    }
    if not gene:
        return out
    matches = kb.match_alteration(gene, protein_change, variant_class=variant_class, exon=exon, intron=intron, text=text)
    if not matches:
        return out
    from inference.clinical.knowledge import LEVEL_ORDER, RESISTANCE_LEVELS

    def rank(m: Any) -> int:
        lv = m.entry.level
        order = list(LEVEL_ORDER + RESISTANCE_LEVELS)
        return order.index(lv) if lv in order else len(order)

    matches.sort(key=rank)
    head = matches[0].entry
    out["kb_id"] = head.id
    out["evidence_level"] = head.level
    out["actionable"] = head.level in LEVEL_ORDER[:3] and not head.match.get("review_only")
    if head.match.get("review_only"):
        out["review"] = "matched by variant class only: check oncogenicity before acting"
    out["drugs"] = head.sensitive_drugs
    for m in matches:
        for d in m.entry.resistant_drugs:
            if d not in out["resistance_drugs"]:
                out["resistance_drugs"].append(d)
    out["kb_matches"] = [
        {
            "kb_id": m.entry.id,
            "alteration": m.entry.alteration,
            "level": m.entry.level,
            "matched_by": m.how,
            "source": m.entry.source,
            "verified": m.entry.verified,
        }
        for m in matches
    ]
    return out


def _annotate_variant(kb: KnowledgeBase, v: dict[str, Any], *, build: str | None) -> None:
    """Fill KB fields and, for unannotated records, the gene/protein from hotspots."""
    if not v.get("gene") or not v.get("protein_change"):
        hs = kb.match_hotspot(build, v["chrom"], v["pos"], v["ref"], v["alt"]) if v.get("chrom") else None
        if hs is not None:
            v["gene"] = v.get("gene") or hs.gene
            v["protein_change"] = v.get("protein_change") or kb.hotspot_protein(hs)
            v["matched_by"] = f"coordinates {v['chrom']}:{v['pos']} {v['ref']}>{v['alt']} ({build})"
            if not v.get("hgvs_c"):
                for h in hs.hotspots:
                    if h.get("build") == build:
                        v["hgvs_c"] = h.get("hgvs_c")
    pgx = kb.match_pgx(
        v.get("gene"),
        hgvs_c=v.get("hgvs_c"),
        rsids=v.get("ids", []),
        build=build,
        chrom=v.get("chrom"),
        pos=v.get("pos"),
        ref=v.get("ref"),
        alt=v.get("alt"),
    )
    if pgx is not None:
        g, allele = pgx
        v["gene"] = v.get("gene") or g
        v["hgvs_c"] = v.get("hgvs_c") or allele.get("hgvs_c")
        v["pgx"] = {"gene": g, "allele": allele["name"], "activity": allele["activity"], "rsid": allele.get("rsid")}
        if not v.get("matched_by") and not v.get("annotated"):
            v["matched_by"] = "rsID/coordinates (PGx)"
    v["variant_class"] = v.get("variant_class") or variant_class_from_protein(v.get("protein_change"), v.get("consequence", ""))
    v.update(
        annotate_alteration(
            kb, v.get("gene"), v.get("protein_change"), variant_class=v.get("variant_class"), exon=v.get("exon"),
            intron=v.get("intron"),
        )
    )
    if v.get("filter") and v["filter"] not in ("PASS", "."):
        v["actionable"] = False


def pgx_calls(items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Diplotype-free activity-score calls per PGx gene from germline hits.

    Why activity scores: CPIC's DPYD guideline is written in them (2 = normal,
    1-1.5 intermediate, 0.5 / 0 poor). Each hit lowers the score by
    ``(1 - activity)`` per allele copy (two copies when homozygous). Phase is
    unknown, so two different heterozygous hits are assumed to be in *trans*,
    the cautious reading.
    """
    kb = load_kb()
    per_gene: dict[str, dict[str, Any]] = {}
    for v in items:
        info = v.get("pgx")
        if not info:
            continue
        g = info["gene"]
        copies = 2 if v.get("zygosity") == "homozygous" else 1
        rec = per_gene.setdefault(g, {"gene": g, "alleles": [], "activity_score": 2.0, "evidence": []})
        rec["activity_score"] = max(0.0, rec["activity_score"] - copies * (1.0 - float(info["activity"])))
        rec["alleles"].append(f"{info['allele']} {v.get('zygosity') or 'heterozygous'}")
        rec["evidence"].append(v.get("source_line") or v.get("hgvs_c") or info["allele"])
    out = []
    for g, rec in per_gene.items():
        ph = kb.pgx_phenotype(g, rec["activity_score"]) or {}
        gene_info = kb.pgx.get(g, {})
        out.append(
            {
                "gene": g,
                "genotype": "; ".join(rec["alleles"]),
                "activity_score": rec["activity_score"],
                "phenotype": ph.get("phenotype"),
                "recommendation": ph.get("recommendation"),
                "action": ph.get("action"),
                "dose_percent": ph.get("dose_percent"),
                "drugs": list(gene_info.get("drugs", [])),
                "source": gene_info.get("source"),
                "verified": gene_info.get("verified", True),
            }
        )
    return out


# --------------------------------------------------------------------------- VCF
def detect_build(header_lines: list[str]) -> tuple[str | None, str]:
    """Genome build from contig lengths (decisive) or header words. Returns
    ``(build, evidence)``; evidence says which line decided, for the display."""
    for ln in header_lines:
        if ln.startswith("##contig="):
            m_id = re.search(r"ID=([^,>]+)", ln)
            m_len = re.search(r"length=(\d+)", ln)
            if m_id and m_len:
                c = m_id.group(1)
                c = c[3:] if c.lower().startswith("chr") else c
                n = int(m_len.group(1))
                for build, table in _CONTIG_LENGTHS.items():
                    if table.get(c) == n:
                        return build, f"contig {m_id.group(1)} length {n}"
    for ln in header_lines:
        if ln.startswith(("##reference", "##assembly", "##contig", "##VEP", "##SnpEff", "##genome", "##build", "##source")):
            for build, rx in _BUILD_WORDS:
                if rx.search(ln):
                    return build, ln[:80]
    return None, ""


def _annotation_fields(header: Any, key: str) -> list[str] | None:
    """Field names of VEP CSQ (``Format: A|B``) or SnpEff ANN (``'A | B'``)."""
    if key not in header.info_ids():
        return None
    info = header.get_info_field_info(key)
    desc = getattr(info, "description", "") or ""
    m = re.search(r"Format:\s*'?([^'\"]+)'?", desc) or re.search(r"'([^']+\|[^']+)'", desc)
    if not m:
        return None
    return [f.strip() for f in m.group(1).split("|")]


def _vep_allele(ref: str, alt: str) -> str:
    """VEP writes indel alleles without the shared first base (``-`` for a deletion)."""
    if len(ref) == 1 and len(alt) == 1:
        return alt
    if ref and alt and ref[0] == alt[0]:
        return alt[1:] or "-"
    return alt


def _pick_annotation(entries: list[str], names: list[str], ref: str, alt: str, kind: str) -> dict[str, str] | None:
    """The annotation to report for one ALT allele.

    Preference: the allele's own entries; then VEP's PICK, CANONICAL, MANE
    Select; then an entry with a protein change; then any with a gene symbol.
    SnpEff sorts ANN by impact already, so its first entry for the allele wins.
    """
    parsed = []
    for e in entries:
        vals = e.split("|")
        parsed.append({names[i]: (vals[i] if i < len(vals) else "") for i in range(len(names))})
    if not parsed:
        return None
    allele_key = "Allele"
    wanted = {alt, _vep_allele(ref, alt)}
    own = [d for d in parsed if d.get(allele_key, "").strip() in wanted]
    cands = own or parsed
    if kind == "CSQ":
        for pref in ("PICK", "CANONICAL", "MANE_SELECT"):
            for d in cands:
                if d.get(pref) in ("1", "YES") or (pref == "MANE_SELECT" and d.get(pref)):
                    return d
        for d in cands:
            if d.get("HGVSp"):
                return d
    for d in cands:
        if d.get("SYMBOL") or d.get("Gene_Name") or d.get(" Gene_Name "):
            return d
    return cands[0]


def _exon_number(s: str | None) -> int | None:
    if not s:
        return None
    m = re.match(r"(\d+)", s)
    return int(m.group(1)) if m else None


def _first(x: Any) -> Any:
    if isinstance(x, list):
        return x[0] if x else None
    return x


def _first_int(x: Any) -> int | None:
    if isinstance(x, list):
        x = x[0] if x else None
    return x if isinstance(x, int) else None


def _call_metrics(
    call: Any, alt_index: int, ref: str = "", alt: str = ""
) -> tuple[float | None, int | None, str | None, bool]:
    """(VAF, depth, GT, carries_alt) for one sample call.

    Sources, in order: ``AF`` (Mutect2), ``FREQ`` ("31%", VarScan2), ``AD``
    (allelic depths), Strelka2 tier-1 counts (``AU/CU/GU/TU`` for SNVs,
    ``TAR/TIR`` for indels); depth from ``DP`` when present.
    """
    data = getattr(call, "data", {}) or {}
    gt = data.get("GT")
    vaf = None
    depth = None
    af = data.get("AF")
    if isinstance(af, list) and len(af) >= alt_index and isinstance(af[alt_index - 1], (int, float)):
        vaf = af[alt_index - 1]
    elif isinstance(af, (int, float)):
        vaf = af
    freq = data.get("FREQ")
    if vaf is None and isinstance(freq, (str, list)):
        m = re.match(r"\s*([\d.]+)\s*%", freq if isinstance(freq, str) else str(freq[0]))
        if m:
            vaf = float(m.group(1)) / 100.0
    if vaf is None and len(ref) == 1 and len(alt) == 1 and f"{alt}U" in data:
        counts = {b: _first_int(data.get(f"{b}U")) for b in "ACGT"}
        tot = sum(c for c in counts.values() if c)
        if tot and counts.get(alt) is not None:
            vaf, depth = counts[alt] / tot, tot
    if vaf is None and "TIR" in data and "TAR" in data:
        tir, tar = _first_int(data.get("TIR")), _first_int(data.get("TAR"))
        if tir is not None and tar is not None and tir + tar > 0:
            vaf, depth = tir / (tir + tar), tir + tar
    ad = data.get("AD")
    if isinstance(ad, list) and len(ad) > alt_index and all(isinstance(x, int) for x in ad if x is not None):
        tot = sum(x for x in ad if x is not None)
        if tot > 0:
            depth = tot
            if vaf is None and ad[alt_index] is not None:
                vaf = ad[alt_index] / tot
    dp = data.get("DP")
    if isinstance(dp, int):
        depth = dp
    alleles = re.split(r"[/|]", gt) if isinstance(gt, str) else []
    carries = str(alt_index) in alleles
    if not alleles or all(a == "." for a in alleles):
        carries = bool(vaf and vaf >= 0.1)
    return (float(vaf) if vaf is not None else None), depth, gt, carries


def _zygosity(gt: str | None, alt_index: int) -> str | None:
    if not gt:
        return None
    alleles = [a for a in re.split(r"[/|]", gt) if a != "."]
    if not alleles:
        return None
    n = sum(1 for a in alleles if a == str(alt_index))
    if n == 0:
        return "reference"
    return "homozygous" if n == len(alleles) and len(alleles) > 1 else "heterozygous"


def _header_patient(header_lines: list[str], samples: list[str]) -> tuple[PatientInfo | None, str]:
    """Patient identity stated in VCF meta lines: ``##SAMPLE=<...,Individual=X>``,
    ``##individual=``, ``##patient_id=``/``##PatientID=``, ``##patient_name=`` ..."""
    pid = name = sex = None
    bd: date | None = None
    ev: list[str] = []
    for ln in header_lines:
        m = re.match(r"##sample=<(.*)>", ln, re.I)
        if m:
            for k, v in re.findall(r"(\w+)=(\"[^\"]*\"|[^,]*)", m.group(1)):
                v = v.strip('"')
                kl = k.lower()
                if kl in ("individual", "patient", "patient_id", "patientid", "donor") and v:
                    pid = pid or v
                    ev.append(f"##SAMPLE {k}={v}")
                elif kl in ("sex", "gender") and v:
                    sex = sex or _norm_sex(v)
                elif kl in ("birthdate", "birth_date", "dob") and v:
                    bd = bd or _parse_date(v)
                elif kl in ("patient_name", "patientname") and v:
                    name = name or v
            continue
        m = re.match(r"##(individual|patient_?id|patientid|donor|subject)=(.+)", ln, re.I)
        if m:
            pid = pid or m.group(2).strip()
            ev.append(ln[:60])
            continue
        m = re.match(r"##(patient_?name|patientname)=(.+)", ln, re.I)
        if m:
            name = name or m.group(2).strip()
            continue
        m = re.match(r"##(patient_?sex|sex|gender)=(.+)", ln, re.I)
        if m:
            sex = sex or _norm_sex(m.group(2))
            continue
        m = re.match(r"##(patient_?birth_?date|birth_?date|dob)=(.+)", ln, re.I)
        if m:
            bd = bd or _parse_date(m.group(2).strip())
            continue
    if not pid:
        specific = [s for s in samples if not _GENERIC_SAMPLE.match(s)]
        if specific:
            pid = _patient_from_sample(specific[0])
            ev.append(f"sample name {specific[0]}")
    if not any((pid, name, sex, bd)):
        return None, ""
    return PatientInfo(patient_id=pid, name=name, birth_date=bd, sex=sex), "; ".join(dict.fromkeys(ev))  # type: ignore[arg-type]


def _patient_from_sample(s: str) -> str:
    """TCGA barcodes name the patient in their first three parts; other sample
    names often append a tissue suffix (``PT001-T``, ``PT001_tumor``)."""
    if s.upper().startswith("TCGA-"):
        return "-".join(s.split("-")[:3])
    m = re.match(r"(.+?)[-_.](t|n|tumou?r|normal|germline|blood|ffpe|dna|\d{2}[a-z]?)$", s, re.I)
    return m.group(1) if m else s


def _norm_sex(v: str) -> str | None:
    v = v.strip().lower()
    if v in ("f", "female", "woman", "2"):
        return "F"
    if v in ("m", "male", "man", "1"):
        return "M"
    if v in ("o", "other"):
        return "O"
    return None


def _parse_date(s: str) -> date | None:
    s = s.strip()
    from datetime import datetime

    for fmt in ("%Y-%m-%d", "%Y%m%d", "%d/%m/%Y", "%Y/%m/%d"):
        try:
            return datetime.strptime(s[:10] if "-" in s else s, fmt).date()
        except ValueError:
            continue
    return None


def read_vcf(path: str | Path, *, kb: KnowledgeBase | None = None, _lines: list[str] | None = None) -> GenomicsResult:
    """Read a VCF 4.x file (plain, gzip or BGZF), somatic or germline,
    single-sample or tumour/normal, with VEP CSQ, SnpEff ANN or no annotation.

    Origin: ``INFO/SOMATIC`` marks somatic; with a normal sample, an allele the
    normal carries is germline; a single-sample file is germline when its
    header or sample name says so or the variant is a known PGx allele,
    otherwise somatic (the usual tumour-only panel).

    Raises
    ------
    InputError
        Not a VCF, an unreadable header, or no record could be parsed.
    """
    import vcfpy

    p = Path(path)
    kb = kb or load_kb()
    lines = _lines if _lines is not None else _read_lines(p)
    res = GenomicsResult(source=str(p), kind="vcf")
    header_lines: list[str] = []
    body: list[tuple[int, str]] = []
    for i, ln in enumerate(lines, start=1):
        if ln.startswith("#") and not body:
            header_lines.append(ln)
        elif ln.strip():
            body.append((i, ln))
    res.n_lines = len(body)
    if not header_lines or not header_lines[0].startswith("##fileformat=VCF"):
        raise InputError("not a VCF: the first line must be ##fileformat=VCFv4.x", where=str(p))
    if not header_lines[-1].startswith("#CHROM"):
        raise InputError("VCF header has no #CHROM line", where=str(p), fix="the column header line is required")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            reader = vcfpy.Reader.from_stream(io.StringIO("\n".join(header_lines) + "\n"), path=str(p))
        except (vcfpy.exceptions.VCFPyException, ValueError, IndexError, KeyError) as e:
            raise InputError(f"unreadable VCF header: {e}", where=str(p)) from e
    header = reader.header
    record_parser = reader.parser._record_parser  # noqa: SLF001 - see module docstring
    samples = list(header.samples.names)
    res.samples = samples
    res.build, res.build_evidence = detect_build(header_lines)
    res.patient, res.patient_evidence = _header_patient(header_lines, samples)

    meta = {ln.split("=", 1)[0].lstrip("#").lower(): ln.split("=", 1)[1] for ln in header_lines if "=" in ln}
    tumor = meta.get("tumor_sample") or meta.get("tumour_sample")
    normal = meta.get("normal_sample")
    for s in samples:
        sl = s.lower()
        if not tumor and re.search(r"tumou?r|(^|[-_])t$|primary|ffpe", sl):
            tumor = s
        if not normal and re.search(r"normal|(^|[-_])n$|blood|germline", sl):
            normal = s
    if len(samples) == 2 and tumor in samples and not normal:
        normal = next(s for s in samples if s != tumor)
    if len(samples) == 2 and normal in samples and not tumor:
        tumor = next(s for s in samples if s != normal)
    if len(samples) == 1 and not tumor and not normal:
        tumor = samples[0]
    res.tumor_sample = tumor if tumor in samples else (samples[0] if samples else None)
    res.normal_sample = normal if normal in samples else None
    germline_file = bool(
        re.search(r"germline|haplotypecaller|deepvariant", " ".join(header_lines[:50]), re.I)
        and not res.normal_sample
        and not re.search(r"mutect|strelka.*somatic|somatic", " ".join(header_lines[:50]), re.I)
    ) or (res.tumor_sample is not None and bool(re.search(r"germline|blood|normal", res.tumor_sample, re.I)) and not res.normal_sample)

    csq_names = _annotation_fields(header, "CSQ")
    ann_names = _annotation_fields(header, "ANN")
    res.annotation = "VEP CSQ" if csq_names else ("SnpEff ANN" if ann_names else "none")
    if res.annotation == "none" and not res.build:
        res.issues.append(
            Issue("unannotated VCF and genome build not detected: hotspots cannot be matched by coordinates", str(p))
        )

    n_fields = 9 + len(samples) if samples else 8
    warned: set[str] = set()
    for lineno, ln in body:
        cols = ln.split("\t")
        if len(cols) != n_fields and not (not samples and len(cols) in (8, 9)):
            res.issues.append(Issue(f"expected {n_fields} tab-separated columns, found {len(cols)}; line skipped", str(p), lineno))
            res.n_bad += 1
            continue
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                rec = record_parser.parse_line(ln)
                if rec is None:
                    continue
                # FORMAT calls are parsed lazily by some vcfpy versions: touch them here
                for c in rec.calls or []:
                    _ = c.data
            except (vcfpy.exceptions.VCFPyException, ValueError, IndexError, KeyError, TypeError) as e:
                msg = str(e) or type(e).__name__
                res.issues.append(Issue(f"malformed VCF record ({msg}); line skipped", str(p), lineno))
                res.n_bad += 1
                continue
        for w in caught:
            key = type(w.message).__name__
            if key not in warned and len(warned) < _MAX_WARN_TYPES:
                warned.add(key)
                res.issues.append(Issue(f"{str(w.message)[:160]} (first seen here; record kept)", str(p), lineno))
        _vcf_record_to_variants(rec, lineno, res, kb, csq_names, ann_names, germline_file)
    if body and res.n_bad == len(body):
        raise InputError(f"none of the {len(body)} VCF records could be parsed", where=str(p))
    return res


def _vcf_record_to_variants(
    rec: Any,
    lineno: int,
    res: GenomicsResult,
    kb: KnowledgeBase,
    csq_names: list[str] | None,
    ann_names: list[str] | None,
    germline_file: bool,
) -> None:
    by_name = {c.sample: c for c in (rec.calls or [])}
    filt = ";".join(rec.FILTER) if rec.FILTER else "PASS"
    for ai, alt_rec in enumerate(rec.ALT, start=1):
        alt = getattr(alt_rec, "value", None)
        if alt is None or getattr(alt_rec, "type", "") in ("SYMBOLIC", "BND", "BREAKEND") or str(alt).startswith("<") \
                or "[" in str(alt) or "]" in str(alt):
            fusion = _fusion_from_annotation(rec, kb, csq_names, ann_names)
            if fusion is None:
                res.issues.append(Issue(f"structural/symbolic ALT {alt} without a fusion annotation; not interpreted", res.source, lineno))
                continue
            v = {"gene": fusion[0], "protein_change": None, "hgvs_c": None, "chrom": rec.CHROM, "pos": rec.POS,
                 "ref": rec.REF, "alt": str(getattr(alt_rec, "serialize", lambda: alt)()), "ids": list(rec.ID or []),
                 "filter": filt, "line": lineno, "variant_class": "fusion", "consequence": fusion[1],
                 "partner": fusion[2], "vaf": None, "depth": None, "genotype": None, "zygosity": None,
                 "annotated": True}  # fmt: skip
            _annotate_variant(kb, v, build=res.build)
            v["origin"] = "somatic"
            res.variants.append(v)
            continue
        v: dict[str, Any] = {
            "gene": None,
            "protein_change": None,
            "hgvs_c": None,
            "chrom": rec.CHROM,
            "pos": rec.POS,
            "ref": rec.REF,
            "alt": alt,
            "ids": list(rec.ID or []),
            "filter": filt,
            "line": lineno,
        }
        ann = None
        if csq_names and rec.INFO.get("CSQ"):
            ann = _pick_annotation(list(rec.INFO["CSQ"]), csq_names, rec.REF, alt, "CSQ")
            if ann:
                v["gene"] = ann.get("SYMBOL") or None
                v["protein_change"] = one_letter_protein(ann.get("HGVSp"))
                v["hgvs_c"] = (ann.get("HGVSc") or "").split(":")[-1] or None
                v["consequence"] = ann.get("Consequence", "")
                v["exon"] = _exon_number(ann.get("EXON"))
                v["intron"] = _exon_number(ann.get("INTRON"))
                ex = [x for x in (ann.get("Existing_variation") or "").split("&") if x.startswith("rs")]
                v["ids"] += ex
        elif ann_names and rec.INFO.get("ANN"):
            ann = _pick_annotation(list(rec.INFO["ANN"]), ann_names, rec.REF, alt, "ANN")
            if ann:
                names = {k.replace(" ", ""): val for k, val in ann.items()}
                gene = names.get("Gene_Name") or None
                cons = names.get("Annotation", "")
                if gene and "fusion" in cons and ("&" in gene or "-" in gene):
                    parts = re.split(r"[&-]", gene)
                    gene = next((g for g in parts if kb.is_known_gene(g)), parts[0])
                v["gene"] = gene
                v["protein_change"] = one_letter_protein(names.get("HGVS.p"))
                v["hgvs_c"] = names.get("HGVS.c") or None
                v["consequence"] = cons
                v["exon"] = _exon_number(names.get("Rank"))
        v["annotated"] = ann is not None
        if not v["gene"]:
            g = _first(rec.INFO.get("GENE") or rec.INFO.get("Gene") or rec.INFO.get("SYMBOL"))
            v["gene"] = str(g) if g else None
        if v["protein_change"] is None and rec.INFO.get("HGVSp"):
            v["protein_change"] = one_letter_protein(str(_first(rec.INFO["HGVSp"])))
        # allele metrics
        tumor_call = by_name.get(res.tumor_sample) if res.tumor_sample else None
        normal_call = by_name.get(res.normal_sample) if res.normal_sample else None
        vaf = depth = gt = None
        if tumor_call is not None:
            vaf, depth, gt, _ = _call_metrics(tumor_call, ai, rec.REF, alt)
        else:
            af = rec.INFO.get("AF")
            vaf = af[ai - 1] if isinstance(af, list) and len(af) >= ai else (af if isinstance(af, float) else None)
            dp = rec.INFO.get("DP")
            depth = dp if isinstance(dp, int) else None
        v["vaf"] = round(float(vaf), 4) if vaf is not None else None
        v["depth"] = depth
        v["genotype"] = gt
        normal_carries = False
        if normal_call is not None:
            _, _, ngt, normal_carries = _call_metrics(normal_call, ai, rec.REF, alt)
            v["normal_genotype"] = ngt
            if normal_carries:
                v["zygosity"] = _zygosity(ngt, ai)
        if "zygosity" not in v:
            z = _zygosity(gt, ai)
            if z is None and vaf is not None:
                z = "homozygous" if vaf >= 0.85 else "heterozygous"
            v["zygosity"] = z
        _annotate_variant(kb, v, build=res.build)
        if rec.INFO.get("SOMATIC") is True:
            v["origin"] = "somatic"
        elif rec.INFO.get("GERMLINE") is True or normal_carries:
            v["origin"] = "germline"
        elif res.normal_sample is not None:
            v["origin"] = "somatic"
        else:
            v["origin"] = "germline" if (germline_file or v.get("pgx")) else "somatic"
        res.variants.append(v)


def _fusion_from_annotation(
    rec: Any, kb: KnowledgeBase, csq_names: list[str] | None, ann_names: list[str] | None
) -> tuple[str, str, str | None] | None:
    """``(gene, consequence, partner)`` when a breakend's CSQ/ANN says gene
    fusion (SnpEff ``gene_fusion``, VEP ``feature_elongation``/``transcript_fusion``)."""
    entries: list[dict[str, str]] = []
    for key, names in (("CSQ", csq_names), ("ANN", ann_names)):
        if names and rec.INFO.get(key):
            for e in rec.INFO[key]:
                vals = e.split("|")
                entries.append({names[i]: (vals[i] if i < len(vals) else "") for i in range(len(names))})
    for d in entries:
        cons = d.get("Consequence") or d.get("Annotation") or ""
        if "fusion" not in cons:
            continue
        gene_field = d.get("SYMBOL") or d.get("Gene_Name") or ""
        parts = [g for g in re.split(r"[&-]", gene_field) if g]
        known = [g for g in parts if kb.is_known_gene(g)]
        if known:
            partner = next((g for g in parts if g != known[0]), None)
            return known[0], cons, partner
    return None


# --------------------------------------------------------------------------- MAF
_MAF_CLASS = {
    "missense_mutation": "missense",
    "in_frame_del": "inframe_deletion",
    "in_frame_ins": "inframe_insertion",
    "nonsense_mutation": "truncating",
    "frame_shift_del": "truncating",
    "frame_shift_ins": "truncating",
    "splice_site": "splice",
    "splice_region": "splice",
    "fusion": "fusion",
}


def read_maf(path: str | Path, *, kb: KnowledgeBase | None = None, _lines: list[str] | None = None) -> GenomicsResult:
    """Read a MAF (GDC/TCGA or cBioPortal flavour): tab-separated, ``#`` comment
    lines, a header with at least ``Hugo_Symbol``.

    The patient comes from ``Tumor_Sample_Barcode`` (TCGA barcodes name the
    patient in their first three fields) or a ``Patient_ID`` column.

    Raises
    ------
    InputError
        No ``Hugo_Symbol`` header, or no row could be used.
    """
    p = Path(path)
    kb = kb or load_kb()
    lines = _lines if _lines is not None else _read_lines(p)
    res = GenomicsResult(source=str(p), kind="maf", annotation="MAF")
    hdr_idx = next((i for i, ln in enumerate(lines) if ln.strip() and not ln.startswith("#")), None)
    if hdr_idx is None or "hugo_symbol" not in lines[hdr_idx].lower():
        raise InputError("not a MAF: no Hugo_Symbol header line", where=str(p))
    header = [h.strip() for h in lines[hdr_idx].split("\t")]
    col = {h.lower(): i for i, h in enumerate(header)}
    samples: list[str] = []
    pids: list[str] = []

    def get(row: list[str], *names: str) -> str:
        for n in names:
            i = col.get(n.lower())
            if i is not None and i < len(row) and row[i] not in ("", ".", "NA", "__UNKNOWN__"):
                return row[i].strip()
        return ""

    for lineno, ln in enumerate(lines[hdr_idx + 1 :], start=hdr_idx + 2):
        if not ln.strip() or ln.startswith("#"):
            continue
        row = ln.split("\t")
        res.n_lines += 1
        if len(row) != len(header):
            res.issues.append(Issue(f"expected {len(header)} columns, found {len(row)}; row skipped", str(p), lineno))
            continue
        gene = get(row, "Hugo_Symbol")
        if not gene or gene.lower() == "unknown":
            res.issues.append(Issue("no gene symbol (Hugo_Symbol); row skipped", str(p), lineno))
            continue
        pos_s = get(row, "Start_Position", "Start_position")
        try:
            pos = int(pos_s) if pos_s else None
        except ValueError:
            res.issues.append(Issue(f"Start_Position {pos_s!r} is not an integer; row skipped", str(p), lineno))
            continue
        build = get(row, "NCBI_Build")
        if build and not res.build:
            res.build = "GRCh38" if "38" in build else ("GRCh37" if ("37" in build or "19" in build) else build)
            res.build_evidence = f"NCBI_Build column {build}"
        sample = get(row, "Tumor_Sample_Barcode")
        if sample and sample not in samples:
            samples.append(sample)
        pid = get(row, "Patient_ID", "patient_id", "PATIENT_ID") or (_patient_from_sample(sample) if sample else "")
        if pid and pid not in pids:
            pids.append(pid)
        prot = get(row, "HGVSp_Short", "Protein_Change", "HGVSp", "Amino_Acid_Change")
        vclass_raw = get(row, "Variant_Classification")
        alt = get(row, "Tumor_Seq_Allele2", "Tumor_Seq_Allele1")
        t_alt, t_ref, t_depth = get(row, "t_alt_count"), get(row, "t_ref_count"), get(row, "t_depth")
        vaf = depth = None
        try:
            if t_alt:
                a = int(float(t_alt))
                depth = int(float(t_depth)) if t_depth else (a + int(float(t_ref)) if t_ref else None)
                vaf = a / depth if depth else None
        except ValueError:
            res.issues.append(Issue("allele counts are not numbers; VAF not computed", str(p), lineno))
        status = get(row, "Mutation_Status").lower()
        v: dict[str, Any] = {
            "gene": gene,
            "protein_change": one_letter_protein(prot) if prot else None,
            "hgvs_c": get(row, "HGVSc") or None,
            "chrom": get(row, "Chromosome") or None,
            "pos": pos,
            "ref": get(row, "Reference_Allele") or None,
            "alt": alt or None,
            "ids": [x for x in get(row, "dbSNP_RS").split(",") if x.startswith("rs")],
            "vaf": round(vaf, 4) if vaf is not None else None,
            "depth": depth,
            "origin": "germline" if status == "germline" else "somatic",
            "variant_class": _MAF_CLASS.get(vclass_raw.lower()) if vclass_raw else None,
            "consequence": vclass_raw,
            "exon": _exon_number(get(row, "Exon_Number", "EXON")),
            "sample": sample or None,
            "line": lineno,
            "zygosity": "heterozygous" if status == "germline" else None,
        }
        if v["variant_class"] in ("missense", "splice") and v["protein_change"]:
            v["variant_class"] = variant_class_from_protein(v["protein_change"], vclass_raw)
        _annotate_variant(kb, v, build=res.build)
        res.variants.append(v)
    res.samples = samples
    if pids:
        res.patient = PatientInfo(patient_id=pids[0])
        res.patient_evidence = "Tumor_Sample_Barcode" if "patient_id" not in col else "Patient_ID column"
        if len(pids) > 1:
            res.issues.append(Issue(f"MAF holds {len(pids)} patients ({', '.join(pids[:4])}); identity check uses the first", str(p)))
    if not res.variants:
        raise InputError(f"no usable MAF row among {res.n_lines}", where=str(p))
    return res


# --------------------------------------------------------------------------- biomarker table
_NEGATIVE = re.compile(r"^(neg|negative|not detected|wild[- ]?type|wt|absent|none|no)$", re.I)
_PDL1 = {"PD-L1", "PDL1", "CD274"}
_OTHER_MARKERS = {"TMB", "MSI", "MMR", "HRD"}
_FUSION_RE = re.compile(r"fusion|rearrange|translocation|\b[A-Z0-9]+-(ALK|ROS1|RET|NTRK[123]|NRG1)\b|\b(ALK|ROS1|RET|NTRK[123]|NRG1)-[A-Z0-9]+\b", re.I)


def _tps(*texts: str) -> float | None:
    for t in texts:
        m = re.search(r"(\d+(?:\.\d+)?)\s*%", t or "") or re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*", t or "")
        if m:
            return float(m.group(1))
        m = re.search(r"[<≤]\s*1\s*%?", t or "")
        if m:
            return 0.0
    return None


def read_biomarkers(path: str | Path, *, kb: KnowledgeBase | None = None, _lines: list[str] | None = None) -> GenomicsResult:
    """Read a biomarker table: columns ``gene, alteration, value`` (comma, tab or
    semicolon separated; optional ``patient_id``, ``date``, ``method``).

    Examples of rows: ``ALK,fusion,EML4-ALK``; ``MET,exon 14 skipping,detected``;
    ``PD-L1,TPS,60%``; ``EGFR,L858R,VAF 31%``. A ``value`` of negative / not
    detected / wild-type records the marker as absent. Unknown genes are kept
    but reported, because a typo there would silently hide an actionable result.

    Raises
    ------
    InputError
        No ``gene`` and ``alteration`` header, or no usable row.
    """
    p = Path(path)
    kb = kb or load_kb()
    lines = _lines if _lines is not None else _read_lines(p)
    res = GenomicsResult(source=str(p), kind="biomarkers", annotation="table")
    text = "\n".join(ln for ln in lines if not ln.startswith("#"))
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    delim = "\t" if "\t" in first else (";" if first.count(";") > first.count(",") else ",")
    rows = list(csv.reader(io.StringIO(text), delimiter=delim))
    offset = next((i for i, ln in enumerate(lines) if ln.strip() and not ln.startswith("#")), 0)
    if not rows:
        raise InputError("empty biomarker table", where=str(p))
    header = [h.strip().lower() for h in rows[0]]
    col = {h: i for i, h in enumerate(header)}
    gi = col.get("gene")
    ai = col.get("alteration", col.get("biomarker", col.get("variant")))
    vi = col.get("value", col.get("result"))
    if gi is None or ai is None:
        raise InputError("biomarker table needs 'gene' and 'alteration' columns", where=str(p))
    pids: list[str] = []
    for k, row in enumerate(rows[1:], start=1):
        lineno = offset + 1 + k
        if not any(c.strip() for c in row):
            continue
        res.n_lines += 1
        if len(row) < max(gi, ai) + 1:
            res.issues.append(Issue(f"row has {len(row)} fields, expected {len(header)}; skipped", str(p), lineno))
            continue
        gene = row[gi].strip()
        alteration = row[ai].strip()
        value = row[vi].strip() if vi is not None and vi < len(row) else ""
        if not gene or not alteration:
            res.issues.append(Issue("gene or alteration missing; row skipped", str(p), lineno))
            continue
        if "patient_id" in col and col["patient_id"] < len(row) and row[col["patient_id"]].strip():
            pid = row[col["patient_id"]].strip()
            if pid not in pids:
                pids.append(pid)
        b: dict[str, Any] = {"gene": gene.upper(), "alteration": alteration, "value": value, "line": lineno, "source": str(p)}
        present = not (_NEGATIVE.match(value) or _NEGATIVE.match(alteration))
        b["present"] = present
        g = gene.upper().replace(" ", "")
        if g in _PDL1:
            b["gene"] = "PD-L1"
            tps = _tps(value, alteration)
            b["tps"] = tps
            if tps is None:
                res.issues.append(Issue(f"PD-L1 value {value!r} has no percentage; not interpreted", str(p), lineno))
            else:
                tier = next((e for e in kb.pdl1 if "tps_min" in e and e["tps_min"] <= tps <= e["tps_max"]), None)
                b["tier"] = tier["tier"] if tier else None
                b["source_kb"] = tier["source"] if tier else None
            b.update({"actionable": False, "evidence_level": None, "drugs": [], "kb_id": None})
            res.biomarkers.append(b)
            continue
        if g in _OTHER_MARKERS:
            b.update({"actionable": False, "evidence_level": None, "drugs": [], "kb_id": None, "note": "not interpreted"})
            res.biomarkers.append(b)
            continue
        if not kb.is_known_gene(g):
            res.issues.append(Issue(f"unknown gene {gene!r} (not in the knowledge base); row kept, not interpreted", str(p), lineno))
            b.update({"actionable": False, "evidence_level": None, "drugs": [], "kb_id": None})
            res.biomarkers.append(b)
            continue
        alt_text = f"{alteration} {value}"
        vclass = None
        exon = None
        if _FUSION_RE.search(alt_text):
            vclass = "fusion"
        elif re.search(r"amplif|\bamp\b|copy[- ]number gain", alt_text, re.I):
            vclass = "amplification"
        elif re.search(r"skip", alt_text, re.I):
            vclass = "exon_skipping"
        m = re.search(r"exon\s*(\d+)", alt_text, re.I)
        if m:
            exon = int(m.group(1))
        prot = None
        m = re.search(r"\b(p\.)?([A-Z][a-z]{0,2}\d+[A-Z][a-z]{0,2}|[A-Z]\d+_[A-Z]\d+(del|ins|dup)\w*|[A-Z]\d+(del|fs)\w*)\b", alteration)
        if m:
            prot = one_letter_protein(m.group(0))
        b["protein_change"] = prot
        b["variant_class"] = vclass or variant_class_from_protein(prot)
        b["exon"] = exon
        b["origin"] = "germline" if g in kb.pgx else "somatic"
        if g in kb.pgx:
            hit = kb.match_pgx(g, hgvs_c=alteration, rsids=re.findall(r"rs\d+", alt_text))
            if hit is None:
                for allele in kb.pgx[g].get("alleles", []):
                    if allele["name"].lower() in alteration.lower():
                        hit = (g, allele)
                        break
            if hit is not None and present:
                copies = len(re.findall(re.escape(hit[1]["name"]), alt_text))
                hom = bool(re.search(r"homozyg", alt_text, re.I)) or copies >= 2
                b["pgx"] = {"gene": g, "allele": hit[1]["name"], "activity": hit[1]["activity"], "rsid": hit[1].get("rsid")}
                b["zygosity"] = "homozygous" if hom else "heterozygous"
            b.update({"actionable": False, "evidence_level": None, "drugs": [], "kb_id": None})
            res.biomarkers.append(b)
            continue
        ann = annotate_alteration(kb, g, prot, variant_class=b["variant_class"], exon=exon, text=alteration)
        if not present:
            ann.update({"actionable": False, "evidence_level": None, "drugs": []})
        b.update(ann)
        if not ann["kb_id"] and present:
            res.issues.append(Issue(f"{gene} {alteration!r} is not in the knowledge base; kept, not interpreted", str(p), lineno))
        res.biomarkers.append(b)
    if pids:
        res.patient = PatientInfo(patient_id=pids[0])
        res.patient_evidence = "patient_id column"
    if not res.biomarkers:
        raise InputError(f"no usable biomarker row among {res.n_lines}", where=str(p))
    return res
