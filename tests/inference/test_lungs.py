"""Lung masks on the real CT (both kernels) and on synthetic geometry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage as ndi

from inference.pipeline.lungs import lung_volumes_ml, segment_lungs
from inference.types import Volume


@pytest.fixture(scope="module", params=["ct-lung-kernel", "ct-soft-kernel"])
def real(request, real_ct_dir: Path):
    from inference.models.nodule_eval import read_voc_boxes
    from inference.pipeline.analyze import _scan_and_load

    d = real_ct_dir / request.param
    vol, _, _ = _scan_and_load(d, None, None, None)
    boxes = read_voc_boxes(real_ct_dir / "annotations", sorted(p for p in d.iterdir() if p.is_file()), vol)
    return vol, segment_lungs(vol), boxes


@pytest.mark.shared
def test_real_ct_two_lungs_of_plausible_volume_right_at_smaller_x(real) -> None:
    vol, lab, _ = real
    assert lab.dtype == np.uint8 and lab.shape == vol.shape
    right, left = lung_volumes_ml(lab, vol.spacing)
    assert 1500 < right < 5000 and 1200 < left < 5000
    xr = vol.voxel_to_lps(np.argwhere(lab == 1).mean(0))[0]
    xl = vol.voxel_to_lps(np.argwhere(lab == 2).mean(0))[0]
    assert xr < xl  # LPS: +x is the patient's left


@pytest.mark.shared
def test_real_ct_tumour_side_is_left_and_its_lung_facing_part_is_kept(real) -> None:
    """The threshold mask keeps the part of the mass that bulges into aerated
    lung (closing); the part against the spine is added by run_imaging from
    the nodule segmentation (tests/integration/test_real_ct_ai.py)."""
    vol, lab, boxes = real
    assert len(boxes) >= 8
    kept = []
    for k, y0, x0, y1, x1 in boxes:
        box_lab = lab[k, y0 : y1 + 1, x0 : x1 + 1]
        dense = vol.array[k, y0 : y1 + 1, x0 : x1 + 1] > -300
        assert not (box_lab == 1).any(), "tumour box must not touch the right lung"
        kept.append(float((box_lab[dense] == 2).mean()))
    # dense tumour tissue inside the left-lung mask on the annotated slices
    assert np.median(kept) > 0.2


@pytest.mark.shared
def test_real_ct_trachea_and_outside_air_are_excluded(real) -> None:
    vol, lab, _ = real
    hu = vol.array
    # trachea: the central air column in the topmost slices (head at high LPS z)
    top = int(np.argmax([vol.voxel_to_lps([k, 0, 0])[2] for k in range(vol.shape[0])]))
    ny, nx = hu.shape[1:]
    centre = hu[top, ny // 2 - 80 : ny // 2 + 40, nx // 2 - 40 : nx // 2 + 40] < -900
    assert centre.sum() > 50, "expected the trachea in the top slice"
    assert not lab[top, ny // 2 - 80 : ny // 2 + 40, nx // 2 - 40 : nx // 2 + 40][centre].any()
    # outside air: everything below -900 HU connected to the slice border
    outside = np.zeros_like(lab, bool)
    for k in range(vol.shape[0]):
        lab2, _ = ndi.label(hu[k] < -900)
        border = np.unique(np.concatenate([lab2[0], lab2[-1], lab2[:, 0], lab2[:, -1]]))
        outside[k] = np.isin(lab2, border[border > 0])
    assert not (lab.astype(bool) & outside).any()


@pytest.mark.shared
def test_real_ct_gas_below_the_lungs_is_not_lung(real) -> None:
    vol, lab, _ = real
    # the lowest slice holds liver/stomach; any air there below -900 HU is bowel/stomach gas
    low = int(np.argmin([vol.voxel_to_lps([k, 0, 0])[2] for k in range(vol.shape[0])]))
    gas = vol.array[low] < -900
    lab2, _ = ndi.label(gas)
    border = np.unique(np.concatenate([lab2[0], lab2[-1], lab2[:, 0], lab2[:, -1]]))
    inner_gas = gas & ~np.isin(lab2, border[border > 0])
    assert not (lab[low].astype(bool) & inner_gas).any()


def test_synthetic_chest_sides_follow_lps_not_array_order() -> None:
    from inference.models.nodule_data import simple_chest

    c = simple_chest(11, spacing=(2.5, 1.0, 1.0), n_nodules=0)
    hu = np.round(c.hu).astype(np.int16)
    # x index axis pointing to patient RIGHT (-x): array left/right is mirrored
    flipped = Volume(array=hu, spacing=c.spacing, origin=(0.0, 0.0, 0.0), direction=np.diag([-1.0, 1.0, 1.0]))
    normal = Volume(array=hu, spacing=c.spacing, origin=(0.0, 0.0, 0.0), direction=np.eye(3))
    a, b = segment_lungs(normal), segment_lungs(flipped)
    assert set(np.unique(a)) == {0, 1, 2}
    assert np.array_equal(a == 1, b == 2) and np.array_equal(a == 2, b == 1)
    # agrees with the phantom's own lungs
    truth = c.lungs > 0
    dice = 2 * (truth & (a > 0)).sum() / (truth.sum() + (a > 0).sum())
    assert dice > 0.9


def test_no_lungs_gives_an_empty_mask() -> None:
    hu = np.full((10, 64, 64), 40, np.int16)
    v = Volume(array=hu, spacing=(2.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0), direction=np.eye(3))
    assert not segment_lungs(v).any()


def test_lungs_cut_by_a_narrow_field_of_view_are_still_found() -> None:
    """A reconstruction field narrower than the patient clips the chest wall:
    the lung reaches the image edge and is no longer enclosed by the body
    contour. Before the fix the mask held ~20 % of the lung and every nodule
    in the clipped part was outside it (synthetic patient 1006)."""
    from inference.synth.phantom import make_phantom

    ph = make_phantom(1006, shape=(256, 256), slice_mm=5.0, n_nodules=0, fov_clip=True,
                      emphysema=False, effusion=False, atelectasis=False)
    assert (ph.lungs[:, :, 0] == 1).any() and (ph.lungs[:, :, -1] == 2).any(), "both lungs must reach the image edge for this test"
    lab = segment_lungs(ph.to_volume())
    for side in (1, 2):
        t, p = ph.lungs == side, lab == side
        assert 2 * (t & p).sum() / (t.sum() + p.sum()) > 0.88, f"lung {side}"
    # the air outside the field of view (the image corners) is still not lung
    c = lab.shape[1] // 8
    assert not any(lab[:, a, b].any() for a in (slice(0, c), slice(-c, None)) for b in (slice(0, c), slice(-c, None)))


def test_nodules_where_the_field_cuts_the_lung_stay_in_their_lung() -> None:
    """Synthetic patient 5002 (clipped field, 5 mm slices): a cavitary nodule
    lies against the field's edge, where the lung is open and the closing
    cannot enclose it. Before the fix 13 % of it was in the lung mask, so the
    nodule search never looked there."""
    from inference.models.fpr_data import draw_patient

    ph = draw_patient(5002)
    assert ph.options["fov_clip"]
    lab = segment_lungs(ph.to_volume())
    t, p = ph.lungs > 0, lab > 0
    assert 2 * (t & p).sum() / (t.sum() + p.sum()) > 0.9
    for r in ph.records:
        assert p[ph.nodules == r.id].mean() > 0.7, (r.subtype, r.mean_diameter_mm)


def test_the_airway_does_not_creep_into_the_lung_and_take_its_nodules() -> None:
    """Synthetic patient 9012: the airway was grown through lung air and took
    every < -900 HU voxel it touched, slice after slice (up to 400 pixels of
    "airway" per slice against the trachea's 16); those blocks were cut out
    of the lung, with a 12.6 mm calcified nodule wholly in them (0 % of it in
    the mask, so no candidate). Lung Dice was 0.85."""
    from inference.models.fpr_data import draw_patient

    ph = draw_patient(9012)
    lab = segment_lungs(ph.to_volume())
    t, p = ph.lungs > 0, lab > 0
    assert 2 * (t & p).sum() / (t.sum() + p.sum()) > 0.92
    for r in ph.records:
        if r.mean_diameter_mm >= 5:
            assert p[ph.nodules == r.id].mean() > 0.85, (r.subtype, r.mean_diameter_mm)


def test_a_cavitary_nodules_air_belongs_to_the_lung() -> None:
    """Synthetic patient 9033: a 10.6 mm cavitary nodule's air-filled centre is
    its own small air component, which the mask left out (a hole at the
    nodule's centre, where the candidate search never looks)."""
    from inference.models.fpr_data import draw_patient

    ph = draw_patient(9033)
    hu = np.asarray(ph.to_volume().array)
    lab = segment_lungs(ph.to_volume())
    cav = [r for r in ph.records if r.subtype == "cavitary" and r.mean_diameter_mm > 10]
    assert cav, "the test needs patient 9033's cavitary nodule"
    m = (ph.nodules == cav[0].id) & (hu < -600)
    assert m.sum() > 20
    assert (lab[m] > 0).mean() > 0.9


def test_lungs_that_touch_do_not_take_in_the_mediastinum() -> None:
    """Synthetic patient 9002: the lungs touch, are split at a column, and each
    half's cut edge and medial surface enclosed the heart, which the closing
    added to the lung (355 mL of mask outside the lungs; a 61 mm false nodule
    in the mediastinum)."""
    from inference.models.fpr_data import draw_patient

    ph = draw_patient(9002)
    vol = ph.to_volume()
    lab = segment_lungs(vol)
    t, p = ph.lungs > 0, lab > 0
    assert 2 * (t & p).sum() / (t.sum() + p.sum()) > 0.95
    assert (p & ~t).sum() * np.prod(vol.spacing) / 1000 < 300


def test_what_two_touching_lungs_enclose_together_is_not_lung_but_a_hole_of_one_lung_is() -> None:
    from inference.pipeline.lungs import _between_touching_lungs

    y, x = np.ogrid[:120, :120]
    ring = ((y - 60) ** 2 + (x - 60) ** 2 <= 50**2) & ((y - 60) ** 2 + (x - 60) ** 2 > 25**2)
    right = np.zeros((3, 120, 120), bool)
    left = np.zeros_like(right)
    right[:, :, :60], left[:, :, 60:] = ring[:, :60], ring[:, 60:]  # one ring of lung, split at a column
    right[:, 55:65, 20:30] = False  # a 2.5 cm nodule inside the right lung alone
    heart = (y - 60) ** 2 + (x - 60) ** 2 <= 25**2
    between = _between_touching_lungs([right, left], px=2.5)
    assert between[1][heart].all()  # the mediastinum the two enclose together
    assert not between[1, 55:65, 20:30].any()  # the right lung's own hole stays lung


def test_reported_lungs_leave_out_the_hilum_and_chest_wall_the_search_map_takes_in() -> None:
    """Validation patient 5000: the search map's 30 mm closing takes in a few hundred mL that are not lung
    (hilum, strips of mediastinum and chest wall); the reported map keeps the aerated lung with what it
    encloses -- vessels and a nodule inside the lung stay."""
    from inference.models.fpr_data import draw_patient
    from inference.pipeline.lungs import aerated_lungs

    ph = draw_patient(5000)
    vol = ph.to_volume()
    search = segment_lungs(vol)
    shown = aerated_lungs(np.asarray(vol.array), search)
    t = ph.lungs > 0
    ml = float(np.prod(vol.spacing)) / 1000

    def outside(m: np.ndarray) -> float:
        return float((m & ~t).sum()) * ml

    def dice(m: np.ndarray) -> float:
        return 2 * float((m & t).sum()) / float(m.sum() + t.sum())

    assert outside(search > 0) > 150 and outside(shown > 0) < 0.3 * outside(search > 0)
    assert dice(shown > 0) > dice(search > 0) + 0.01
    assert set(np.unique(shown)) == {0, 1, 2} and not (shown & ~search).any()  # never more than searched
    # a nodule inside the lung (tissue the aerated lung encloses on its slice) stays lung
    inside = [r for r in ph.records if r.subtype not in ("juxtapleural", "perifissural")]
    assert len(inside) >= 2
    for r in inside:
        assert (shown[np.asarray(ph.nodules) == r.id] > 0).mean() > 0.8, r.subtype
