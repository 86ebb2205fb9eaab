"""The real CT (Lung-PET-CT-Dx A0001): the annotated tumour is found and
segmented in both reconstructions, and the two kernels agree."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="module")
def results(real_ct_dir: Path):
    from inference.models.nodule_eval import read_voc_boxes
    from inference.pipeline.analyze import _scan_and_load
    from inference.pipeline.imaging import run_imaging

    out = {}
    for sub in ("ct-lung-kernel", "ct-soft-kernel"):
        d = real_ct_dir / sub
        vol, _, _ = _scan_and_load(d, None, None, None)
        boxes = read_voc_boxes(real_ct_dir / "annotations", sorted(p for p in d.iterdir() if p.is_file()), vol)
        out[sub] = (vol, boxes, run_imaging(vol, device="cpu"))
    return out


def _tumour(vol, boxes, res):
    from inference.models.nodule_eval import _in_boxes

    return next((n for n in res.nodules if _in_boxes(n["center_voxel_zyx"], boxes)), None)


@pytest.mark.slow
@pytest.mark.shared
@pytest.mark.parametrize("kernel", ["ct-lung-kernel", "ct-soft-kernel"])
def test_annotated_tumour_is_found_in_its_lung_without_false_positives_elsewhere(results, kernel: str) -> None:
    vol, boxes, res = results[kernel]
    t = _tumour(vol, boxes, res)
    assert t is not None, f"no finding centred in an annotated box; findings at {[n['center_voxel_zyx'] for n in res.nodules]}"
    assert t["location"]["side"] == "left" and t["location"]["upper_lobe"]
    # every other finding lies next to the tumour (its parts), none in the right lung
    assert all(n["location"]["side"] == "left" for n in res.nodules)


@pytest.mark.slow
@pytest.mark.shared
@pytest.mark.parametrize("kernel", ["ct-lung-kernel", "ct-soft-kernel"])
def test_annotated_tumour_is_segmented_as_one_mass(results, kernel: str) -> None:
    vol, boxes, res = results[kernel]
    t = _tumour(vol, boxes, res)
    assert t is not None
    m = res.nodule_labels == t["id"]
    # segmented: the mask covers a good part of the dense tissue in every annotated box
    cov = []
    for k, y0, x0, y1, x1 in boxes:
        dense = vol.array[k, y0 : y1 + 1, x0 : x1 + 1] > -300
        cov.append(float(m[k, y0 : y1 + 1, x0 : x1 + 1][dense].mean()))
    assert np.median(cov) > 0.5
    assert t["mean_diameter_mm"] > 30  # a large mass, not a vessel fragment
    # the final lung map holds the whole tumour (run_imaging adds nodule voxels)
    assert (res.lung_labels[m] == 2).all()


@pytest.mark.slow
@pytest.mark.shared
def test_two_kernels_give_the_same_tumour(results) -> None:
    (va, ba, ra), (vb, bb, rb) = results["ct-lung-kernel"], results["ct-soft-kernel"]
    ta, tb = _tumour(va, ba, ra), _tumour(vb, bb, rb)
    assert ta is not None and tb is not None
    assert np.linalg.norm(np.array(ta["center_lps_mm"]) - np.array(tb["center_lps_mm"])) < 10
    assert abs(ta["volume_mm3"] - tb["volume_mm3"]) / max(ta["volume_mm3"], tb["volume_mm3"]) < 0.25
