"""CKD-EPI 2021 against the worked examples of clinical-facts 8.1/8.3."""

from __future__ import annotations

from datetime import date

import pytest

from inference.clinical.egfr import ckd_epi_2021, egfr_from_labs, kdigo_category


@pytest.mark.parametrize(
    ("scr", "age", "sex", "expected"),
    [(1.2, 55, "M", 71.4), (1.3, 70, "M", 59.1)],
)
def test_worked_examples(scr, age, sex, expected):
    assert round(ckd_epi_2021(scr, age, sex), 1) == expected


def test_female_factor_and_low_creatinine_branch():
    # Scr below kappa uses alpha; at Scr == kappa both branches give 142 * 0.9938^age (* 1.012 F)
    assert ckd_epi_2021(0.7, 40, "F") == pytest.approx(142 * 0.9938**40 * 1.012)
    assert ckd_epi_2021(0.9, 40, "M") == pytest.approx(142 * 0.9938**40)
    assert ckd_epi_2021(0.5, 40, "F") > ckd_epi_2021(0.7, 40, "F")


@pytest.mark.parametrize(("scr", "age", "sex"), [(0, 50, "M"), (1.0, -1, "M"), (1.0, 50, "O")])
def test_invalid_inputs_raise(scr, age, sex):
    with pytest.raises(ValueError):
        ckd_epi_2021(scr, age, sex)


def test_kdigo_bands():
    assert [kdigo_category(x) for x in (95, 71.4, 59.1, 40, 20, 10)] == ["G1", "G2", "G3a", "G3b", "G4", "G5"]


def _row(value, day, unit="mg/dL", status="ok"):
    return {"analyte": "creatinine", "name": "Creatinine", "value": value, "unit": unit, "date": day,
            "unit_status": status, "source": "t.csv", "comparator": None}  # fmt: skip


def test_egfr_from_latest_creatinine_with_age_at_that_date():
    labs = [_row(0.8, "2020-01-01"), _row(1.3, "2026-02-01")]
    d = egfr_from_labs(labs, birth_date=date(1955, 6, 1), age_years=None, sex="M")
    assert d["egfr_ckd_epi_2021"] == round(ckd_epi_2021(1.3, 70, "M"), 1)
    assert "1.3 mg/dL on 2026-02-01" in d["egfr_source"]


def test_egfr_reason_facts_say_why():
    labs = [_row(1.0, "2026-01-01")]
    assert "sex" in egfr_from_labs(labs, birth_date=None, age_years=60, sex=None)["egfr_reason"]
    assert "age" in egfr_from_labs(labs, birth_date=None, age_years=None, sex="F")["egfr_reason"]
    bad = [_row(1.0, "2026-01-01", unit="furlongs", status="unit not understood")]
    assert egfr_from_labs(bad, birth_date=None, age_years=60, sex="F")["egfr_ckd_epi_2021"] is None
