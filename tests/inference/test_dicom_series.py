"""load_series on generated series: geometry against SimpleITK, and every
real-world deviation the loader promises to handle (gaps, duplicates, tilt,
reversed stacks, per-slice rescale, compressed syntaxes, multi-frame, 2D)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from pydicom.uid import JPEGLSLossless

from inference.errors import CancelledError, NoUsableSeriesError, SeriesLoadError
from inference.io.dicom_index import scan
from inference.io.dicom_series import load_series
from tests.dicomgen import (
    ImplicitVRLittleEndian,
    RLELossless,
    phantom,
    slice_positions,
    write_2d_image,
    write_ct_series,
    write_enhanced_ct,
    write_random_binary,
    write_zero_byte,
)

OBLIQUE = np.array(
    [[0.9848, 0.0, 0.1736], [0.0302, 0.9848, -0.1710], [-0.1710, 0.1736, 0.9698]]
)  # columns: x, y, z index axes (a rotation, not axis-aligned)


def _orthonormal(d: np.ndarray) -> np.ndarray:
    u, _, vt = np.linalg.svd(d)
    return u @ vt


def _sitk_read(folder: Path) -> sitk.Image:
    r = sitk.ImageSeriesReader()
    r.SetFileNames(r.GetGDCMSeriesFileNames(str(folder)))
    return r.Execute()


def _codes(v) -> set[str]:
    return {w.code for w in v.warnings}


@pytest.mark.parametrize("direction", [np.eye(3), _orthonormal(OBLIQUE), np.diag([1.0, -1.0, -1.0])], ids=["axial", "oblique", "flipped"])
def test_geometry_and_hu_match_simpleitk(tmp_path: Path, direction: np.ndarray) -> None:
    hu = phantom((7, 24, 20))
    write_ct_series(tmp_path, hu, spacing=(3.0, 0.7, 0.9), origin=(-50.0, 20.0, 100.0), direction=direction)
    v = load_series(tmp_path)
    ref = _sitk_read(tmp_path)
    assert np.allclose(v.spacing[::-1], ref.GetSpacing(), atol=1e-3)
    assert np.allclose(v.origin, ref.GetOrigin(), atol=1e-3)
    assert np.allclose(v.direction.ravel(), ref.GetDirection(), atol=1e-3)
    assert np.array_equal(v.array, sitk.GetArrayFromImage(ref))
    assert v.array.dtype == np.int16
    assert v.warnings == ()
    # the written geometry, independently of SimpleITK
    assert np.allclose(v.voxel_to_lps((0, 0, 0)), (-50.0, 20.0, 100.0), atol=1e-3)
    assert np.allclose(v.voxel_to_lps((6, 0, 0)), np.array((-50.0, 20.0, 100.0)) + 18.0 * direction[:, 2], atol=1e-3)


def test_shuffled_names_and_reversed_instance_numbers_do_not_change_order(tmp_path: Path) -> None:
    hu = phantom((9, 16, 16))
    write_ct_series(tmp_path, hu, instance_numbers=list(range(9, 0, -1)))
    v = load_series(tmp_path)
    assert np.array_equal(v.array, hu)


def test_reversed_stack_normal_pointing_feet(tmp_path: Path) -> None:
    # positions decreasing along the normal: the loader sorts ascending along
    # the normal, so array[0] is the slice written last
    hu = phantom((6, 16, 16))
    pos = slice_positions(6, 2.0, (0.0, 0.0, 50.0))[::-1]
    write_ct_series(tmp_path, hu, spacing=(2.0, 1.0, 1.0), positions=pos)
    v = load_series(tmp_path)
    assert np.array_equal(v.array, hu[::-1])
    assert np.allclose(v.origin, (0.0, 0.0, 50.0))  # the lowest position, written last
    assert np.allclose(v.direction, np.eye(3))


def test_missing_slice_is_interpolated_and_reported(tmp_path: Path) -> None:
    hu = phantom((8, 16, 16)).astype(np.int16)
    pos = slice_positions(8, 2.5, (0.0, 0.0, 0.0))
    keep = [0, 1, 2, 4, 5, 6, 7]  # slice 3 lost in transfer
    write_ct_series(tmp_path, hu[keep], spacing=(2.5, 1.0, 1.0), positions=pos[keep])
    v = load_series(tmp_path)
    assert "missing-slices" in _codes(v)
    assert v.shape == (8, 16, 16)  # physical extent kept: 17.5 mm, not 15 mm
    assert v.spacing[0] == pytest.approx(2.5)
    assert np.array_equal(v.array[keep], hu[keep])
    expected = np.rint((hu[2].astype(float) + hu[4]) / 2)
    assert np.array_equal(v.array[3], expected)


def test_duplicate_positions_dropped_with_warning(tmp_path: Path) -> None:
    hu = phantom((5, 12, 12))
    pos = slice_positions(5, 2.0)
    stack = np.concatenate([hu, hu[2:3] + 7])  # slice 2 sent twice, second copy differs
    write_ct_series(tmp_path, stack, spacing=(2.0, 1.0, 1.0), positions=np.vstack([pos, pos[2:3]]))
    v = load_series(tmp_path)
    assert "duplicates" in _codes(v)
    assert np.array_equal(v.array, hu)  # the lower InstanceNumber wins


def test_non_uniform_spacing_resampled(tmp_path: Path) -> None:
    hu = phantom((5, 12, 12))
    z = np.array([0.0, 2.0, 4.0, 5.5, 8.0])
    pos = np.column_stack([np.zeros(5), np.zeros(5), z])
    write_ct_series(tmp_path, hu, spacing=(2.0, 1.0, 1.0), positions=pos)
    v = load_series(tmp_path)
    assert "non-uniform-spacing" in _codes(v)
    assert v.spacing[0] == pytest.approx(2.0)
    assert v.shape[0] == 5
    # grid z = 6.0 lies between 5.5 and 8.0 at 20 %
    expected = np.rint(0.8 * hu[3].astype(float) + 0.2 * hu[4])
    assert np.array_equal(v.array[3], expected)


def test_separate_stack_split_off_largest_run_loaded(tmp_path: Path) -> None:
    hu = phantom((6, 8, 8))
    z = np.array([0.0, 1.25, 2.5, 3.75, 200.0, 201.25])  # two stacks 200 mm apart under one UID
    pos = np.column_stack([np.zeros(6), np.zeros(6), z])
    write_ct_series(tmp_path, hu, spacing=(1.25, 1.0, 1.0), positions=pos)
    v = load_series(tmp_path)
    assert "split-stack" in _codes(v)
    assert np.array_equal(v.array, hu[:4])
    assert v.spacing[0] == pytest.approx(1.25)


def test_scattered_positions_refused_with_reason(tmp_path: Path) -> None:
    z = np.array([0.0, 0.3, 3.0, 3.2, 9.0, 9.1, 17.0, 17.1])  # pairs far apart: no stack
    pos = np.column_stack([np.zeros(8), np.zeros(8), z])
    write_ct_series(tmp_path, phantom((8, 8, 8)), positions=pos)
    with pytest.raises(SeriesLoadError, match="too irregular"):
        load_series(tmp_path)


def test_gantry_tilt_corrected_onto_orthogonal_grid(tmp_path: Path) -> None:
    # a bright column in x-z at fixed LPS y: after correction it must sit at
    # the same row index in every slice
    n, ny, nx = 6, 40, 8
    tilt = 20.0
    sz, sy = 2.0, 1.0
    hu = np.full((n, ny, nx), -1000, np.int16)
    pos = slice_positions(n, sz, (0.0, 0.0, 0.0), tilt_deg=tilt)
    for k in range(n):
        row = int(round(10 - pos[k][1] / sy))  # LPS y = 10 mm, in slice k's own rows
        hu[k, row, :] = 500
    write_ct_series(tmp_path, hu, spacing=(sz, sy, 1.0), positions=pos, tilt_deg=tilt)
    v = load_series(tmp_path)
    assert "gantry-tilt" in _codes(v)
    assert any("20.0°" in w.message for w in v.warnings)
    assert np.allclose(v.direction, np.eye(3))
    assert v.spacing[0] == pytest.approx(sz)
    for k in range(n):
        assert int(np.argmax(v.array[k, :, 3])) == 10, k
    assert np.allclose(v.voxel_to_lps((3, 10, 0))[1], 10.0)


def test_per_slice_rescale_applied_per_slice(tmp_path: Path) -> None:
    hu = phantom((4, 10, 10))
    rescales = [(1.0, -1024.0), (1.0, -1000.0), (2.0, -2048.0), (1.0, -1024.0)]
    write_ct_series(tmp_path, hu, per_slice_rescale=rescales)
    v = load_series(tmp_path)
    expected = hu.copy()
    expected[2] = np.round((hu[2] + 2048.0) / 2.0) * 2 - 2048  # slope 2 stores even HU only
    assert np.array_equal(v.array, expected)
    assert not np.array_equal(v.array[1:2], hu[1:2] - 24)  # not the first slice's intercept


def test_fractional_slope_gives_float32(tmp_path: Path) -> None:
    hu = phantom((3, 10, 10))
    write_ct_series(tmp_path, hu, rescale=(0.5, -1024.0))
    v = load_series(tmp_path)
    assert v.array.dtype == np.float32
    assert np.allclose(v.array, hu)


def test_values_beyond_int16_switch_to_float32(tmp_path: Path) -> None:
    hu = np.full((2, 8, 8), 100, np.int16)
    write_ct_series(tmp_path, hu, rescale=(1.0, 0.0))
    files = sorted(tmp_path.iterdir())
    import pydicom

    ds = pydicom.dcmread(files[0])
    ds.RescaleIntercept = 40000  # e.g. a parametric map; still integral
    ds.save_as(files[0])
    v = load_series(tmp_path)
    assert v.array.dtype == np.float32
    assert sorted(np.unique(v.array).tolist()) == [100.0, 40100.0]


@pytest.mark.parametrize("ts", [RLELossless, JPEGLSLossless, ImplicitVRLittleEndian], ids=["rle", "jpegls", "implicit"])
def test_compressed_and_implicit_equal_uncompressed(tmp_path: Path, ts: str) -> None:
    hu = phantom((4, 16, 20))
    write_ct_series(tmp_path / "plain", hu, seed=1)
    write_ct_series(tmp_path / "other", hu, transfer_syntax=ts, seed=1)
    a, b = load_series(tmp_path / "plain"), load_series(tmp_path / "other")
    assert np.array_equal(a.array, b.array)
    assert np.array_equal(b.array, hu)
    assert a.origin == b.origin and a.spacing == b.spacing


def test_enhanced_multiframe_sorted_by_functional_groups(tmp_path: Path) -> None:
    hu = phantom((6, 12, 14))
    f = write_enhanced_ct(tmp_path / "enh.dcm", hu, spacing=(2.0, 0.8, 0.7), origin=(-10.0, -10.0, 20.0))
    v = load_series(f)
    assert np.array_equal(v.array, hu)  # frames stored reversed; sorted back
    assert v.spacing == pytest.approx((2.0, 0.8, 0.7))
    assert np.allclose(v.origin, (-10.0, -10.0, 20.0))
    assert v.series is not None and v.series.number_of_frames == 6


def test_2d_radiograph_loads_as_one_slice(tmp_path: Path) -> None:
    img = (np.arange(30 * 20).reshape(30, 20) % 4000).astype(np.uint16)
    f = write_2d_image(tmp_path / "cxr.dcm", img, pixel_spacing=(0.15, 0.15))
    v = load_series(f)
    assert v.shape == (1, 30, 20)
    assert np.array_equal(v.array[0], img)
    assert v.spacing[1:] == pytest.approx((0.15, 0.15))
    assert {"no-geometry", "imager-spacing"} <= _codes(v)


def test_mr_series_loads(tmp_path: Path) -> None:
    img = np.random.default_rng(3).integers(0, 3000, (5, 12, 12)).astype(np.int16)
    write_ct_series(tmp_path, img, modality="MR", rescale=None)
    v = load_series(tmp_path)
    assert v.series is not None and v.series.modality == "MR"
    assert np.array_equal(v.array, img)


def test_two_series_in_a_folder_largest_taken_with_warning(tmp_path: Path) -> None:
    write_ct_series(tmp_path, phantom((3, 8, 8)), series_description="small", name_prefix="a")
    big = phantom((6, 8, 8), seed=2)
    uid = "1.2.826.0.1.3680043.8.498.1"
    write_ct_series(tmp_path, big, series_description="big", series_uid=uid, name_prefix="b")
    v = load_series(tmp_path)
    assert "several-series" in _codes(v)
    assert np.array_equal(v.array, big)
    other = scan(tmp_path).series
    small_uid = next(s.series_instance_uid for s in other if s.description == "small")
    assert load_series(tmp_path, series_uid=small_uid).shape == (3, 8, 8)
    with pytest.raises(NoUsableSeriesError, match="not found"):
        load_series(tmp_path, series_uid="1.2.3.4")


def test_mixed_sizes_in_one_uid_split_and_largest_loaded(tmp_path: Path) -> None:
    uid = "1.2.826.0.1.3680043.8.498.2"
    study = "1.2.826.0.1.3680043.8.498.3"
    write_ct_series(tmp_path, phantom((5, 16, 16)), series_uid=uid, study_uid=study, name_prefix="ax")
    write_ct_series(tmp_path, phantom((1, 12, 20)), series_uid=uid, study_uid=study, name_prefix="scout")
    parts = scan(tmp_path).series
    assert len(parts) == 2 and all(p.series_instance_uid == uid for p in parts)
    assert all("part" in p.description for p in parts)
    v = load_series(tmp_path, series_uid=uid)
    assert v.shape == (5, 16, 16)
    assert "sub-series" in _codes(v)
    small = next(p for p in parts if p.rows == 12)
    assert load_series(small).shape == (1, 12, 20)


def test_bad_files_beside_a_series_do_not_stop_loading(tmp_path: Path) -> None:
    hu = phantom((4, 10, 10))
    write_ct_series(tmp_path, hu)
    write_zero_byte(tmp_path / "empty.dcm")
    write_random_binary(tmp_path / "noise.dcm")
    (tmp_path / "notes.txt").write_text("hello")
    v = load_series(tmp_path)
    assert np.array_equal(v.array, hu)


def test_nothing_loadable_raises_typed_error(tmp_path: Path) -> None:
    write_random_binary(tmp_path / "noise.dcm")
    with pytest.raises(NoUsableSeriesError) as e:
        load_series(tmp_path / "noise.dcm")
    assert "noise.dcm" in e.value.one_line() and "not a DICOM file" in e.value.one_line()
    with pytest.raises(NoUsableSeriesError):
        load_series(tmp_path / "missing")


def test_cancel_and_progress(tmp_path: Path) -> None:
    write_ct_series(tmp_path, phantom((6, 8, 8)))
    seen: list[float] = []
    load_series(tmp_path, progress=lambda p: seen.append(p.fraction))
    assert seen and seen[-1] == pytest.approx(1.0) and seen == sorted(seen)
    calls = {"n": 0}

    def cancel() -> bool:
        calls["n"] += 1
        return calls["n"] > 2

    with pytest.raises(CancelledError):
        load_series(tmp_path, cancel=cancel)


def test_float_pixel_data_loads_as_float32(tmp_path: Path) -> None:
    import pydicom

    f = write_ct_series(tmp_path, np.zeros((1, 6, 5)), rescale=None, modality="MR")[0]
    ds = pydicom.dcmread(f)
    del ds.PixelData
    for kw in ("BitsStored", "HighBit", "PixelRepresentation"):
        delattr(ds, kw)
    ds.BitsAllocated = 32
    vals = np.linspace(-1.5, 2.5, 30, dtype=np.float32).reshape(6, 5)  # e.g. an ADC or parametric map
    ds.FloatPixelData = vals.tobytes()
    ds.save_as(f)
    assert scan(tmp_path).series[0].rows == 6
    v = load_series(f)
    assert v.array.dtype == np.float32 and np.array_equal(v.array[0], vals)


def test_pet_per_slice_float_slopes(tmp_path: Path) -> None:
    # PET stores counts with a different float slope per slice (SUV-ready Bq/ml)
    rng = np.random.default_rng(5)
    activity = rng.uniform(0, 1500, (4, 8, 8))
    slopes = [0.37, 1.9, 0.05, 0.8]
    stored = [np.round(activity[k] / slopes[k]) for k in range(4)]
    values = np.stack([stored[k] * slopes[k] for k in range(4)])
    write_ct_series(tmp_path, values, modality="PT", per_slice_rescale=[(s, 0.0) for s in slopes])
    v = load_series(tmp_path)
    assert v.array.dtype == np.float32
    assert np.allclose(v.array, values, rtol=1e-6, atol=1e-3)
