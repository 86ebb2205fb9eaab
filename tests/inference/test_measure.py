"""Measurements on analytic shapes whose true sizes are known in closed form."""

from __future__ import annotations

import numpy as np
import pytest

from inference.pipeline.measure import axes_2d, is_juxtapleural, measure_nodule, side_and_lobe


def _ellipsoid(shape, spacing, centre_mm, semi_axes_mm):
    z, y, x = np.meshgrid(*[(np.arange(n) + 0.0) * s for n, s in zip(shape, spacing)], indexing="ij")
    (cz, cy, cx), (a, b, c) = centre_mm, semi_axes_mm
    return ((z - cz) / a) ** 2 + ((y - cy) / b) ** 2 + ((x - cx) / c) ** 2 <= 1.0


@pytest.mark.parametrize("spacing", [(1.0, 0.7, 0.7), (1.25, 0.8, 0.8), (2.5, 0.6, 0.6)])
def test_sphere_20mm_measures_20mm(spacing) -> None:
    shape = tuple(int(40 / s) for s in spacing)
    m = _ellipsoid(shape, spacing, (20.1, 19.7, 20.3), (10, 10, 10))
    hu = np.where(m, 35, -860).astype(np.int16)
    r = measure_nodule(m, hu, spacing)
    assert abs(r["mean_diameter_mm"] - 20.0) <= 1.0
    assert abs(r["long_axis_mm"] - 20.0) <= 1.0 and abs(r["short_axis_mm"] - 20.0) <= 1.0
    assert r["volume_mm3"] == pytest.approx(4 / 3 * np.pi * 1000, rel=0.06)
    assert r["type"] == "solid" and r["mean_hu"] == pytest.approx(35)
    assert r["spiculated"] is False


def test_ellipsoid_axes_are_the_in_plane_semi_axes() -> None:
    sp = (1.0, 0.5, 0.5)
    m = _ellipsoid((30, 80, 80), sp, (15, 20, 20), (5, 14, 8))  # z, y, x semi-axes
    hu = np.where(m, 20, -850).astype(np.int16)
    r = measure_nodule(m, hu, sp)
    assert r["long_axis_mm"] == pytest.approx(28.0, abs=0.8)
    assert r["short_axis_mm"] == pytest.approx(16.0, abs=0.8)
    assert r["mean_diameter_mm"] == pytest.approx(22.0, abs=0.8)
    # rounded to 0.1 mm as Lung-RADS asks
    assert round(r["mean_diameter_mm"], 1) == r["mean_diameter_mm"]


def test_oblique_ellipse_short_axis_is_perpendicular_to_long_axis() -> None:
    yy, xx = np.mgrid[:200, :200] * 0.5
    t = np.deg2rad(30)
    u = (xx - 50) * np.cos(t) + (yy - 50) * np.sin(t)
    v = -(xx - 50) * np.sin(t) + (yy - 50) * np.cos(t)
    m = (u / 20) ** 2 + (v / 6) ** 2 <= 1
    la, sa = axes_2d(m, (0.5, 0.5))
    assert la == pytest.approx(40, abs=0.8) and sa == pytest.approx(12, abs=0.8)


@pytest.mark.parametrize("pixel_mm", [0.75, 1.0])
def test_small_discs_measure_without_bias_on_coarse_pixels(pixel_mm: float) -> None:
    """5-12 mm discs (Lung-RADS' 6 and 8 mm lines) anywhere on the pixel grid: no systematic error.

    The evaluation compares findings with truth masks measured by this same
    ruler; a ruler biased by half a pixel would move every nodule near a
    category line the same way.
    """
    rng = np.random.default_rng(11)
    err = []
    for radius in rng.uniform(2.5, 6.0, 40):
        cy, cx = rng.uniform(0, 1, 2)
        n = int(2 * radius / pixel_mm) + 6
        yy, xx = np.mgrid[:n, :n] - n / 2
        disc = ((yy - cy) ** 2 + (xx - cx) ** 2) * pixel_mm**2 <= radius**2
        la, sa = axes_2d(disc, (pixel_mm, pixel_mm))
        err.append(0.5 * (la + sa) - 2 * radius)
    assert abs(float(np.mean(err))) < 0.15
    assert max(abs(e) for e in err) < pixel_mm


def _typed(inner_hu: float, outer_hu: float, inner_r: float = 4.0) -> dict:
    sp = (1.0, 0.7, 0.7)
    shape = (30, 43, 43)
    m = _ellipsoid(shape, sp, (15, 15, 15), (8, 8, 8))
    core = _ellipsoid(shape, sp, (15, 15, 15), (inner_r,) * 3)
    hu = np.full(shape, -860.0)
    hu[m] = outer_hu
    hu[core] = inner_hu
    return measure_nodule(m, hu, sp)


def test_types_from_hu_composition() -> None:
    assert _typed(-600, -600)["type"] == "ground-glass"
    ps = _typed(30, -600, inner_r=4.0)
    assert ps["type"] == "part-solid"
    assert ps["solid_component_mm"] == pytest.approx(8.0, abs=1.0)
    assert _typed(400, 400)["type"] == "calcified"
    assert _typed(150, 150)["type"] == "solid"  # below Siegelman's 164 HU
    assert _typed(40, 40)["type"] == "solid"


def test_the_margin_is_left_to_the_reader_even_when_the_mask_is_spiky() -> None:
    """A mask with strands radiating from it (which the old shape heuristic flagged) is not called
    spiculated by the measurement: on synthetic patients every such flag was a false one (RESULTS.md)."""
    sp = (1.0, 0.5, 0.5)
    m = _ellipsoid((20, 120, 120), sp, (10, 30, 30), (6, 8, 8))
    for a in np.linspace(0, 2 * np.pi, 8, endpoint=False):  # thin strands radiating into the lung
        for r in np.arange(7.5, 16, 0.25):
            y, x = 30 + r * np.sin(a), 30 + r * np.cos(a)
            m[8:13, int(y / 0.5) - 1 : int(y / 0.5) + 1, int(x / 0.5) - 1 : int(x / 0.5) + 1] = True
    assert measure_nodule(m, np.where(m, 30, -850), sp)["spiculated"] is False


def test_juxtapleural_and_side_and_upper_lobe() -> None:
    sp = (2.0, 1.0, 1.0)
    lungs = np.zeros((60, 100, 100), np.uint8)
    lungs[5:55, 20:80, 5:45] = 1  # right lung at small x (LPS: patient right)
    lungs[5:55, 20:80, 55:95] = 2
    inner = _ellipsoid(lungs.shape, sp, (90, 50, 25), (5, 5, 5))  # z=45 index: upper part (z up)
    touching = _ellipsoid(lungs.shape, sp, (30, 50, 91), (5, 5, 5))
    assert not is_juxtapleural(inner, lungs, sp)
    assert is_juxtapleural(touching, lungs, sp)
    # a free nodule 1 mm from the mask's edge (the mask is blocky: 2.5 mm cells) is not on the pleura; the
    # rule of "any 3 shell voxels outside" called it juxtapleural, and Lung-RADS then files it as benign
    near = _ellipsoid(lungs.shape, sp, (60, 50, 88.5), (5, 5, 5))  # left lung ends at x = 94 (index)
    assert near.any() and not is_juxtapleural(near, lungs, sp)
    loc = side_and_lobe(np.array([45.0, 50, 25]), inner, lungs, z_up_sign=1.0)
    assert loc["side"] == "right" and loc["upper_lobe"] is True and loc["lobe"] == "upper"
    loc = side_and_lobe(np.array([15.0, 50, 91]), touching, lungs, z_up_sign=1.0)
    assert loc["side"] == "left" and loc["upper_lobe"] is False and loc["lobe"] == "lower"
    # with z pointing to the feet the same voxel is in the lower part
    assert side_and_lobe(np.array([45.0, 50, 25]), inner, lungs, z_up_sign=-1.0)["upper_lobe"] is False
    # the pipeline passes the finding's box and the lungs' extents, computed once: same answer
    from scipy import ndimage as ndi

    from inference.pipeline.measure import lung_extents

    ext = lung_extents(lungs)
    assert ext == {1: (5, 54, 20, 79), 2: (5, 54, 20, 79)}
    for mask, c in ((inner, [45.0, 50, 25]), (touching, [15.0, 50, 91])):
        box = ndi.find_objects(mask.astype(np.uint8))[0]
        assert side_and_lobe(np.array(c), mask[box], lungs, 1.0, box=box, extents=ext) == \
            side_and_lobe(np.array(c), mask, lungs, 1.0)
    # the boundary follows the oblique fissure: at the same height (a third of the lung's down from
    # its apex) a nodule at the front is upper lobe, one at the back lower lobe
    front, back = np.array([38.0, 25, 25]), np.array([38.0, 75, 25])
    assert side_and_lobe(front, inner, lungs, 1.0)["upper_lobe"] is True
    assert side_and_lobe(back, inner, lungs, 1.0)["upper_lobe"] is False
    assert side_and_lobe(back, inner, lungs, 1.0, y_back_sign=-1.0)["upper_lobe"] is True


def _crossed(core_r_mm: float) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """A 24 mm sub-solid nodule (-600 HU) on lung, two 3.5 mm vessels (40 HU) running through it off
    centre and on beyond it, and, when ``core_r_mm``, a round solid core (30 HU) of that radius at its centre."""
    sp = (1.25, 0.8, 0.8)
    shape = (32, 50, 50)
    c = (20.0, 20.0, 20.0)
    m = _ellipsoid(shape, sp, c, (12, 12, 12))
    z, y, x = np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, sp)], indexing="ij")
    # two vessels 6 mm off the centre, one along x, one along y 4.5 mm higher (apart from each other)
    vessel = ((y - 26.0) ** 2 + (z - 20.0) ** 2 <= 1.75 ** 2) | ((x - 14.0) ** 2 + (z - 24.5) ** 2 <= 1.75 ** 2)
    hu = np.full(shape, -860.0) + np.random.default_rng(5).normal(0, 25, shape)
    hu[m] = -600.0
    hu[vessel] = 40.0
    if core_r_mm:
        hu[_ellipsoid(shape, sp, c, (core_r_mm,) * 3)] = 30.0
    return m, hu, sp


def test_a_vessel_crossing_ground_glass_is_not_its_solid_component() -> None:
    """Ground glass with a vessel running through it was typed part-solid with the vessel as its solid
    component (4 of the 28 ground-glass nodules found on tuning patients, 18-31 mm): Lung-RADS' part-solid table
    instead of category 2. A vessel -- continuing outside the nodule, tube-shaped, thin for the nodule --
    is not a solid component; a round core still is, and is measured without the vessel."""
    m, hu, sp = _crossed(0.0)
    assert measure_nodule(m, hu, sp)["type"] == "ground-glass"
    m, hu, sp = _crossed(3.0)
    r = measure_nodule(m, hu, sp)
    assert r["type"] == "part-solid" and r["solid_component_mm"] == pytest.approx(6.0, abs=1.2), r


def _thick_vessel(core_r_mm: float, vessel_r_mm: float) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """A 16 mm sub-solid nodule (-600 HU) with one vessel (40 HU, radius ``vessel_r_mm``) running through it and
    on beyond it, and, when ``core_r_mm``, a round solid core (30 HU) of that radius at its centre that the
    vessel touches."""
    sp = (1.25, 0.8, 0.8)
    shape = (28, 56, 56)
    c = (17.5, 22.4, 22.4)
    m = _ellipsoid(shape, sp, c, (8, 8, 8))
    z, y, _ = np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, sp)], indexing="ij")
    hu = np.full(shape, -860.0) + np.random.default_rng(5).normal(0, 25, shape)
    hu[m] = -600.0
    hu[(y - 25.4) ** 2 + (z - 17.5) ** 2 <= vessel_r_mm**2] = 40.0
    if core_r_mm:
        hu[_ellipsoid(shape, sp, c, (core_r_mm,) * 3)] = 30.0
    return m, hu, sp


@pytest.mark.parametrize("vessel_r_mm", [2.5, 3.0])
def test_a_vessel_too_thick_for_a_tube_is_still_not_the_solid_component(vessel_r_mm: float) -> None:
    """A 5-6 mm vessel through a 16 mm ground-glass nodule is thicker than the thin-tube rule allows (0.12 of the
    nodule's diameter), and it was typed part-solid with a 10-12 mm "solid component" (Lung-RADS 4A-4B instead of
    2; tuning patients 5209, 5210: 7.4 and 9.2 mm). It keeps its calibre outside the nodule; a core is thicker
    than the vessels that reach it, and stays the solid component."""
    m, hu, sp = _thick_vessel(0.0, vessel_r_mm)
    assert measure_nodule(m, hu, sp)["type"] == "ground-glass"
    m, hu, sp = _thick_vessel(4.0, 1.5)
    r = measure_nodule(m, hu, sp)
    assert r["type"] == "part-solid" and r["solid_component_mm"] >= 8.0, r


def _blurred(core_r_mm: float, blur_mm: float, slice_mm: float) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """A 14 mm ground-glass nodule (-600 HU) with a round solid core (30 HU) at its centre, as a soft
    kernel (Gaussian ``blur_mm``) and ``slice_mm`` slices show it, with 20 HU noise, segmented at half
    contrast to the lung."""
    from scipy import ndimage as ndi

    fine = (0.5, 0.7, 0.7)
    shape = (80, 43, 43)
    c = (21.25, 15.0, 15.0)
    hu = np.full(shape, -860.0)
    hu[_ellipsoid(shape, fine, c, (7.0,) * 3)] = -600.0
    if core_r_mm:
        hu[_ellipsoid(shape, fine, c, (core_r_mm,) * 3)] = 30.0
    hu = ndi.gaussian_filter(hu, (blur_mm / fine[0], blur_mm / fine[1], blur_mm / fine[2]))
    k = int(round(slice_mm / fine[0]))
    hu = hu[: shape[0] // k * k].reshape(-1, k, 43, 43).mean(axis=1) + np.random.default_rng(1).normal(0, 20, (shape[0] // k, 43, 43))
    lab, _ = ndi.label(ndi.binary_fill_holes(hu >= -730.0))
    return lab == lab[lab.shape[0] // 2, 21, 21], hu, (slice_mm, 0.7, 0.7)


@pytest.mark.parametrize("core_r_mm, blur_mm, slice_mm", [(2.5, 1.0, 5.0), (3.0, 1.5, 5.0), (2.5, 1.2, 2.5), (2.8, 1.2, 3.0)])
def test_a_solid_core_blurred_below_the_solid_threshold_is_still_a_solid_component(core_r_mm, blur_mm, slice_mm) -> None:
    """A 5-6 mm core averaged over its slice with the ground glass around it has no voxel at -160 HU or
    above (its densest -100 to -230 HU here), and the nodule was typed ground glass (11 of 58 part-solid
    nodules found on tuning and check patients): Lung-RADS category 2 instead of the part-solid table.
    A centre much denser than the rim is a core, sized at half contrast; uniform ground glass is not."""
    mask, hu, sp = _blurred(core_r_mm, blur_mm, slice_mm)
    assert hu[mask].max() < -90.0
    r = measure_nodule(mask, hu, sp)
    assert r["type"] == "part-solid" and r["solid_component_mm"] == pytest.approx(2 * core_r_mm, abs=1.2), r
    mask, hu, sp = _blurred(0.0, blur_mm, slice_mm)
    assert measure_nodule(mask, hu, sp)["type"] == "ground-glass"


@pytest.mark.parametrize("foci, expected", [
    ([((15, 15, 15), 2.5)], "calcified"),  # central
    ([((13, 12, 15), 1.8), ((17, 18, 13), 1.8), ((15, 15, 19), 1.8)], "calcified"),  # popcorn
    ([((15, 15, 21.5), 2.0)], "solid"),  # eccentric: a cancer may hold it
    ([((15, 15, 15), 0.5)], "solid"),  # a speck, not a pattern
])
def test_benign_calcification_patterns_are_calcified_though_mostly_soft_tissue(foci, expected) -> None:
    """A 16 mm soft-tissue nodule (40 HU, noisy) with calcium foci of 600 HU: central and popcorn
    calcification are benign patterns (Lung-RADS category 1), an eccentric focus and a speck are not."""
    sp = (1.0, 0.7, 0.7)
    shape = (30, 43, 43)
    m = _ellipsoid(shape, sp, (15, 15, 15), (8, 8, 8))
    hu = np.where(m, 40.0, -860.0) + np.random.default_rng(3).normal(0, 40, shape)
    for c, r in foci:
        hu[_ellipsoid(shape, sp, c, (r, r, r)) & m] = 600.0
    r = measure_nodule(m, hu, sp)
    assert r["type"] == expected, r["type"]


def _acquired(radius_mm: float, core_r_mm: float, core_hu: float, outer_hu: float, slice_mm: float,
              cavity_r_mm: float = 0.0) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """A nodule as a CT sees it: drawn on a 0.5 mm grid, blurred in-plane (0.6 mm), averaged over
    ``slice_mm`` slices, then segmented at half contrast to the lung with its holes filled (as the
    candidate stage does)."""
    from scipy import ndimage as ndi

    fine = (0.5, 0.7, 0.7)
    shape = (int(40 / fine[0]), 43, 43)
    c = (21.25, 15.0, 15.0)  # mid-slice on 2.5 mm slices, 1.25 mm off on 5 mm ones
    hu = np.full(shape, -860.0)
    hu[_ellipsoid(shape, fine, c, (radius_mm,) * 3)] = outer_hu
    if core_r_mm:
        hu[_ellipsoid(shape, fine, c, (core_r_mm,) * 3)] = core_hu
    if cavity_r_mm:
        hu[_ellipsoid(shape, fine, c, (cavity_r_mm,) * 3)] = -1000.0
    hu = ndi.gaussian_filter(hu, (0.0, 0.6 / 0.7, 0.6 / 0.7))
    k = int(round(slice_mm / fine[0]))
    hu = hu[: hu.shape[0] // k * k].reshape(-1, k, 43, 43).mean(axis=1)
    mask = ndi.binary_fill_holes(hu >= (-860.0 + min(outer_hu, 40.0)) / 2)
    lab, _ = ndi.label(mask)
    mask = lab == lab[lab.shape[0] // 2, 21, 21] if lab[lab.shape[0] // 2, 21, 21] else mask
    return mask, hu, (slice_mm, 0.7, 0.7)


@pytest.mark.parametrize("slice_mm", [2.5, 5.0])
def test_small_solid_and_cavitary_nodules_are_not_part_solid(slice_mm) -> None:
    """Partial volume makes a small solid nodule mostly rim, and a cavity is air, not ground glass:
    neither is a ground-glass component. Typed part-solid they would get the sub-solid Lung-RADS table,
    Brock's part-solid term and Fleischner's sub-solid row (7 such solid nodules on validation and tuning patients)."""
    for radius, cavity in ((3.0, 0.0), (3.5, 0.0), (6.0, 3.0)):
        mask, hu, sp = _acquired(radius, 0.0, 0.0, 40.0, slice_mm, cavity_r_mm=cavity)
        assert measure_nodule(mask, hu, sp)["type"] == "solid", (radius, cavity, slice_mm)
    # a real ground-glass component still makes a part-solid nodule, and ground glass stays ground glass
    mask, hu, sp = _acquired(7.0, 4.0, 30.0, -600.0, slice_mm)
    assert measure_nodule(mask, hu, sp)["type"] == "part-solid"
    mask, hu, sp = _acquired(7.0, 0.0, 0.0, -600.0, slice_mm)
    assert measure_nodule(mask, hu, sp)["type"] == "ground-glass"


def test_a_part_solid_nodule_segmented_down_to_its_core_stays_part_solid() -> None:
    """The ground glass then lies outside the mask: the rim inside it is not read as partial volume."""
    from scipy import ndimage as ndi

    whole, hu, sp = _acquired(7.0, 3.0, 30.0, -600.0, 5.0)
    lab, _ = ndi.label(ndi.binary_fill_holes(hu >= -410.0) & whole)  # the solid core's half-contrast outline
    core = lab == lab[lab.shape[0] // 2, 21, 21]
    assert 0 < core.sum() < whole.sum() / 4
    assert measure_nodule(core, hu, sp)["type"] == "part-solid"


@pytest.mark.parametrize("core_r_mm, slice_mm", [(3.5, 1.25), (3.5, 2.5), (4.0, 1.25), (4.0, 2.5)])
def test_the_solid_component_is_measured_at_its_half_contrast_edge(core_r_mm, slice_mm) -> None:
    """Lung-RADS files a part-solid nodule by its solid component at 6 and 8 mm. Measured at -160 HU, a
    7-8 mm soft-tissue core blurred into -600 HU ground glass came out up to 1 mm small (6.0 for 7 mm,
    7.0 for 8 mm on 2.5 mm slices) -- category 3 instead of 4A, 4A instead of 4B. At the half-contrast
    edge it measures within 0.4 mm; the type is unchanged."""
    mask, hu, sp = _acquired(8.0, core_r_mm, 30.0, -600.0, slice_mm)
    r = measure_nodule(mask, hu, sp)
    assert r["type"] == "part-solid"
    assert r["solid_component_mm"] == pytest.approx(2 * core_r_mm, abs=0.4), r


def _core_in_ground_glass(core: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    sp = (1.0, 0.7, 0.7)
    shape = core.shape
    mask = _ellipsoid(shape, sp, (15.0, 15.0, 15.0), (11.0, 13.0, 13.0)) | core
    hu = np.where(core, 30.0, np.where(mask, -600.0, -860.0))
    return mask, hu, sp


def test_a_vessel_touching_the_solid_core_is_not_measured_with_it() -> None:
    """A vessel joined to the core is one -160 HU component with it; its length was reported as the solid
    component's (tuning patients: 13.8 mm for a 7.9 mm core). Cut off, at most a 2 mm stub is left."""
    from inference.pipeline.measure import solid_component_outline_mm

    shape, sp = (31, 43, 43), (1.0, 0.7, 0.7)
    ball = _ellipsoid(shape, sp, (15.0, 15.0, 15.0), (3.5, 3.5, 3.5))
    zz, yy, xx = np.indices(shape) * np.array(sp)[:, None, None, None]
    vessel = ((zz - 15.0) ** 2 + (yy - 15.0) ** 2 <= 1.0) & (xx >= 15.0) & (xx <= 26.0)
    mask, hu, sp = _core_in_ground_glass(ball | vessel)
    assert solid_component_outline_mm(ball | vessel, mask, hu, sp) <= 8.5  # a 7 mm core: 7.7 (10.7 with the vessel)
    # an elongated core is not trimmed: 12 x 6 mm in-plane measures 9 mm
    oval = _ellipsoid(shape, sp, (15.0, 15.0, 15.0), (3.0, 6.0, 3.0))
    mask, hu, sp = _core_in_ground_glass(oval)
    assert solid_component_outline_mm(oval, mask, hu, sp) == pytest.approx(9.0, abs=0.5)
    # nor is an irregular core cut down to its centre: a cross of two 9 x 2.8 mm bars measures 9 mm (7.0 cut;
    # on 9600-9623 a thin 9.5 mm core was cut to 4.1 mm, Lung-RADS 4B -> 3)
    zz, yy, xx = np.indices(shape) * np.array(sp)[:, None, None, None]
    flat = abs(zz - 15.0) <= 1.5
    cross = flat & (((abs(yy - 15.0) <= 1.4) & (abs(xx - 15.0) <= 4.5)) | ((abs(xx - 15.0) <= 1.4) & (abs(yy - 15.0) <= 4.5)))
    mask, hu, sp = _core_in_ground_glass(cross)
    assert solid_component_outline_mm(cross, mask, hu, sp) == pytest.approx(9.0, abs=0.5)


def _sphere_with_vessel(sp=(2.0, 0.7, 0.7), r_mm=3.5, vessel_r_mm=1.0, vessel_len_mm=7.0):
    shape = (15, 50, 50)
    c = (15.0, 17.5, 17.5)  # on a slice at 1.25 and 5 mm, between two at 2 mm
    ball = _ellipsoid(shape, sp, c, (r_mm, r_mm, r_mm))
    zz, yy, xx = np.indices(shape) * np.array(sp)[:, None, None, None]
    vessel = ((zz - c[0]) ** 2 + (yy - c[1]) ** 2 <= vessel_r_mm**2) & (xx >= c[2]) & (xx <= c[2] + r_mm + vessel_len_mm)
    return ball, vessel, sp


@pytest.mark.parametrize("sp", [(2.0, 0.7, 0.7), (1.25, 0.8, 0.8), (5.0, 0.9, 0.9)])
def test_a_vessel_stub_followed_out_of_a_solid_nodule_is_cut_off_before_it_is_measured(sp) -> None:
    """Held-out 6.4-6.7 mm juxtavascular nodules measured 8.5-9.4 mm with the vessel their contour followed
    (Lung-RADS 4A instead of 3); without the stub a 7 mm nodule measures 7 mm again."""
    from inference.pipeline.measure import cut_attached_vessels

    ball, vessel, sp = _sphere_with_vessel(sp)
    found = ball | vessel
    hu = np.where(found, 30, -860).astype(np.int16)
    assert measure_nodule(found, hu, sp)["long_axis_mm"] >= 12.0  # the stub lengthens the long axis
    cut = cut_attached_vessels(found, sp)
    assert (cut <= found).all() and (cut & ball).sum() >= 0.9 * ball.sum()
    r = measure_nodule(cut, hu, sp)
    assert r["long_axis_mm"] <= 8.5 and abs(r["mean_diameter_mm"] - measure_nodule(ball, hu, sp)["mean_diameter_mm"]) <= 0.8


def test_round_oval_and_cavitary_nodules_keep_their_outline() -> None:
    from inference.pipeline.measure import cut_attached_vessels

    sp = (1.25, 0.7, 0.7)
    shape = (25, 50, 50)
    sphere = _ellipsoid(shape, sp, (15.0, 17.5, 17.5), (5.0, 5.0, 5.0))
    oval = _ellipsoid(shape, sp, (15.0, 17.5, 17.5), (3.0, 8.0, 3.5))
    wall = sphere & ~_ellipsoid(shape, sp, (15.0, 17.5, 17.5), (3.2, 3.2, 3.2))  # a 10 mm cavity with a 1.8 mm wall
    for m in (sphere, oval, wall):
        assert np.array_equal(cut_attached_vessels(m, sp), m)


def test_only_solid_findings_lose_their_stubs_in_the_label_map() -> None:
    """A ground-glass finding's halo around a vessel is the nodule, not a stub: only solid findings are cut."""
    from scipy import ndimage as ndi

    from inference.pipeline.detect import _cut_vessel_stubs

    ball, vessel, sp = _sphere_with_vessel()
    labels = np.zeros((15, 50, 100), np.uint16)
    labels[:, :, :50][ball | vessel] = 1
    labels[:, :, 50:][ball | vessel] = 2
    hu = np.full(labels.shape, -860, np.int16)
    hu[labels == 1] = 30
    hu[labels == 2] = -600
    before = labels.copy()
    _cut_vessel_stubs(hu, sp, labels, [0, 1], list(ndi.find_objects(labels)))
    assert 0 < (labels == 1).sum() < (before == 1).sum()
    assert ((labels == 1) <= (before == 1)).all()
    assert np.array_equal(labels == 2, before == 2)


def test_a_nodule_keeps_its_contact_with_the_pleura() -> None:
    """What touches the outside of the lung is the nodule's pleural contact (what makes it juxtapleural and
    Lung-RADS's juxtapleural rule apply), not a vessel in the lung: it is never cut."""
    from inference.pipeline.measure import cut_attached_vessels

    ball, tail, sp = _sphere_with_vessel()  # the 'vessel' runs from the ball to x = 28 mm
    found = ball | tail
    xx = np.indices(found.shape)[2] * sp[2]
    wall = xx > 27.5  # chest wall beyond the tail's end: the tail reaches the pleura
    assert not np.array_equal(cut_attached_vessels(found, sp), found)
    assert np.array_equal(cut_attached_vessels(found, sp, outside_lung=wall & ~found), found)


def test_a_mass_is_left_as_segmented() -> None:
    """30 mm and more across no size category depends on a stub; the tumour's box is where the cut costs time."""
    from scipy import ndimage as ndi

    from inference.pipeline.detect import _cut_vessel_stubs

    sp = (2.5, 0.8, 0.8)
    ball, vessel, _ = _sphere_with_vessel(sp, r_mm=16.0, vessel_r_mm=1.2, vessel_len_mm=8.0)
    small, small_vessel, _ = _sphere_with_vessel(sp)
    labels = np.zeros((15, 50, 100), np.uint16)
    labels[:, :, :50][ball | vessel] = 1
    labels[:, :, 50:][small | small_vessel] = 2
    hu = np.where(labels > 0, 30, -860).astype(np.int16)
    before = labels.copy()
    _cut_vessel_stubs(hu, sp, labels, [0, 1], list(ndi.find_objects(labels)))
    assert np.array_equal(labels == 1, before == 1)
    assert (labels == 2).sum() < (before == 2).sum()
