"""The knowledge base: every entry cited and dated; look-ups by protein form,
free text and class; UNVERIFIED facts flagged."""

from __future__ import annotations

from datetime import date

import pytest

from inference.clinical.knowledge import load_kb, one_letter_protein, variant_class_from_protein


def test_every_kb_entry_has_a_source_and_a_date():
    kb = load_kb()
    items = list(kb.all_cited_items())
    assert len(items) >= 40
    for key, item in items:
        src = item.get("source")
        assert src and str(src).strip(), f"{key} has no source"
        if src == "from_kb":  # therapy rules cite the matched biomarker entry
            continue
        assert item.get("date"), f"{key} has no date"
        date.fromisoformat(str(item["date"]))


def test_files_are_versioned_and_dated():
    kb = load_kb()
    for stem, data in kb.files.items():
        assert data.get("version"), stem
        date.fromisoformat(str(data["date"]))


def test_unverified_entries_carry_a_note():
    kb = load_kb()
    for key, item in kb.all_cited_items():
        if item.get("verified") is False:
            assert item.get("note"), f"{key} is unverified without a note"
    ntrk = next(e for e in kb.entries if e.id == "NTRK1_FUSION")
    assert not ntrk.verified and "UNVERIFIED" in ntrk.note


def test_required_nsclc_alterations_present():
    kb = load_kb()
    ids = {e.id for e in kb.entries}
    for need in ["EGFR_EX19DEL", "EGFR_L858R", "EGFR_T790M", "EGFR_EX20INS", "EGFR_UNCOMMON", "ALK_FUSION",
                 "ROS1_FUSION", "RET_FUSION", "NTRK1_FUSION", "NTRK2_FUSION", "NTRK3_FUSION", "NRG1_FUSION",
                 "BRAF_V600E", "KRAS_G12C", "MET_EX14", "MET_AMP", "ERBB2_MUT"]:  # fmt: skip
        assert need in ids
    assert {"DPYD", "UGT1A1"} <= set(kb.pgx)
    assert {p["tier"] for p in kb.pdl1} >= {"high", "low", "negative"}


@pytest.mark.parametrize("form", ["p.Leu858Arg", "L858R", "ENSP00000275493.2:p.Leu858Arg", "p.(Leu858Arg)"])
def test_protein_forms_normalise(form):
    assert one_letter_protein(form) == "p.L858R"
    assert load_kb().match_alteration("EGFR", form)[0].entry.id == "EGFR_L858R"


def test_exon20_insertion_has_level1_and_r1():
    kb = load_kb()
    p = "p.A767_V769dup"
    assert variant_class_from_protein(p) == "inframe_insertion"
    m = kb.match_alteration("EGFR", p, variant_class="inframe_insertion")
    e = m[0].entry
    assert e.id == "EGFR_EX20INS" and e.level == "1" and "erlotinib" in e.levels["R1"]


def test_exon19_delins_is_a_deletion_and_outside_range_is_not_matched():
    kb = load_kb()
    assert variant_class_from_protein("p.L747_P753delinsS") == "inframe_deletion"
    assert kb.match_alteration("EGFR", "p.L747_P753delinsS", variant_class="inframe_deletion")[0].entry.id == "EGFR_EX19DEL"
    assert kb.match_alteration("EGFR", "p.E100_A104del", variant_class="inframe_deletion") == []


def test_unknown_gene_has_no_entry():
    kb = load_kb()
    assert kb.match_alteration("FOOBAR1", "p.V600E") == []
    assert not kb.is_known_gene("FOOBAR1")
