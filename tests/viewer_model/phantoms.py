"""In-memory CT phantoms for viewer tests (no DICOM needed).

A 20 mm sphere of soft tissue (+40 HU) in lung-like background (-800 HU) with
anisotropic voxels, so that every measurement that forgets the spacing is off
by a factor of 3.6 and fails loudly.
"""

from __future__ import annotations

from datetime import date

import numpy as np

from inference.types import PatientInfo, SeriesInfo, StudyInfo, Volume

__all__ = ["sphere_volume", "SPHERE_DIAMETER_MM"]

SPHERE_DIAMETER_MM = 20.0


def sphere_volume(shape: tuple[int, int, int] = (41, 97, 97), spacing: tuple[float, float, float] = (2.5, 0.7, 0.7),
                  centre_zyx: tuple[float, float, float] | None = None, diameter_mm: float = SPHERE_DIAMETER_MM,
                  uid: str = "1.2.826.0.1.3680043.8.498.1", direction: np.ndarray | None = None) -> Volume:
    """A sphere of ``diameter_mm`` at ``centre_zyx`` (voxel index; default the
    middle of the grid), with a gradient along z so slices differ."""
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    c = [(n - 1) / 2 for n in shape] if centre_zyx is None else centre_zyx
    r2 = ((z - c[0]) * spacing[0]) ** 2 + ((y - c[1]) * spacing[1]) ** 2 + ((x - c[2]) * spacing[2]) ** 2
    arr = np.full(shape, -800, np.int16) + (z * 2).astype(np.int16)
    arr[r2 <= (diameter_mm / 2) ** 2] = 40
    series = SeriesInfo(
        series_instance_uid=uid, modality="CT",
        patient=PatientInfo(patient_id="PHANTOM-1", name="Phantom^Sphere", sex="O", birth_date=date(1960, 1, 1)),
        study=StudyInfo(study_instance_uid=uid + ".0", date=date(2026, 1, 1), description="CT CHEST"),
        description="sphere 20 mm", series_number=3,
    )
    return Volume(array=arr, spacing=spacing, origin=(-30.0, -40.0, -50.0),
                  direction=np.eye(3) if direction is None else direction, series=series)
