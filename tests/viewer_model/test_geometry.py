"""Plane geometry: radiological orientation for any axis-aligned direction,
physical aspect, and exact round trips between scene and voxel."""

from __future__ import annotations

import numpy as np
import pytest

from viewer.model.geometry import plane_geometries

# direction matrices (columns = LPS of index x, y, z): identity; head-first
# with slices stored feet->head reversed; x flipped; a coronal acquisition.
DIRECTIONS = {
    "identity": np.eye(3),
    "z_reversed": np.diag([1.0, 1.0, -1.0]),
    "x_flipped": np.diag([-1.0, 1.0, 1.0]),
    "coronal_acq": np.array([[1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]]),
}


def _screen_step_lps(vol_dir: np.ndarray, spacing, shape, plane: str, dr: int, dc: int) -> np.ndarray:
    """LPS change when moving dr rows / dc columns on screen (via the Volume
    affine, independent of the geometry code's own letters)."""
    from inference.types import Volume

    vol = Volume(array=np.zeros(shape, np.int16), spacing=spacing, origin=(0.0, 0.0, 0.0), direction=vol_dir)
    g = plane_geometries(shape, spacing, vol_dir)[plane]
    mid = np.array([(n - 1) / 2 for n in shape])
    x, y = g.voxel_to_scene(mid)
    a = g.scene_to_voxel(x, y, mid[g.fixed_axis])
    b = g.scene_to_voxel(x + dc * g.col_mm, y + dr * g.row_mm, mid[g.fixed_axis])
    return vol.voxel_to_lps(b) - vol.voxel_to_lps(a)


@pytest.mark.parametrize("name", list(DIRECTIONS))
def test_radiological_convention_for_every_direction(name: str) -> None:
    d = DIRECTIONS[name]
    spacing, shape = (2.5, 0.7, 0.8), (10, 12, 14)
    # axial: right on screen = patient Left (+L), down = Posterior (+P)
    assert _screen_step_lps(d, spacing, shape, "axial", 0, 1)[0] > 0
    assert _screen_step_lps(d, spacing, shape, "axial", 1, 0)[1] > 0
    # coronal: right = Left, down = Inferior (-S)
    assert _screen_step_lps(d, spacing, shape, "coronal", 0, 1)[0] > 0
    assert _screen_step_lps(d, spacing, shape, "coronal", 1, 0)[2] < 0
    # sagittal: right = Posterior, down = Inferior
    assert _screen_step_lps(d, spacing, shape, "sagittal", 0, 1)[1] > 0
    assert _screen_step_lps(d, spacing, shape, "sagittal", 1, 0)[2] < 0
    g = plane_geometries(shape, spacing, d)
    assert g["axial"].labels == ("R", "L", "A", "P")
    assert g["coronal"].labels == ("R", "L", "S", "I")
    assert g["sagittal"].labels == ("A", "P", "S", "I")


@pytest.mark.parametrize("name", list(DIRECTIONS))
def test_slice2d_pixels_match_voxels(name: str) -> None:
    d = DIRECTIONS[name]
    rng = np.random.default_rng(1)
    arr = rng.integers(-1000, 1000, size=(6, 7, 8)).astype(np.int16)
    geoms = plane_geometries(arr.shape, (2.0, 1.0, 0.5), d)
    for g in geoms.values():
        for _ in range(20):
            v = tuple(int(rng.integers(0, n)) for n in arr.shape)
            img = g.slice2d(arr, v[g.fixed_axis])
            r, c = g.pixel_of_voxel(v)
            assert img[r, c] == arr[v]
        assert g.slice2d(arr, 0).shape == (g.n_rows, g.n_cols)


def test_physical_size_and_round_trip() -> None:
    geoms = plane_geometries((40, 96, 80), (2.5, 0.7, 0.6), np.eye(3))
    cor = geoms["coronal"]
    assert cor.height_mm == pytest.approx(40 * 2.5)
    assert cor.width_mm == pytest.approx(80 * 0.6)
    v = np.array([12.3, 40.0, 17.6])
    x, y = cor.voxel_to_scene(v)
    assert np.allclose(cor.scene_to_voxel(x, y, v[cor.fixed_axis]), v)


def test_thick_slab_is_max_over_slices() -> None:
    arr = np.zeros((9, 4, 4), np.int16)
    arr[2, 1, 1] = 100  # inside a 5-slice slab centred on 4 (slices 2..6)
    arr[7, 2, 2] = 200  # outside it
    g = plane_geometries(arr.shape, (1.0, 1.0, 1.0), np.eye(3))["axial"]
    slab = g.slice2d(arr, 4, slab=5)
    assert slab[1, 1] == 100 and slab[2, 2] == 0
    assert g.slice2d(arr, 4)[1, 1] == 0
