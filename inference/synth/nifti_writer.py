"""NIfTI export of a phantom for fast training: image, nodule labels, lung labels.

Why NIfTI beside DICOM: a training loop reads thousands of volumes, and one
compressed file per array is an order of magnitude faster to read than a
DICOM series. SimpleITK writes the LPS geometry into the NIfTI qform/sform
(converting to RAS as the format requires), so reading it back with
SimpleITK gives the same origin, spacing and direction.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

__all__ = ["write_nifti", "NIFTI_FILES"]

#: File names written by :func:`write_nifti`.
NIFTI_FILES = {"image": "image.nii.gz", "nodules": "nodules.nii.gz", "lungs": "lungs.nii.gz", "records": "nodules.json"}


def _image(arr: np.ndarray, ph: object):  # type: ignore[no-untyped-def]
    import SimpleITK as sitk

    im = sitk.GetImageFromArray(arr)
    sz, sy, sx = ph.spacing  # type: ignore[attr-defined]
    im.SetSpacing((float(sx), float(sy), float(sz)))
    im.SetOrigin(tuple(float(v) for v in ph.origin))  # type: ignore[attr-defined]
    im.SetDirection(tuple(float(v) for v in np.asarray(ph.direction, float).reshape(-1)))  # type: ignore[attr-defined]
    return im


def write_nifti(phantom: object, out_dir: str | Path, *, compress: bool = True) -> dict[str, Path]:
    """Write ``image`` (int16 HU), ``nodules`` (uint16 ids), ``lungs`` (uint8)
    and the nodule records (JSON) into ``out_dir``.

    Parameters
    ----------
    phantom
        A :class:`inference.synth.phantom.Phantom`.
    out_dir
        Folder (created).
    compress
        gzip the NIfTI files (smaller; slightly slower to write).

    Returns
    -------
    dict[str, pathlib.Path]
        Paths by key (see :data:`NIFTI_FILES`).
    """
    import SimpleITK as sitk

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for key, arr in (("image", phantom.hu), ("nodules", phantom.nodules), ("lungs", phantom.lungs)):  # type: ignore[attr-defined]
        name = NIFTI_FILES[key] if compress else NIFTI_FILES[key].removesuffix(".gz")
        p = out / name
        sitk.WriteImage(_image(np.ascontiguousarray(arr), phantom), str(p), useCompression=compress)
        paths[key] = p
    rec = out / NIFTI_FILES["records"]
    rec.write_text(json.dumps([r.to_dict() for r in phantom.records], indent=1))  # type: ignore[attr-defined]
    paths["records"] = rec
    return paths
