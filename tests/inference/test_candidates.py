"""Training-free nodule candidates: blobs are found, vessels are not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage as ndi

from inference.pipeline.candidates import CandidateResult, detect_nodules_classical
from inference.types import Volume

SPACING = (1.0, 0.8, 0.8)
SHAPE = (72, 100, 100)


def _grid() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    z, y, x = np.meshgrid(*(np.arange(n) * s for n, s in zip(SHAPE, SPACING)), indexing="ij")
    return z, y, x


def _lung_volume(seed: int, objects: list[tuple[str, tuple[float, float, float], float, float]]) -> tuple[Volume, np.ndarray]:
    """A lung-like box: -860 HU parenchyma with noise inside soft tissue.

    ``objects``: ``(kind, centre_mm_zyx, diameter_mm, hu)`` with kind
    ``"sphere"`` or ``"tube_x"`` (a vessel along x through the whole lung).
    Blurred by the scanner's point spread (sigma 0.6 mm) before noise.
    """
    z, y, x = _grid()
    hu = np.full(SHAPE, 40.0)
    lung = np.zeros(SHAPE, np.uint8)
    lung[4:-4, 6:-6, 6:-6] = 1
    hu[lung > 0] = -860.0
    for kind, (cz, cy, cx), d, v in objects:
        if kind == "sphere":
            inside = (z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2 <= (d / 2) ** 2
        else:
            inside = ((z - cz) ** 2 + (y - cy) ** 2 <= (d / 2) ** 2) & (lung > 0)
        hu[inside] = v
    hu = ndi.gaussian_filter(hu, [0.6 / s for s in SPACING])
    hu += np.random.default_rng(seed).normal(0, 25, SHAPE)
    vol = Volume(array=hu.round().astype(np.int16), spacing=SPACING, origin=(0.0, 0.0, 0.0), direction=np.eye(3))
    return vol, lung


def _centres_mm(res: CandidateResult) -> list[np.ndarray]:
    n = int(res.labels.max())
    return [np.array(c) * SPACING for c in ndi.center_of_mass(res.labels > 0, res.labels, range(1, n + 1))]


def _check_result(res: CandidateResult, shape: tuple[int, ...]) -> None:
    assert res.labels.shape == shape and res.labels.dtype == np.uint16
    n = int(res.labels.max())
    assert sorted(np.unique(res.labels[res.labels > 0]).tolist()) == list(range(1, n + 1))
    assert len(res.probabilities) == n and all(0.0 <= p <= 1.0 for p in res.probabilities)
    sizes = [int((res.labels == i).sum()) for i in range(1, n + 1)]
    assert sizes == sorted(sizes, reverse=True)


def test_solid_sphere_is_found_and_the_adjacent_vessel_is_not() -> None:
    sphere_c = (36.0, 40.0, 40.0)
    vol, lung = _lung_volume(1, [("sphere", sphere_c, 8.0, 30.0), ("tube_x", (36.0, 52.0, 0.0), 4.0, 30.0)])
    res = detect_nodules_classical(vol, lung)
    _check_result(res, vol.shape)
    cents = _centres_mm(res)
    near = [c for c in cents if np.linalg.norm(c - sphere_c) < 3.0]
    assert len(near) == 1, cents
    # nothing centred on the vessel (y = 52 mm, z = 36 mm) away from the sphere
    on_tube = [c for c in cents if abs(c[1] - 52.0) < 4 and abs(c[0] - 36.0) < 4 and abs(c[2] - 40.0) > 8]
    assert not on_tube, cents
    # the segmentation is the sphere's size (8 mm -> 268 mm^3), not sphere + vessel
    j = int(np.argmin([np.linalg.norm(c - sphere_c) for c in cents])) + 1
    vol_mm3 = float((res.labels == j).sum() * np.prod(SPACING))
    assert 150 < vol_mm3 < 420, vol_mm3


def test_ground_glass_sphere_is_found() -> None:
    c0 = (36.0, 40.0, 44.0)
    vol, lung = _lung_volume(2, [("sphere", c0, 12.0, -600.0)])
    res = detect_nodules_classical(vol, lung)
    _check_result(res, vol.shape)
    cents = _centres_mm(res)
    assert any(np.linalg.norm(c - c0) < 3.0 for c in cents), cents
    j = int(np.argmin([np.linalg.norm(c - c0) for c in cents])) + 1
    d_eq = (6 * (res.labels == j).sum() * np.prod(SPACING) / np.pi) ** (1 / 3)
    assert 9.0 < d_eq < 15.0


def test_empty_lung_gives_no_detections_and_missing_mask_a_warning() -> None:
    vol, lung = _lung_volume(3, [])
    res = detect_nodules_classical(vol, lung)
    _check_result(res, vol.shape)
    assert res.labels.max() == 0 and res.probabilities == []
    none = detect_nodules_classical(vol, np.zeros_like(lung))
    assert none.labels.max() == 0 and len(none.warnings) == 1


@pytest.mark.slow
@pytest.mark.shared
@pytest.mark.parametrize(
    "kernel",
    [
        "ct-lung-kernel",
        pytest.param(
            "ct-soft-kernel",
            marks=pytest.mark.xfail(
                strict=False,
                reason="known limitation: on the soft kernel the tumour's mask merges with hilar tissue above it, "
                "so its centre lies ~4 slices above the annotated boxes",
            ),
        ),
    ],
)
def test_real_ct_tumour_box_contains_a_detection_centre(real_ct_dir: Path, kernel: str) -> None:
    from benchmarks.eval_candidates import read_boxes
    from inference.api import load_series
    from inference.pipeline.lungs import segment_lungs

    d = real_ct_dir / kernel
    vol = load_series(d)
    boxes = read_boxes(real_ct_dir / "annotations", sorted(p for p in d.iterdir() if p.is_file()), vol)
    assert boxes
    res = detect_nodules_classical(vol, segment_lungs(vol))
    n = int(res.labels.max())
    cents = ndi.center_of_mass(res.labels > 0, res.labels, range(1, n + 1)) if n else []
    inside = [c for c in cents if any(abs(c[0] - k) <= 1 and y0 <= c[1] <= y1 and x0 <= c[2] <= x1 for k, y0, x0, y1, x1 in boxes)]
    assert inside, cents
