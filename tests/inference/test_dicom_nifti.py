"""Label maps written next to a CT land on the same voxels and LPS positions
when read back by SimpleITK, nibabel (RAS) or read_label_map."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from inference.errors import InputError
from inference.io.dicom_series import load_series
from inference.io.nifti import read_label_map, write_label_map, write_volume
from tests.dicomgen import phantom, write_ct_series

ROT = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])  # a sagittal-ish acquisition


@pytest.fixture
def volume(tmp_path: Path):
    write_ct_series(tmp_path / "ct", phantom((5, 12, 10)), spacing=(2.0, 0.8, 0.6), origin=(30.0, -20.0, 7.0), direction=ROT)
    return load_series(tmp_path / "ct")


def test_label_map_round_trip_and_lps_positions(tmp_path: Path, volume) -> None:
    labels = np.zeros(volume.shape, np.uint8)
    labels[3, 7, 2] = 5  # one marked voxel, asymmetric in every axis
    p = tmp_path / "nod.nii.gz"
    write_label_map(p, labels, volume)
    back = read_label_map(p, volume)
    assert back.dtype == np.uint8 and np.array_equal(back, labels)
    # SimpleITK puts the voxel at the same LPS point as the Volume does
    img = sitk.ReadImage(str(p))
    idx = np.argwhere(sitk.GetArrayFromImage(img) == 5)[0]  # (z, y, x)
    lps = img.TransformIndexToPhysicalPoint([int(i) for i in idx[::-1]])
    assert np.allclose(lps, volume.voxel_to_lps((3, 7, 2)), atol=1e-3)
    # nibabel reads RAS: x and y negated
    nimg = nib.load(str(p))
    ijk = np.argwhere(np.asarray(nimg.dataobj) == 5)[0]  # nibabel order (i, j, k)
    ras = nimg.affine @ np.r_[ijk, 1.0]
    assert np.allclose(ras[:3] * [-1, -1, 1], volume.voxel_to_lps((3, 7, 2)), atol=1e-3)


def test_uint16_labels_and_bad_shapes(tmp_path: Path, volume) -> None:
    labels = np.zeros(volume.shape, np.int32)
    labels[0, 0, 0] = 300
    write_label_map(tmp_path / "many.nii.gz", labels, volume)
    back = read_label_map(tmp_path / "many.nii.gz", volume)
    assert back.dtype == np.uint16 and back[0, 0, 0] == 300
    with pytest.raises(ValueError):
        write_label_map(tmp_path / "bad.nii.gz", np.zeros((1, 2, 3), np.uint8), volume)


def test_label_map_on_other_grid_is_resampled(tmp_path: Path, volume) -> None:
    # the same patient space at half the in-plane resolution
    arr = np.zeros((5, 6, 5), np.uint8)
    arr[2, 3, 1] = 1
    coarse = sitk.GetImageFromArray(arr)
    coarse.SetSpacing((1.2, 1.6, 2.0))
    coarse.SetOrigin(volume.origin)
    coarse.SetDirection(tuple(np.asarray(volume.direction).ravel()))
    sitk.WriteImage(coarse, str(tmp_path / "coarse.nii.gz"))
    out = read_label_map(tmp_path / "coarse.nii.gz", volume)
    assert out.shape == volume.shape
    hit = np.argwhere(out == 1)
    assert len(hit) == 4  # one coarse voxel = 2x2 fine voxels
    centre = volume.voxel_to_lps(hit.mean(axis=0))
    expected = np.asarray(volume.origin) + np.asarray(volume.direction) @ np.array([1 * 1.2, 3 * 1.6, 2 * 2.0])
    assert np.allclose(centre, expected, atol=0.5)


def test_write_volume_keeps_hu(tmp_path: Path, volume) -> None:
    write_volume(tmp_path / "ct.nii.gz", volume)
    img = sitk.ReadImage(str(tmp_path / "ct.nii.gz"))
    assert np.array_equal(sitk.GetArrayFromImage(img), volume.array)
    assert np.allclose(img.GetOrigin(), volume.origin, atol=1e-4)


def test_unreadable_label_map_is_typed_error(tmp_path: Path, volume) -> None:
    p = tmp_path / "x.nii.gz"
    p.write_bytes(b"not a nifti")
    with pytest.raises(InputError):
        read_label_map(p, volume)
