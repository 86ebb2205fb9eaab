"""Synthetic cohort: reproducible, disjoint seeds, the documented generative structure,
declared missingness, and image patches that show the nodule."""

from __future__ import annotations

import numpy as np
import pytest

from inference.models.risk_eval import auc, brock_for_patient
from inference.synth.cohort import PATCH_SIZE, make_cohort


@pytest.fixture(scope="module")
def cohort():
    return make_cohort(11, 1500)


def test_same_seed_same_patients_other_seed_differs() -> None:
    a, b, c = make_cohort(5, 30), make_cohort(5, 30), make_cohort(6, 30)
    assert [p.findings for p in a] == [p.findings for p in b]
    assert [p.malignant for p in a] == [p.malignant for p in b]
    assert [p.findings for p in a] != [p.findings for p in c]
    # a prefix of a larger cohort is the smaller cohort (the metadata's sample check relies on it)
    assert [p.findings for p in make_cohort(5, 10)] == [p.findings for p in a[:10]]


def test_generative_structure(cohort) -> None:
    y = np.array([p.malignant for p in cohort])
    assert 0.10 < y.mean() < 0.30
    size = np.array([p.findings["nodules"][0]["long_axis_mm"] for p in cohort])
    spic = np.array([p.findings["nodules"][0]["spiculated"] for p in cohort])
    assert np.median(size[y]) > 1.6 * np.median(size[~y])
    assert spic[y].mean() > 3 * spic[~y].mean()
    # the dominant nodule is first and the largest
    for p in cohort[:200]:
        la = [n["long_axis_mm"] for n in p.findings["nodules"]]
        assert la[0] == max(la)


def test_brock_informative_but_not_the_whole_truth(cohort) -> None:
    y, pb = [], []
    for p in cohort:
        b = brock_for_patient(p)
        if b is not None:
            y.append(p.malignant)
            pb.append(b)
    a = auc(y, pb)
    assert 0.75 < a < 0.97, a


def test_declared_missingness(cohort) -> None:
    n = len(cohort)
    fam = sum(p.facts.family_history_lung_cancer is None for p in cohort) / n
    gen = sum(p.genomics is None for p in cohort) / n
    img = sum(p.patch_params is None for p in cohort) / n
    age = sum(p.facts.age_years is None for p in cohort) / n
    assert fam == pytest.approx(0.25, abs=0.04)
    assert gen == pytest.approx(0.5, abs=0.05)
    assert img == pytest.approx(0.05, abs=0.025)
    assert age == pytest.approx(0.03, abs=0.02)


def test_patch_shows_the_nodule() -> None:
    pts = [p for p in make_cohort(12, 40) if p.patch_params is not None]
    solid = next(p for p in pts if p.findings["nodules"][0]["type"] == "solid"
                 and not p.findings["nodules"][0]["juxtapleural"])
    patch = solid.patch
    assert patch.shape == (PATCH_SIZE,) * 3 and patch.dtype == np.int16
    c = PATCH_SIZE // 2
    assert patch[c - 1:c + 1, c - 1:c + 1, c - 1:c + 1].mean() > -200  # soft tissue at the centre
    assert np.median(patch) < -700  # lung around it
    assert np.array_equal(patch, solid.patch)  # rendering is deterministic
