"""NIfTI label maps and volumes in the CT's own geometry.

Why SimpleITK writes them: NIfTI stores RAS, DICOM and clinview use LPS.
SimpleITK converts between the two when it writes and reads ``.nii.gz``, so a
label map written from a :class:`~inference.types.Volume` and read back by
SimpleITK (3D Slicer, ITK-SNAP, MONAI's ITK reader) lands on the same voxels
at the same LPS positions. Doing that flip by hand is the classic source of
left-right mirrored masks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from inference.errors import InputError
from inference.types import Volume

__all__ = ["write_label_map", "write_volume", "read_label_map", "volume_to_sitk"]

_GEOM_TOL = 1e-3


def volume_to_sitk(array: np.ndarray, volume: Volume):  # -> SimpleITK.Image
    """An ``sitk.Image`` of ``array`` (z, y, x) with ``volume``'s geometry."""
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.ascontiguousarray(array))
    sz, sy, sx = volume.spacing
    img.SetSpacing((float(sx), float(sy), float(sz)))
    img.SetOrigin(tuple(float(v) for v in volume.origin))
    img.SetDirection(tuple(float(v) for v in np.asarray(volume.direction, float).ravel()))
    return img


def write_label_map(path: str | Path, labels: np.ndarray, volume: Volume) -> None:
    """Write a label map aligned with ``volume``.

    Parameters
    ----------
    path
        ``.nii.gz`` (or ``.nii``, ``.nrrd``: whatever SimpleITK writes).
    labels
        Integer array with ``volume``'s shape; stored as uint8 when the labels
        fit, else uint16 (viewers and MONAI expect unsigned integer labels).

    Raises
    ------
    ValueError
        Shape mismatch or labels outside 0..65535.
    """
    import SimpleITK as sitk

    lab = np.asarray(labels)
    if lab.shape != volume.array.shape:
        raise ValueError(f"label shape {lab.shape} does not match volume {volume.array.shape}")
    if lab.size and (lab.min() < 0 or lab.max() > 65535):
        raise ValueError("labels must lie in 0..65535")
    dtype = np.uint8 if (lab.size == 0 or lab.max() <= 255) else np.uint16
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(volume_to_sitk(lab.astype(dtype, copy=False), volume), str(path), useCompression=True)


def write_volume(path: str | Path, volume: Volume) -> None:
    """Write the volume itself (HU as stored: int16 or float32)."""
    import SimpleITK as sitk

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(volume_to_sitk(volume.array, volume), str(path), useCompression=True)


def read_label_map(path: str | Path, volume: Volume) -> np.ndarray:
    """Read a label map and return it as a ``(z, y, x)`` array on
    ``volume``'s grid.

    When the file's grid equals the volume's (within 1e-3 mm / 1e-3 in the
    direction cosines) the voxels are returned as stored; otherwise the map is
    resampled onto the volume with nearest neighbour, so a mask made on
    another grid of the same patient still overlays correctly.

    Raises
    ------
    InputError
        The file cannot be read as an image.
    """
    import SimpleITK as sitk

    p = Path(path)
    try:
        img = sitk.ReadImage(str(p))
    except RuntimeError as e:
        raise InputError(f"cannot read label map: {str(e).strip().splitlines()[-1] if str(e).strip() else e}", where=str(p)) from e
    if img.GetNumberOfComponentsPerPixel() != 1 or img.GetDimension() != 3:
        raise InputError("label map must be a 3D single-component image", where=str(p))
    ref = volume_to_sitk(np.zeros((1, 1, 1), np.uint8), volume)
    same = (
        tuple(img.GetSize()) == tuple(int(n) for n in volume.array.shape[::-1])
        and np.allclose(img.GetSpacing(), volume.spacing[::-1], atol=_GEOM_TOL)
        and np.allclose(img.GetOrigin(), volume.origin, atol=_GEOM_TOL)
        and np.allclose(img.GetDirection(), ref.GetDirection(), atol=_GEOM_TOL)
    )
    if not same:
        target = volume_to_sitk(np.zeros(volume.array.shape, np.uint8), volume)
        img = sitk.Resample(img, target, sitk.Transform(), sitk.sitkNearestNeighbor, 0, img.GetPixelID())
    arr = sitk.GetArrayFromImage(img)
    if arr.dtype.kind == "f":
        arr = np.rint(arr)
    if arr.size and arr.min() >= 0 and arr.max() <= 255:
        return arr.astype(np.uint8, copy=False)
    if arr.size and arr.min() >= 0 and arr.max() <= 65535:
        return arr.astype(np.uint16, copy=False)
    return arr.astype(np.int32, copy=False)
