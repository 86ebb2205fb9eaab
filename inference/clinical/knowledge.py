"""The versioned knowledge base in ``resources/knowledge/*.yaml``.

Why data and not code: drug approvals and OncoKB levels change every few
months; keeping them in dated, cited YAML lets a pharmacist review and update
them without touching Python, and lets a test assert that every entry names a
source and a date. Facts the fact sheet marks UNVERIFIED carry
``verified: false`` and a ``note`` so the UI can say so.

This module only *looks up*: it matches a normalised alteration (gene, one-letter
protein change, variant class, exon) or genomic coordinates against the entries.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

import yaml

from inference.paths import resources_dir

__all__ = [
    "KnowledgeBase",
    "KbEntry",
    "KbMatch",
    "LabAnalyte",
    "load_kb",
    "kb_dir",
    "LEVEL_ORDER",
    "best_level",
    "one_letter_protein",
    "variant_class_from_protein",
    "protein_position",
]

#: Sensitivity levels, strongest first; resistance levels are handled apart.
LEVEL_ORDER: tuple[str, ...] = ("1", "2", "3A", "3B", "4")
RESISTANCE_LEVELS: tuple[str, ...] = ("R1", "R2")

_AA3 = {
    "Ala": "A", "Arg": "R", "Asn": "N", "Asp": "D", "Cys": "C", "Gln": "Q", "Glu": "E",
    "Gly": "G", "His": "H", "Ile": "I", "Leu": "L", "Lys": "K", "Met": "M", "Phe": "F",
    "Pro": "P", "Ser": "S", "Thr": "T", "Trp": "W", "Tyr": "Y", "Val": "V", "Ter": "*",
    "Sec": "U", "Xaa": "X",
}  # fmt: skip
_AA3_RE = re.compile("|".join(_AA3))


def kb_dir() -> Path:
    """Folder of the bundled knowledge-base YAML files."""
    return resources_dir() / "knowledge"


def one_letter_protein(p: str | None) -> str | None:
    """Normalise an HGVS protein change to one-letter form with the ``p.`` prefix.

    Accepts ``p.Leu858Arg``, ``p.(Leu858Arg)``, ``L858R``, ``ENSP...:p.Leu858Arg``
    (VEP's HGVSp) and ``p.L858R``. Returns ``None`` for empty input, ``p.=`` or
    ``p.?``, because those carry no alteration to match.
    """
    if not p:
        return None
    s = p.strip()
    if ":" in s:
        s = s.split(":", 1)[1]
    s = s.replace("%3D", "=")
    if s.startswith("p."):
        s = s[2:]
    s = s.strip("()")
    if not s or s in {"=", "?", "0"}:
        return None
    s = _AA3_RE.sub(lambda m: _AA3[m.group(0)], s)
    return "p." + s


def protein_position(p1: str | None) -> int | None:
    """First protein position in a one-letter change (``p.E746_A750del`` → 746)."""
    if not p1:
        return None
    m = re.match(r"p\.[A-Z*]?(\d+)", p1)
    return int(m.group(1)) if m else None


def variant_class_from_protein(p1: str | None, consequence: str = "") -> str | None:
    """Variant class from a one-letter protein change and/or a VEP/SnpEff/MAF consequence.

    Why both: unannotated MAF rows have only ``HGVSp_Short`` while some VCFs only
    have a consequence term (splice variants have no protein change at all).
    """
    c = consequence.lower()
    if "fusion" in c:
        return "fusion"
    if "amplification" in c or c in {"amp", "gain"}:
        return "amplification"
    if "splice" in c and not p1:
        return "splice"
    if p1:
        body = p1[2:]
        if "fs" in body:
            return "truncating"
        if "delins" in body:
            m = re.match(r"[A-Z](\d+)(?:_[A-Z](\d+))?delins([A-Z*]+)$", body)
            if m:
                n_del = int(m.group(2) or m.group(1)) - int(m.group(1)) + 1
                n_ins = len(m.group(3))
                return "inframe_insertion" if n_ins > n_del else "inframe_deletion"
            return "inframe_deletion"
        if body.endswith("dup") or "ins" in body:
            return "inframe_insertion"
        if "del" in body:
            return "inframe_deletion"
        if body.endswith("*") or "Ter" in body:
            return "truncating"
        if re.match(r"^[A-Z]\d+[A-Z]$", body):
            return "missense"
        if "splice" in c:
            return "splice"
    for key, cls in (
        ("frameshift", "truncating"),
        ("stop_gained", "truncating"),
        ("nonsense", "truncating"),
        ("inframe_deletion", "inframe_deletion"),
        ("in_frame_del", "inframe_deletion"),
        ("inframe_insertion", "inframe_insertion"),
        ("in_frame_ins", "inframe_insertion"),
        ("missense", "missense"),
        ("splice", "splice"),
    ):
        if key in c:
            return cls
    return None


def best_level(levels: dict[str, list[str]]) -> str | None:
    """Strongest sensitivity level present, else the strongest resistance level."""
    for lv in LEVEL_ORDER + RESISTANCE_LEVELS:
        if levels.get(lv):
            return lv
    return None


@dataclass(frozen=True)
class KbEntry:
    """One cited knowledge-base entry (an alteration with its drugs by level)."""

    id: str
    gene: str
    alteration: str
    levels: dict[str, list[str]]
    source: str
    date: str
    verified: bool = True
    note: str = ""
    match: dict[str, Any] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    hotspots: tuple[dict[str, Any], ...] = ()
    first_line: tuple[str, ...] = ()

    @property
    def level(self) -> str | None:
        return best_level(self.levels)

    @property
    def sensitive_drugs(self) -> list[str]:
        """Drugs at sensitivity levels, strongest level first."""
        out: list[str] = []
        for lv in LEVEL_ORDER:
            out += [d for d in self.levels.get(lv, []) if d not in out]
        return out

    @property
    def resistant_drugs(self) -> list[str]:
        out: list[str] = []
        for lv in RESISTANCE_LEVELS:
            out += [d for d in self.levels.get(lv, []) if d not in out]
        return out


@dataclass(frozen=True)
class KbMatch:
    """Result of a lookup: the entry and how it matched (for the rationale)."""

    entry: KbEntry
    how: str


@dataclass(frozen=True)
class LabAnalyte:
    """One lab analyte: codes, names, canonical unit and a typical range."""

    id: str
    name: str
    loinc: tuple[str, ...]
    aliases: tuple[str, ...]
    unit: str
    ref_low: float | None
    ref_high: float | None
    molar_mass_g_mol: float | None
    source: str
    date: str
    verified: bool = True
    note: str = ""


class KnowledgeBase:
    """All KB files, loaded once. Look-ups never raise on unknown genes: an
    unknown gene simply has no entry (the caller reports it)."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder or kb_dir()
        self.files: dict[str, dict[str, Any]] = {}
        for p in sorted(self.folder.glob("*.yaml")):
            self.files[p.stem] = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        bio = self.files.get("biomarkers_nsclc", {})
        self.version = str(bio.get("version", ""))
        self.date = str(bio.get("date", ""))
        self.entries: list[KbEntry] = [
            KbEntry(
                id=e["id"],
                gene=e["gene"],
                alteration=e.get("alteration", ""),
                levels={str(k): list(v) for k, v in (e.get("levels") or {}).items()},
                source=str(e.get("source", "")),
                date=str(e.get("date", "")),
                verified=bool(e.get("verified", True)),
                note=str(e.get("note", "")),
                match=dict(e.get("match") or {}),
                aliases=tuple(a.lower() for a in e.get("aliases", [])),
                hotspots=tuple(e.get("hotspots", [])),
                first_line=tuple(e.get("first_line", [])),
            )
            for e in bio.get("entries", [])
        ]
        self.genes: set[str] = {e.gene for e in self.entries}
        self.pgx: dict[str, dict[str, Any]] = {
            g["gene"]: g for g in self.files.get("pharmacogenomics", {}).get("genes", [])
        }
        self.pdl1: list[dict[str, Any]] = list(self.files.get("pdl1", {}).get("entries", []))
        self.analytes: list[LabAnalyte] = [
            LabAnalyte(
                id=a["id"],
                name=a["name"],
                loinc=tuple(a.get("loinc", [])),
                aliases=tuple(x.lower() for x in a.get("aliases", [])),
                unit=a["unit"],
                ref_low=a.get("ref_low"),
                ref_high=a.get("ref_high"),
                molar_mass_g_mol=a.get("molar_mass_g_mol"),
                source=str(a.get("source", "")),
                date=str(a.get("date", "")),
                verified=bool(a.get("verified", True)),
                note=str(a.get("note", "")),
            )
            for a in self.files.get("labs", {}).get("analytes", [])
        ]
        self.rules: dict[str, Any] = self.files.get("suggestion_rules", {})
        # indexes: a whole exome is tens of thousands of look-ups
        self._by_gene: dict[str, list[KbEntry]] = {}
        for e in self.entries:
            self._by_gene.setdefault(e.gene, []).append(e)
        self._hot: dict[tuple[str, str, int, str, str], KbEntry] = {}
        for e in self.entries:
            for h in e.hotspots:
                self._hot[(h["build"], _norm_chrom(str(h["chrom"])), int(h["pos"]), h["ref"], h["alt"])] = e
        self._pgx_pos: dict[tuple[str, str, int], list[tuple[str, dict[str, Any]]]] = {}
        self._pgx_rs: dict[str, tuple[str, dict[str, Any]]] = {}
        self._pgx_c: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}
        for g, info in self.pgx.items():
            for allele in info.get("alleles", []):
                if allele.get("rsid"):
                    self._pgx_rs.setdefault(allele["rsid"].lower(), (g, allele))
                if allele.get("hgvs_c"):
                    self._pgx_c[(g, _norm_c(allele["hgvs_c"]))] = (g, allele)
                for h in allele.get("hotspots", []):
                    key = (h["build"], _norm_chrom(str(h["chrom"])), int(h["pos"]))
                    self._pgx_pos.setdefault(key, []).append((g, {**allele, "_ref": h["ref"], "_alt": h["alt"]}))

    # ------------------------------------------------------------------ look-ups
    def all_cited_items(self) -> Iterable[tuple[str, dict[str, Any]]]:
        """Every citable item of every file as ``(file:id, raw dict)``: the test
        that each has a source and a date walks this."""
        for stem, data in self.files.items():
            for key in ("entries", "genes", "analytes", "rules"):
                for item in data.get(key, []) or []:
                    yield f"{stem}:{item.get('id')}", item

    def is_known_gene(self, gene: str) -> bool:
        return gene.upper() in self.genes or gene.upper() in self.pgx

    def match_alteration(
        self,
        gene: str,
        protein_change: str | None = None,
        *,
        variant_class: str | None = None,
        exon: int | None = None,
        intron: int | None = None,
        text: str = "",
    ) -> list[KbMatch]:
        """Entries that match one alteration.

        ``protein_change`` is any HGVS p. form; ``variant_class`` as from
        :func:`variant_class_from_protein`; ``text`` is free biomarker text
        (``"exon 19 deletion"``, ``"fusion"``) matched against aliases.
        """
        g = gene.upper()
        p1 = one_letter_protein(protein_change)
        body = p1[2:] if p1 else ""
        pos = protein_position(p1)
        t = text.lower().strip()
        out: list[KbMatch] = []
        for e in self._by_gene.get(g, []):
            m = e.match
            how = ""
            if body and body in (m.get("protein") or []):
                how = f"protein {p1}"
            elif body and m.get("protein_regex") and re.search(m["protein_regex"], body):
                how = f"protein {p1}"
            elif t and any(a and a in t for a in e.aliases):
                how = f"'{text}'"
            elif variant_class and variant_class in (m.get("classes") or []):
                rng = m.get("codon_range")
                ex = m.get("exon")
                if rng and (pos is None or not rng[0] <= pos <= rng[1]):
                    continue
                if ex is not None:
                    in_exon = exon is not None and int(exon) == int(ex)
                    in_intron = intron is not None and int(intron) in (m.get("introns") or [])
                    # a biomarker row "exon 14 skipping" states the event itself
                    stated = variant_class == "exon_skipping" and exon is None and intron is None
                    if not (in_exon or in_intron or stated):
                        continue
                where = f" exon {exon}" if exon else (f" intron {intron}" if intron else "")
                how = f"{variant_class}" + (f" at codon {pos}" if pos else "") + where
            if how:
                out.append(KbMatch(e, how))
        return out

    def match_hotspot(self, build: str | None, chrom: str, pos: int, ref: str, alt: str) -> KbEntry | None:
        """Somatic hotspot at these coordinates in this build (for unannotated VCFs)."""
        if not build:
            return None
        return self._hot.get((build, _norm_chrom(chrom), int(pos), ref, alt))

    def hotspot_protein(self, entry: KbEntry) -> str | None:
        prot = entry.match.get("protein") or []
        return "p." + prot[0] if prot else None

    def match_pgx(
        self,
        gene: str | None,
        *,
        hgvs_c: str | None = None,
        rsids: Iterable[str] = (),
        build: str | None = None,
        chrom: str | None = None,
        pos: int | None = None,
        ref: str | None = None,
        alt: str | None = None,
    ) -> tuple[str, dict[str, Any]] | None:
        """``(gene, allele)`` for a known pharmacogenomic allele, matched by cDNA
        (within the gene), rsID or coordinates in the detected build, whichever
        the file provides."""
        if gene and hgvs_c:
            hit = self._pgx_c.get((gene.upper(), _norm_c(hgvs_c)))
            if hit:
                return hit
        for r in rsids:
            hit = self._pgx_rs.get(r.lower())
            if hit:
                return hit
        if build and chrom and pos:
            for g, allele in self._pgx_pos.get((build, _norm_chrom(chrom), int(pos)), []):
                if (ref is None or allele["_ref"] == ref) and (alt is None or allele["_alt"] == alt):
                    return g, {k: v for k, v in allele.items() if not k.startswith("_")}
        return None

    def pgx_phenotype(self, gene: str, activity_score: float) -> dict[str, Any] | None:
        for ph in self.pgx.get(gene, {}).get("phenotypes", []):
            if ph["min"] - 1e-9 <= activity_score <= ph["max"] + 1e-9:
                return ph
        return None

    def analyte(self, *, loinc: str | None = None, name: str | None = None) -> LabAnalyte | None:
        """Analyte by LOINC code first (unambiguous), else by a common name."""
        if loinc:
            for a in self.analytes:
                if loinc.strip() in a.loinc:
                    return a
        if name:
            n = name.strip().lower()
            for a in self.analytes:
                if n == a.name.lower() or n in a.aliases:
                    return a
            for a in self.analytes:  # "Creatinine [Mass/volume] in Serum" etc.
                if any(re.search(rf"\b{re.escape(al)}\b", n) for al in a.aliases if len(al) > 3):
                    return a
        return None


def _norm_chrom(c: str) -> str:
    c = c.strip()
    if c.lower().startswith("chr"):
        c = c[3:]
    return {"MT": "M"}.get(c.upper(), c.upper())


def _norm_c(c: str) -> str:
    c = c.strip()
    if ":" in c:
        c = c.split(":", 1)[1]
    return c.replace(" ", "")


@lru_cache(maxsize=4)
def _load(folder: str) -> KnowledgeBase:
    return KnowledgeBase(Path(folder))


def load_kb(folder: Path | None = None) -> KnowledgeBase:
    """The knowledge base (cached per folder; the files are read-only resources)."""
    return _load(str(folder or kb_dir()))
