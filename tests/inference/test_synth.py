"""Synthetic patients: determinism, ground truth against the image, tissue HU,
DICOM/NIfTI round trips and follow-ups.

Phantoms here are small (coarse pixels, thick slices, few vessels) so the
whole file runs in well under a minute on 2 cores; the full-size demo patient
is in ``test_synth_demo.py``.
"""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from inference.synth.anatomy import reference_points
from inference.synth.dicom_writer import derive_uid, write_ct_series
from inference.synth.followup import make_followup
from inference.synth.nifti_writer import write_nifti
from inference.synth.phantom import Phantom, make_phantom
from inference.types import PatientInfo

SMALL = dict(shape=(160, 160), pixel_mm=2.4, slice_mm=5.0, vessel_density=0.12, dose=1.0, fov_clip=False)
PATIENT = PatientInfo(patient_id="SYNTH-TEST-1", name="TEST^SYNTHETIC", birth_date=date(1960, 5, 1), sex="M")


@pytest.fixture(scope="module")
def mixed() -> Phantom:
    """One small phantom with a nodule of several different kinds."""
    return make_phantom(
        101,
        **SMALL,
        n_nodules=6,
        nodule_types=["solid", "part-solid", "ground-glass", "calcified-popcorn", "juxtapleural", "cavitary"],
        nodule_size_mm=(8.0, 24.0),
        kernel="sharp",
    )


def _read_sitk(folder: Path) -> sitk.Image:
    r = sitk.ImageSeriesReader()
    r.SetFileNames(r.GetGDCMSeriesFileNames(str(folder)))
    return r.Execute()


def _extent_mm(mask2d: np.ndarray, sy: float, sx: float) -> tuple[float, float]:
    """Independent caliper: longest distance between pixel centres (+1 pixel),
    and the width perpendicular to it (+1 pixel)."""
    jj, ii = np.nonzero(mask2d)
    p = np.column_stack([ii * sx, jj * sy])
    d = np.sqrt(((p[:, None] - p[None]) ** 2).sum(-1))
    a, b = np.unravel_index(int(np.argmax(d)), d.shape)
    u = (p[b] - p[a]) / max(d[a, b], 1e-9)
    w = p @ np.array([-u[1], u[0]])
    return float(d[a, b]) + sx, float(w.max() - w.min()) + sx


def test_same_seed_same_bytes_and_different_seeds_differ(tmp_path: Path) -> None:
    kw = dict(SMALL, n_nodules=2)
    a = make_phantom(7, **kw)
    b = make_phantom(7, **kw)
    c = make_phantom(8, **kw)
    assert a.hu.tobytes() == b.hu.tobytes()
    assert a.nodules.tobytes() == b.nodules.tobytes()
    assert [r.to_dict() for r in a.records] == [r.to_dict() for r in b.records]
    assert a.hu.tobytes() != c.hu.tobytes()
    assert a.records and c.records
    assert [r.center_lps_mm for r in a.records] != [r.center_lps_mm for r in c.records]
    # and the DICOM files written from the same seed are byte-identical
    uids = dict(study_uid=derive_uid("t", 1), series_uid=derive_uid("t", 2), study_date=date(2025, 1, 2))
    fa = write_ct_series(a, tmp_path / "a", patient=PATIENT, **uids)
    fb = write_ct_series(b, tmp_path / "b", patient=PATIENT, **uids)
    assert [p.read_bytes() for p in fa] == [p.read_bytes() for p in fb]


def test_every_nodule_centre_lies_in_its_mask_and_sizes_match_the_mask(mixed: Phantom) -> None:
    vol = mixed.to_volume()
    assert len(mixed.records) >= 4
    assert len({r.type for r in mixed.records}) >= 3
    sz, sy, sx = mixed.spacing
    for r in mixed.records:
        k, j, i = (int(v) for v in np.rint(vol.lps_to_voxel(r.center_lps_mm)))
        assert mixed.nodules[k, j, i] == r.id, f"nodule {r.id} ({r.subtype}): centre outside its mask"
        m = mixed.nodules == r.id
        assert r.volume_mm3 == pytest.approx(m.sum() * sz * sy * sx, rel=1e-6)
        areas = m.sum((1, 2))
        long_, short = _extent_mm(m[int(np.argmax(areas))], sy, sx)
        assert abs(r.long_axis_mm - long_) <= max(sy, sx) + 0.05, r
        assert abs(r.short_axis_mm - short) <= max(sy, sx) + 0.05, r
        assert r.mean_diameter_mm == pytest.approx(0.5 * (r.long_axis_mm + r.short_axis_mm), abs=0.051)
        assert r.short_axis_mm <= r.long_axis_mm
        # the nodule lies in the lung it is said to be in
        assert r.side in ("right", "left")
        assert set(np.unique(mixed.lungs[m])) == {1 if r.side == "right" else 2}
        assert r.lobe in ("RUL", "RML", "RLL", "LUL", "LLL")


def test_nodule_appearance_matches_its_type(mixed: Phantom) -> None:
    """Mean HU inside each mask is in the range clinical-facts §9.1 gives."""
    for r in mixed.records:
        hu = mixed.hu[mixed.nodules == r.id].astype(float)
        core = hu.mean()
        if r.type == "ground-glass":
            assert -800 < core < -300, (r.subtype, core)
        elif r.type == "calcified":
            assert hu.max() > 164, (r.subtype, hu.max())  # Siegelman: >= 164 HU benign
        elif r.type == "part-solid":
            assert hu.max() > -160 and hu.min() < -300, r.subtype
        elif "cavitary" in r.features:
            assert hu.min() < -500, "a cavity holds air"
        else:
            assert -300 < np.median(hu) < 150, (r.subtype, np.median(hu))


def test_tissue_hu_in_clinical_ranges() -> None:
    """Noise-free phantom sampled at points inside each tissue (§9.1 ranges)."""
    ph = make_phantom(55, **dict(SMALL, pixel_mm=1.6, shape=(240, 240), dose=1e6), n_nodules=0)
    vol = ph.to_volume()
    an = ph.anatomy
    assert an is not None
    ranges = {
        "fat": (-120, -50),
        "muscle": (20, 80),
        "blood": (13, 65),
        "heart": (13, 65),
        "cancellous": (250, 450),
        "liver": (20, 80),
        "air": (-1024, -980),
    }
    for name, p in reference_points(an).items():
        k, j, i = (int(v) for v in np.rint(vol.lps_to_voxel(ph.rotation @ p + ph.shift)))
        v = float(np.median(ph.hu[k, j - 1 : j + 2, i - 1 : i + 2]))
        lo, hi = ranges[name]
        assert lo <= v <= hi, f"{name}: {v} HU not in [{lo}, {hi}]"
    lung = ph.hu[ph.lungs > 0].astype(float)
    # parenchyma (median; vessels are the bright tail) at full inspiration
    assert -920 <= np.median(lung) <= -780
    assert np.percentile(lung, 99) > -300, "vessels must show inside the lungs"
    assert (ph.hu >= 700).sum() > 1000, "cortical bone"


def test_dicom_series_reads_back_with_identical_geometry(tmp_path: Path, mixed: Phantom) -> None:
    uids = dict(study_uid=derive_uid("s", 1), series_uid=derive_uid("s", 2), study_date=date(2025, 6, 1))
    files = write_ct_series(mixed, tmp_path / "ct", patient=PATIENT, description="test", **uids)
    assert len(files) == mixed.hu.shape[0]
    im = _read_sitk(tmp_path / "ct")
    assert np.array_equal(sitk.GetArrayFromImage(im), mixed.hu)
    np.testing.assert_allclose(im.GetOrigin(), mixed.origin, atol=1e-4)
    np.testing.assert_allclose(im.GetSpacing(), mixed.spacing[::-1], atol=1e-5)
    np.testing.assert_allclose(np.reshape(im.GetDirection(), (3, 3)), mixed.direction, atol=1e-6)
    ds = pydicom.dcmread(files[0])
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2"
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert ds.PatientID == "SYNTH-TEST-1" and ds.PatientSex == "M" and ds.PatientBirthDate == "19600501"
    assert ds.PatientAge == "065Y"
    assert ds.StudyInstanceUID == uids["study_uid"] and ds.SeriesInstanceUID == uids["series_uid"]
    assert ds.FrameOfReferenceUID and ds.ConvolutionKernel == "LUNG"
    assert float(ds.SliceThickness) == pytest.approx(mixed.spacing[0])
    assert len({pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in files}) == len(files)
    # the project's own loader agrees with SimpleITK
    from inference.api import load_series

    v = load_series(tmp_path / "ct")
    assert np.array_equal(v.array, mixed.hu)
    np.testing.assert_allclose(v.origin, mixed.origin, atol=1e-4)
    np.testing.assert_allclose(v.spacing, mixed.spacing, atol=1e-5)
    r = mixed.records[0]
    k, j, i = (int(x) for x in np.rint(v.lps_to_voxel(r.center_lps_mm)))
    assert mixed.nodules[k, j, i] == r.id


def test_nifti_round_trip(tmp_path: Path, mixed: Phantom) -> None:
    paths = write_nifti(mixed, tmp_path)
    img = sitk.ReadImage(str(paths["image"]))
    lab = sitk.ReadImage(str(paths["nodules"]))
    assert np.array_equal(sitk.GetArrayFromImage(img), mixed.hu)
    assert np.array_equal(sitk.GetArrayFromImage(lab), mixed.nodules)
    assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(paths["lungs"]))), mixed.lungs)
    np.testing.assert_allclose(img.GetOrigin(), mixed.origin, atol=1e-3)
    np.testing.assert_allclose(img.GetSpacing(), mixed.spacing[::-1], atol=1e-5)


def test_followup_growth_resolution_new_and_repositioning() -> None:
    base = make_phantom(
        202, **SMALL, n_nodules=3, nodule_types=["solid"], nodule_size_mm=(10.0, 14.0), kernel="soft"
    )
    ids = [r.id for r in base.records]
    vdt = {ids[0]: 200.0, ids[1]: None}
    fu = make_followup(base, 203, months=12, vdt_days=vdt, resolve=ids[2], new_kind="solid", new_diameter_mm=8.0)
    info = fu.followup
    assert info.resolved == (ids[2],)
    assert ids[2] not in {r.id for r in fu.records}
    assert len(info.new) == 1 and info.new[0] not in ids
    assert info.new[0] in {r.id for r in fu.records}
    assert info.matches == {ids[0]: ids[0], ids[1]: ids[1]}
    # the patient moved: same anatomy point, different scanner coordinates
    assert np.abs(info.baseline_to_followup_lps[:3, 3]).max() > 0.5
    vol_fu = fu.to_volume()
    for bid, fid in info.matches.items():
        p = np.append(base.record(bid).center_lps_mm, 1.0)
        q = (info.baseline_to_followup_lps @ p)[:3]
        k, j, i = (int(v) for v in np.rint(vol_fu.lps_to_voxel(q)))
        assert fu.nodules[k, j, i] == fid, "the transform maps a baseline nodule onto its follow-up"
    # growth follows V2 = V1 * 2^(dt/VDT) (mask volumes, so partial-volume error allowed)
    grow = fu.record(ids[0]).volume_mm3 / base.record(ids[0]).volume_mm3
    assert grow == pytest.approx(2 ** (info.interval_days / 200.0), rel=0.2)
    stable = fu.record(ids[1]).volume_mm3 / base.record(ids[1]).volume_mm3
    assert stable == pytest.approx(1.0, rel=0.2)
    assert math.isclose(info.interval_days, 365, abs_tol=1)


def test_acquisition_options_change_the_image_as_a_scanner_would() -> None:
    kw = dict(SMALL, n_slices=10, n_nodules=0)
    sharp = make_phantom(31, **kw, kernel="sharp")
    soft = make_phantom(31, **kw, kernel="soft")
    low = make_phantom(31, **dict(kw, dose=0.25), kernel="soft")
    air = (slice(None), slice(2, 12), slice(70, 90))  # in front of the patient

    def noise(p: Phantom) -> float:
        return float(p.hu[air].std())

    assert noise(sharp) > 1.5 * noise(soft)
    assert noise(low) > 1.5 * noise(soft)
    thick = make_phantom(31, **dict(kw, slice_mm=2.5, n_slices=8))
    assert thick.spacing[0] == 2.5
    kw.pop("n_slices")  # emphysema is upper-lobe predominant: scan the whole chest
    emph = make_phantom(31, **kw, emphysema=True)
    plain = make_phantom(31, **kw, emphysema=False)
    frac = lambda p: float((p.hu[p.lungs > 0] < -950).mean())  # noqa: E731
    assert frac(emph) > frac(plain)


def test_unknown_nodule_type_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown nodule type"):
        make_phantom(1, **dict(SMALL, n_slices=4), n_nodules=1, nodule_types=["banana"])


def _lung_by_threshold(slice_hu: np.ndarray) -> np.ndarray:
    """Lung pixels found the same way in a real and a synthetic slice: air
    inside the filled body outline, eroded away from the walls."""
    from scipy import ndimage

    body = ndimage.binary_fill_holes(slice_hu > -500)
    return ndimage.binary_erosion((slice_hu < -500) & body, iterations=2)


@pytest.mark.shared
def test_lung_attenuation_matches_the_real_ct(real_ct_dir: Path, mixed: Phantom) -> None:
    """Transfer check: parenchyma of the phantom and of the real A0001 lung
    series, both segmented by the same threshold, have similar HU."""
    real = sitk.GetArrayFromImage(_read_sitk(real_ct_dir / "ct-lung-kernel")).astype(float)
    k_real = int(np.argmax([_lung_by_threshold(s).sum() for s in real]))
    k_syn = int(np.argmax((mixed.lungs > 0).sum((1, 2))))
    r = real[k_real][_lung_by_threshold(real[k_real])]
    s = mixed.hu[k_syn].astype(float)[_lung_by_threshold(mixed.hu[k_syn].astype(float))]
    assert abs(np.median(r) - np.median(s)) < 80, (np.median(r), np.median(s))
    # most of the lung is parenchyma darker than -700 HU in both
    assert np.mean(r < -700) > 0.8 and np.mean(s < -700) > 0.8


def test_masses_mostly_reach_the_pleura_or_mediastinum_like_real_tumours() -> None:
    """A 'mass' is drawn free in the lung, against the costal pleura or against the mediastinum.

    The abutting ones cross the lung's surface (part of their sphere lies outside the lung),
    the free ones keep clear of it -- the configuration of the real scan's tumour, which the
    nodule classifier must see in training.
    """
    from inference.synth.anatomy import lung_lobe_at, make_anatomy
    from inference.synth.nodules import _SPHERE, design_nodules

    seen: dict[str, int] = {}
    for seed in range(6):
        rng = np.random.default_rng(seed)
        an = make_anatomy(rng)
        for spec in design_nodules(rng, an, 2, ("mass",)):
            abuts = spec.features["abuts"]
            seen[abuts] = seen.get(abuts, 0) + 1
            assert spec.features["attachments"] == ([abuts] if abuts else [])
            outside = lung_lobe_at(an, spec.center + _SPHERE * spec.radius_mm) == 0
            assert lung_lobe_at(an, spec.center[None])[0] > 0  # centred in the lung
            assert outside.any() if abuts else not outside.any()
    assert set(seen) == {"", "pleura", "mediastinum"}
