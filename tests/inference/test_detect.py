"""The learned stage of nodule detection: patches, features, the shipped classifier."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from inference.pipeline.detect import FEATURES, PATCH, PATCH_MM, candidate_features, candidate_patches


def _sphere_ct(spacing=(2.5, 0.7, 0.7), centre_mm=(60.0, 70.0, 75.0), r_mm=5.0):
    shape = (48, 200, 200)
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    d2 = ((z * spacing[0] - centre_mm[0]) ** 2 + (y * spacing[1] - centre_mm[1]) ** 2 + (x * spacing[2] - centre_mm[2]) ** 2)
    hu = np.full(shape, -850.0, np.float32)
    hu[d2 <= r_mm**2] = 40.0
    labels = (d2 <= r_mm**2).astype(np.uint16)
    return hu, labels, spacing


def test_patches_are_isotropic_and_centred_on_the_candidate_whatever_the_ct_spacing() -> None:
    hu, labels, sp = _sphere_ct()
    c = np.array(ndi.center_of_mass(labels > 0))
    p = candidate_patches(hu, labels, sp, c[None])
    assert p.shape == (1, 3, PATCH, PATCH, PATCH) and p.dtype == np.float32
    fine, coarse, mask = p[0]
    # HU scaled [-1000, 400] -> [0, 1]: nodule at the centre, lung at the edge
    mid = PATCH // 2
    assert fine[mid, mid, mid] == pytest.approx((40 + 1000) / 1400, abs=0.02)
    assert fine[0, 0, 0] == pytest.approx((-850 + 1000) / 1400, abs=0.02)
    # the mask channel is the candidate at 1.25 mm: a 10 mm sphere, centred, same size on every axis
    vol_mm3 = mask.sum() * PATCH_MM[0] ** 3
    assert vol_mm3 == pytest.approx(4 / 3 * np.pi * 5.0**3, rel=0.25)
    cm = np.array(ndi.center_of_mass(mask))
    assert np.allclose(cm, (PATCH - 1) / 2, atol=0.6)
    # each axis spans the candidate's own extent in mm (2.5 mm slices, 0.7 mm pixels)
    for ax in range(3):
        other = tuple(a for a in range(3) if a != ax)
        patch_mm = np.count_nonzero(mask.any(axis=other)) * PATCH_MM[0]
        ct_mm = np.count_nonzero(labels.any(axis=other)) * sp[ax]
        assert abs(patch_mm - ct_mm) <= PATCH_MM[0], (ax, patch_mm, ct_mm)
    # the coarse channel sees twice the field: the sphere is half as wide there
    core = coarse > (0.5 * (40 + 1000) + 0.5 * (-850 + 1000)) / 1400
    assert core.sum() == pytest.approx(mask.sum() / 8, rel=0.4)


def test_a_candidate_at_the_edge_of_the_ct_gets_air_outside_it() -> None:
    hu, labels, sp = _sphere_ct()
    p = candidate_patches(hu, labels, sp, np.array([[0.0, 0.0, 0.0]]))
    assert p[0, 0, 0, 0, 0] == 0.0  # outside the CT reads as air (-1000 HU)
    assert p[0, 2].sum() == 0  # the mask of candidate 1 is elsewhere


def _patches_by_map_coordinates(hu, labels, sp, centres):
    """The sampler the classifier was trained and calibrated with: trilinear ``map_coordinates`` at each point."""
    out = np.zeros((len(centres), 3, PATCH, PATCH, PATCH), np.float32)
    g = np.arange(PATCH) - (PATCH - 1) / 2.0
    for i, c in enumerate(centres):
        for ch, mm in enumerate(PATCH_MM):
            zz, yy, xx = np.meshgrid(*[c[k] + g * mm / sp[k] for k in range(3)], indexing="ij")
            v = ndi.map_coordinates(hu.astype(np.float32), [zz, yy, xx], order=1, mode="constant", cval=-1000.0)
            out[i, ch] = (np.clip(v, -1000.0, 400.0) + 1000.0) / 1400.0
            if ch == 0:
                out[i, 2] = ndi.map_coordinates((labels == i + 1).astype(np.float32), [zz, yy, xx], order=0,
                                                mode="constant", cval=0.0)
    return out


def test_patches_hold_the_values_the_classifier_was_calibrated_on_also_at_the_ct_edges() -> None:
    """The separable sampler gives the float32 values of point-wise trilinear sampling: a changed value
    would move the calibrated probabilities and the validated operating point."""
    rng = np.random.default_rng(7)
    sp = (2.5, 0.7, 0.7)
    hu = rng.normal(-600.0, 400.0, (30, 90, 90)).astype(np.int16).astype(np.float32)
    labels = (rng.random(hu.shape) > 0.6).astype(np.uint16) * rng.integers(1, 4, hu.shape).astype(np.uint16)
    # inside, at a corner, off the grid on one axis, at a half-voxel position
    centres = np.array([[15.2, 44.7, 40.1], [0.3, 1.2, 88.6], [29.0, 45.5, -3.0], [14.5, 44.5, 45.5]])
    got = candidate_patches(hu, labels, sp, centres)
    want = _patches_by_map_coordinates(hu, labels, sp, centres)
    assert np.abs(got - want).max() <= 1e-6
    assert got[:, 2].any() and (got[:, :2] > 0).any()


def test_features_are_scaled_in_the_documented_order() -> None:
    f = {k: 2.0 * s for k, s in FEATURES.items()}
    x = candidate_features([f, {}])
    assert x.shape == (2, len(FEATURES)) and np.allclose(x[0], 2.0) and np.allclose(x[1], 0.0)


def test_shipped_nodule_model_is_the_candidate_classifier_with_its_operating_point() -> None:
    from inference.models.catalogue import load_model

    net, info = load_model("nodules")
    meta = info.metadata
    assert meta["pipeline"] == "candidates+classifier"
    assert meta["input"]["patch_voxels"] == PATCH and list(meta["input"]["patch_mm"]) == list(PATCH_MM)
    assert list(meta["input"]["features"]) == list(FEATURES)
    thr = meta["postprocess"]["min_probability"]
    assert 0.0 < thr < 1.0
    vm = meta["validation_metrics"]
    assert vm["val_patients"] >= 10 and 0.0 <= vm["val_sensitivity_ge5mm"] <= 1.0
    # the network answers one probability-like logit per candidate
    import torch

    x = torch.zeros(2, 3, PATCH, PATCH, PATCH)
    f = torch.zeros(2, len(FEATURES))
    with torch.inference_mode():
        assert net(x, f).shape == (2, 1)


def test_candidate_centres_are_centres_of_mass_and_nan_for_an_absent_id() -> None:
    from inference.pipeline.detect import candidate_centres

    rng = np.random.default_rng(2)
    labels = np.zeros((20, 30, 40), np.uint16)
    labels[2:6, 3:9, 10:13] = 1
    labels[10:19, 20:22, 1:39] = 2
    labels[rng.random(labels.shape) < 0.01] = 4
    got = candidate_centres(labels, 4)
    want = np.array(ndi.center_of_mass(labels > 0, labels, [1, 2, 4]))
    np.testing.assert_allclose(got[[0, 1, 3]], want, atol=1e-9)
    assert np.isnan(got[2]).all()  # id 3 has no voxel (taken by overlapping candidates)


@pytest.mark.parametrize(
    ("change", "reported"),
    [({}, True), ({"mass": 0.0}, False), ({"diameter_mm": 32.0}, False), ({"elongation": 0.3}, False),
     ({"air_ring": 0.35}, False)],
)
def test_the_mass_rule_reports_only_large_round_masses_surrounded_by_lung(change: dict, reported: bool) -> None:
    """A 60 mm round mass in aerated lung is reported whatever the classifier says; a nodule-path
    candidate, one that does not fill the 40 mm patch, a tube-like hilar bundle or tissue with little air around it
    (mediastinum, heart) is left to the classifier."""
    from inference.pipeline.detect import mass_rule

    mass = {"mass": 1.0, "diameter_mm": 60.0, "elongation": 0.7, "air_ring": 0.8, **change}
    assert mass_rule([mass, {}]).tolist() == [reported, False]
    assert mass_rule([]).shape == (0,)


def test_a_core_segmented_apart_from_its_ground_glass_is_reported_as_one_nodule() -> None:
    """A part-solid nodule whose solid core and surrounding ground glass the candidate stage segmented
    as two kept candidates is one finding (the core's higher probability, what reported it); a vessel
    that only touches the nodule from outside stays a finding of its own."""
    from inference.pipeline.detect import _merge_enclosed
    from inference.pipeline.measure import nodule_type

    sp = (5.0, 0.8, 0.8)
    z, y, x = np.ogrid[:9, :64, :64]
    d = np.sqrt(((z - 4) * sp[0]) ** 2 + ((y - 32) * sp[1]) ** 2 + ((x - 32) * sp[2]) ** 2)
    glass, core = d <= 12.0, d <= 4.0
    hu = np.full(d.shape, -860.0, np.float32)
    hu[glass] = -600.0
    hu[core] = 20.0
    vessel = (np.abs(y - 32) <= 2) & (x >= 48) & (z == 4)
    vessel = vessel & ~glass
    hu[vessel] = 30.0
    kept_map = np.zeros(d.shape, np.uint16)
    kept_map[glass & ~core] = 1
    kept_map[core] = 2
    kept_map[vessel] = 3
    assert ndi.binary_dilation(kept_map == 1)[vessel].any()  # the vessel touches the ground glass
    boxes = list(ndi.find_objects(kept_map, max_label=3))
    probs = {0: 0.55, 1: 0.99, 2: 0.40}
    source = {0: "classifier", 1: "mass rule", 2: "classifier"}

    sizes = {i: int((kept_map == i + 1).sum()) for i in range(3)}
    kept = _merge_enclosed(kept_map, [0, 1, 2], boxes, sizes, probs, source)

    assert kept == [0, 2]
    assert not (kept_map == 2).any()
    np.testing.assert_array_equal(kept_map == 1, glass)
    assert (kept_map == 3).sum() == vessel.sum()
    assert (probs[0], source[0]) == (0.99, "mass rule")
    assert sizes[0] == int(glass.sum())  # what the ids are ordered by afterwards
    assert boxes[0] == ndi.find_objects(glass.astype(np.uint8))[0]
    assert nodule_type(kept_map == 1, hu, sp)[0] == "part-solid"


def test_touching_findings_that_do_not_enclose_each_other_stay_apart() -> None:
    """Two solid nodules side by side, each a kept finding, are two findings."""
    from inference.pipeline.detect import _merge_enclosed

    z, y, x = np.ogrid[:20, :40, :60]
    a = (z - 10) ** 2 + (y - 20) ** 2 + (x - 18) ** 2 <= 64
    b = ((z - 10) ** 2 + (y - 20) ** 2 + (x - 33) ** 2 <= 49) & ~a
    kept_map = (a * 1 + b * 2).astype(np.uint16)
    before = kept_map.copy()
    boxes = list(ndi.find_objects(kept_map, max_label=2))
    probs = {0: 0.9, 1: 0.8}
    sizes = {0: int(a.sum()), 1: int(b.sum())}
    assert _merge_enclosed(kept_map, [0, 1], boxes, sizes, probs, {0: "classifier", 1: "classifier"}) == [0, 1]
    np.testing.assert_array_equal(kept_map, before)
    assert probs == {0: 0.9, 1: 0.8}


def _ball(shape: tuple[int, int, int], centre: tuple[float, float, float], r_mm: float, sp: tuple[float, float, float]) -> np.ndarray:
    z, y, x = np.indices(shape).astype(float)
    return ((z - centre[0]) * sp[0]) ** 2 + ((y - centre[1]) * sp[1]) ** 2 + ((x - centre[2]) * sp[2]) ** 2 <= r_mm**2


def test_a_dense_component_is_free_in_the_lung_only_with_aerated_lung_around_it() -> None:
    """The second reader's solid components are reported only when they lie free in aerated lung: a 10 mm
    soft-tissue ball in lung is; the same ball against the mediastinum (soft tissue on one side), or a 6 mm
    ball (under the size floor), is not -- hilar vessels and mediastinal structures are what its solid
    components mostly are."""
    from inference.pipeline.detect import lung_surrounded

    rule = {"min_ring_air": 0.65, "ring_mm": 2.0, "min_diameter_mm": 7.0}
    sp = (2.0, 0.8, 0.8)
    shape = (16, 48, 48)
    c = (7.5, 23.5, 23.5)
    ball = _ball(shape, c, 5.0, sp)
    labels = ball.astype(np.uint16)
    box = ndi.find_objects(labels)[0]
    lung = np.where(ball, 40.0, -850.0)
    assert lung_surrounded(labels, 1, box, lung, sp, rule)
    mediastinum = lung.copy()
    mediastinum[:, :, 24:] = 40.0  # soft tissue from the ball's centre on
    assert not lung_surrounded(labels, 1, box, mediastinum, sp, rule)
    small = _ball(shape, c, 3.0, sp).astype(np.uint16)
    assert not lung_surrounded(small, 1, ndi.find_objects(small)[0], np.where(small > 0, 40.0, -850.0), sp, rule)
