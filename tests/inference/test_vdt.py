"""Volume doubling time: fact-sheet §5 worked examples and the no-growth convention."""

from __future__ import annotations

import pytest

from inference.clinical.vdt import vdt_band, vdt_from_diameters, volume_doubling_time


def test_worked_examples_from_fact_sheet() -> None:
    assert vdt_from_diameters(5.0, 6.3, 365) == pytest.approx(365, abs=2)
    assert vdt_from_diameters(6.0, 7.0, 90) == pytest.approx(135, abs=1)


def test_doubling_in_volume_gives_the_interval() -> None:
    assert volume_doubling_time(100.0, 200.0, 250) == pytest.approx(250)
    assert volume_doubling_time(100.0, 400.0, 250) == pytest.approx(125)
    # 26 % diameter increase ~ one doubling
    assert vdt_from_diameters(10.0, 12.6, 300) == pytest.approx(300, rel=0.01)


@pytest.mark.parametrize("v2", [100.0, 80.0])
def test_no_growth_has_no_doubling_time(v2: float) -> None:
    assert volume_doubling_time(100.0, v2, 365) is None
    assert vdt_band(None) == "no growth"


@pytest.mark.parametrize("args", [(0, 10, 30), (10, -1, 30), (10, 20, 0)])
def test_invalid_inputs(args: tuple) -> None:
    with pytest.raises(ValueError):
        volume_doubling_time(*args)


def test_bands() -> None:
    assert vdt_band(200).startswith("< 400")
    assert vdt_band(500).startswith("400-600")
    assert vdt_band(800).startswith("> 600")
    assert "subsolid" in vdt_band(200, "part-solid")
