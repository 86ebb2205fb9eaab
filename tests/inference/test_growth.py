"""Growth against a prior: registration recovers a known motion, nodules are matched,
and volume change / VDT / new / resolved come out as built into the phantoms."""

from __future__ import annotations

import math

import numpy as np
import pytest

from inference.pipeline.growth import compare_with_prior, match_nodules, register_rigid
from inference.types import Volume

SHAPE = (40, 96, 96)
SPACING = (2.0, 1.5, 1.5)  # z, y, x mm
ORIGIN = (-71.25, -71.25, -39.0)  # LPS of voxel (0,0,0)
C0 = np.array([0.0, 0.0, 0.0])
T_PRIOR = np.array([4.0, -3.0, 2.5])  # mm: patient shifted in the prior scanner
ANG = (math.radians(2.0), 0.0, math.radians(3.0))  # about x and z


def _rot(ax: float, ay: float, az: float) -> np.ndarray:
    cx, sx, cy, sy, cz, sz = math.cos(ax), math.sin(ax), math.cos(ay), math.sin(ay), math.cos(az), math.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


R = _rot(*ANG)


def _grid_points() -> np.ndarray:
    k, j, i = np.meshgrid(*[np.arange(n) for n in SHAPE], indexing="ij")
    return np.stack([ORIGIN[0] + i * SPACING[2], ORIGIN[1] + j * SPACING[1], ORIGIN[2] + k * SPACING[0]], -1)


def _phantom(anat: np.ndarray, nodules: list[tuple[int, tuple[float, float, float], float]], seed: int):
    """Analytic chest in anatomical coordinates: body, two lungs, vessels, spine, nodules."""
    x, y, z = anat[..., 0], anat[..., 1], anat[..., 2]
    hu = np.full(x.shape, -1000.0)
    hu[(x / 66) ** 2 + (y / 52) ** 2 <= 1] = 30.0
    for cx in (-30.0, 30.0):
        hu[((x - cx) / 24) ** 2 + (y / 36) ** 2 + (z / 36) ** 2 <= 1] = -850.0
    hu[(x**2 + (y - 40) ** 2) <= 100] = 400.0
    rng = np.random.default_rng(0)  # the same vessels in both scans
    for _ in range(60):
        c = rng.uniform([-50, -30, -30], [50, 30, 30])
        r = rng.uniform(1.5, 3.0)
        hu[np.sum((anat - c) ** 2, -1) <= r * r] = 40.0
    labels = np.zeros(x.shape, np.int16)
    for nid, c, r in nodules:
        m = np.sum((anat - np.asarray(c)) ** 2, -1) <= r * r
        hu[m] = 20.0
        labels[m] = nid
    hu += np.random.default_rng(seed).normal(0, 15, hu.shape)
    return hu.astype(np.float32), labels


def _vol(arr: np.ndarray) -> Volume:
    return Volume(array=arr, spacing=SPACING, origin=ORIGIN, direction=np.eye(3))


def _pair():
    pts = _grid_points()
    cur_nod = [(1, (-30.0, -5.0, 5.0), 5.0), (2, (32.0, 10.0, -10.0), 4.0), (3, (28.0, -15.0, 15.0), 3.0)]
    pri_nod = [(11, (-30.0, -5.0, 5.0), 3.5), (12, (32.0, 10.0, -10.0), 4.0), (13, (-25.0, 15.0, -20.0), 3.5)]
    cur_hu, cur_lab = _phantom(pts, cur_nod, seed=1)
    anat_prior = (pts - C0) @ R.T + C0 + T_PRIOR  # prior scanner point q -> anatomy R(q-c0)+c0+t
    pri_hu, pri_lab = _phantom(anat_prior, pri_nod, seed=2)
    return _vol(cur_hu), cur_lab, _vol(pri_hu), pri_lab


@pytest.fixture(scope="module")
def pair():
    return _pair()


@pytest.mark.slow
def test_registration_recovers_shift_and_rotation(pair) -> None:
    cur, _, pri, _ = pair
    tx, info = register_rigid(cur, pri)
    # true map current point p -> prior point q: q = R^T (p - c0 - t) + c0
    for p in [(-30.0, -5.0, 5.0), (32.0, 10.0, -10.0), (0.0, 0.0, 0.0), (20.0, -25.0, 25.0)]:
        q_true = R.T @ (np.asarray(p) - C0 - T_PRIOR) + C0
        assert np.linalg.norm(np.asarray(tx.TransformPoint(p)) - q_true) < 1.5, (p, info)


@pytest.mark.slow
def test_compare_with_prior_grown_stable_new_resolved(pair) -> None:
    cur, cur_lab, pri, pri_lab = pair
    findings = {"nodules": [{"id": 1, "review": "pending"}, {"id": 2, "review": "accepted"},
                            {"id": 3, "review": "pending"}]}
    prior_findings = {"nodules": [{"id": 11}, {"id": 12}, {"id": 13}], "study": {"study_instance_uid": "1.2.3"}}
    warnings = compare_with_prior(cur, cur_lab, findings, pri, pri_lab, prior_findings,
                                  current_date="2026-06-01", prior_date="2025-06-01")
    assert warnings == []
    g1, g2, g3 = (n["growth"] for n in findings["nodules"])
    assert g1["prior_id"] == 11 and g1["status"] == "grown" and g1["days"] == 365
    true_pct = 100 * ((5.0 / 3.5) ** 3 - 1)
    assert g1["volume_change_percent"] == pytest.approx(true_pct, rel=0.25)
    true_vdt = 365 * math.log(2) / math.log((5.0 / 3.5) ** 3)
    assert g1["volume_doubling_time_days"] == pytest.approx(true_vdt, rel=0.2)
    assert g1["diameter_change_mm"] == pytest.approx(3.0, abs=1.0)
    assert g1["vdt_interpretation"].startswith("< 400 days")
    assert g2["prior_id"] == 12 and g2["status"] == "stable"
    assert abs(g2["volume_change_percent"]) < 25
    assert g3["status"] == "new" and g3["prior_id"] is None
    (res,) = findings["resolved_nodules"]
    assert res["prior_id"] == 13
    # mapped into current space, the resolved nodule lands where it was in the anatomy
    assert np.linalg.norm(np.asarray(res["center_lps_mm_in_current"]) - [-25.0, 15.0, -20.0]) < 2.0
    assert findings["prior"]["matched"] == 2


def test_rejected_nodules_and_missing_dates(pair) -> None:
    cur, cur_lab, pri, pri_lab = pair
    findings = {"nodules": [{"id": 1, "review": "rejected"}, {"id": 2}]}
    warnings = compare_with_prior(cur, cur_lab, findings, pri, pri_lab, {"nodules": [{"id": 12}]},
                                  current_date=None, prior_date="2025-06-01")
    assert "growth" not in findings["nodules"][0]
    g = findings["nodules"][1]["growth"]
    assert g["prior_id"] == 12 and g["volume_doubling_time_days"] is None
    assert any("date missing" in w for w in warnings)


def test_hungarian_matching_respects_gate() -> None:
    cur = np.array([[0.0, 0, 0], [10.0, 0, 0], [100.0, 0, 0]])
    pri = np.array([[9.0, 0, 0], [1.0, 0, 0]])
    pairs = match_nodules(cur, pri, gate_mm=5.0)
    assert sorted((a, b) for a, b, _ in pairs) == [(0, 1), (1, 0)]
    assert match_nodules(cur[2:], pri, gate_mm=5.0) == []


def test_tiny_volume_change_reports_no_vdt(pair) -> None:
    cur, cur_lab, pri, pri_lab = pair
    # same nodule, volume recorded 5 % larger: no decades-long "VDT"
    findings = {"nodules": [{"id": 2, "volume_mm3": 105.0, "mean_diameter_mm": 8.0}]}
    prior = {"nodules": [{"id": 12, "volume_mm3": 100.0, "mean_diameter_mm": 8.0}]}
    compare_with_prior(cur, cur_lab, findings, pri, pri_lab, prior, current_date="2026-06-01",
                       prior_date="2025-06-01")
    g = findings["nodules"][0]["growth"]
    assert g["volume_change_percent"] == pytest.approx(5.0)
    assert g["volume_doubling_time_days"] is None and "25 %" in g["vdt_note"]
    assert g["status"] == "stable"


@pytest.mark.slow
def test_prior_in_other_coordinates_and_field_of_view(pair) -> None:
    """Another scanner: the origin moved by 120 mm and the prior covers fewer slices."""
    cur, cur_lab, pri, pri_lab = pair
    k0 = 6
    shifted = Volume(array=pri.array[k0:], spacing=SPACING,
                     origin=(ORIGIN[0] + 15.0, ORIGIN[1] - 10.0, ORIGIN[2] + k0 * SPACING[0] + 120.0),
                     direction=np.eye(3))
    findings = {"nodules": [{"id": 1}, {"id": 2}, {"id": 3}]}
    prior_findings = {"nodules": [{"id": 11}, {"id": 12}, {"id": 13}]}
    warnings = compare_with_prior(cur, cur_lab, findings, shifted, pri_lab[k0:], prior_findings,
                                  current_date="2026-06-01", prior_date="2025-06-01")
    assert warnings == []
    assert [n["growth"]["prior_id"] for n in findings["nodules"]] == [11, 12, None]
    assert [r["prior_id"] for r in findings["resolved_nodules"]] == [13]
    assert all(n["growth"]["match_distance_mm"] < 2.0 for n in findings["nodules"][:2])


def test_volume_doubling_without_diameter_growth_counts_as_growth(pair) -> None:
    cur, cur_lab, pri, pri_lab = pair
    findings = {"nodules": [{"id": 2, "volume_mm3": 250.0, "mean_diameter_mm": 6.5}]}
    prior = {"nodules": [{"id": 12, "volume_mm3": 100.0, "mean_diameter_mm": 5.5}]}
    compare_with_prior(cur, cur_lab, findings, pri, pri_lab, prior, current_date="2026-06-01",
                       prior_date="2025-06-01")
    g = findings["nodules"][0]["growth"]
    assert g["status"] == "grown" and "volume +150 %" in g["growth_criterion"]
    assert g["volume_doubling_time_days"] == pytest.approx(365 * math.log(2) / math.log(2.5), rel=1e-3)


@pytest.mark.slow
def test_a_prior_nodule_missed_on_the_current_ct_is_not_called_resolved(pair) -> None:
    """Nodule 2 is still in the current CT but the detector 'missed' it; nodule 13 really vanished."""
    cur, cur_lab, pri, pri_lab = pair
    missed = np.where(cur_lab == 2, 0, cur_lab)
    findings = {"nodules": [{"id": 1}, {"id": 3}]}
    prior_findings = {"nodules": [{"id": 11}, {"id": 12}, {"id": 13}]}
    compare_with_prior(cur, missed, findings, pri, pri_lab, prior_findings,
                       current_date="2026-06-01", prior_date="2025-06-01")
    status = {r["prior_id"]: r["status"] for r in findings["resolved_nodules"]}
    assert status == {12: "not-confirmed", 13: "resolved"}
    (kept,) = [r for r in findings["resolved_nodules"] if r["prior_id"] == 12]
    assert "check" in kept["note"] and kept["dense_tissue_at_prior_site_mm3"] >= 0.5 * kept["prior_volume_mm3"]
    assert findings["prior"]["resolved"] == 1 and findings["prior"]["not_confirmed"] == 1
