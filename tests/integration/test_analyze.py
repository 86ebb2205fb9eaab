"""``analyze`` end to end on DICOM written by the test: contract keys and label maps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.dicomgen import write_ct_series

CONTRACT_KEYS = {"schema", "patient", "study", "series", "lungs", "nodules", "exam", "risk", "genomics", "labs",
                 "derived", "suggestions", "identity", "warnings", "model"}
NODULE_KEYS = {"id", "center_lps_mm", "center_voxel_zyx", "bbox_voxel_zyx", "volume_mm3", "long_axis_mm",
               "short_axis_mm", "mean_diameter_mm", "type", "solid_component_mm", "mean_hu", "spiculated",
               "juxtapleural", "location", "probability", "detected_by", "review", "brock_probability", "lung_rads",
               "growth"}


@pytest.fixture(scope="module")
def phantom_series(tmp_path_factory):
    from inference.synth.phantom import make_phantom

    # a clinical reconstruction (1.0 mm pixels); the model is not meant for coarser ones (see RESULTS.md)
    ph = make_phantom(7002, shape=(320, 320), pixel_mm=1.0, slice_mm=2.5, n_nodules=1, nodule_types=("solid",),
                      nodule_size_mm=(14.0, 16.0), emphysema=False, effusion=False, atelectasis=False, fov_clip=False)
    d = tmp_path_factory.mktemp("study") / "ct"
    write_ct_series(d, ph.hu, spacing=ph.spacing, origin=ph.origin, direction=np.asarray(ph.direction),
                    patient_id="ANALYZE01", kernel="B30f")
    return d, ph


@pytest.fixture(scope="module")
def analysed(phantom_series, tmp_path_factory):
    from inference.api import analyze

    study, ph = phantom_series
    out = tmp_path_factory.mktemp("analysed") / "out"
    fr: list[float] = []
    f = analyze(study, out, device="cpu", progress=lambda p: fr.append(p.fraction))
    return out, ph, f, fr


@pytest.mark.slow
def test_analyze_writes_contract_findings_and_label_maps_on_the_ct_grid(analysed) -> None:
    import SimpleITK as sitk

    out, ph, f, fr = analysed
    on_disk = json.loads((out / "findings.json").read_text())
    assert on_disk["schema"] == "clinview.findings/1"
    assert CONTRACT_KEYS <= set(on_disk)
    assert on_disk["patient"]["id"] == "ANALYZE01"
    assert on_disk["series"]["shape_zyx"] == list(ph.hu.shape)
    assert on_disk["lungs"]["right_ml"] > 500 and on_disk["lungs"]["left_ml"] > 500
    assert set(on_disk["model"]["seconds"]) >= {"load", "lungs", "nodules", "total"}
    # the candidate stage names its version, the mass rule, the halo growth, the vessel cut and the merge in force (contract)
    cand = on_disk["model"]["candidates"]
    assert cand["version"] and cand["mass_rule"]["min_diameter_mm"] > 0 and 0 < cand["halo_growth"]["min_share"] <= 1
    assert cand["vessel_cut"]["findings"] == "solid" and 0 < cand["vessel_cut"]["share_of_inscribed_radius"] < 1
    assert 0 < cand["enclosed_merge"]["min_share"] <= 1
    # the clinical half ran: guideline exam category with its version, identity checked,
    # and every input the scores had to assume is named in a warning
    assert on_disk["exam"]["lung_rads"]["version"] == "v2022"
    assert on_disk["identity"]["consistent"] is True
    assert any(w.startswith("Brock:") or w.startswith("Fleischner:") for w in on_disk["warnings"])
    assert fr[-1] == 1.0 and fr == sorted(fr)
    assert not list(out.glob(".partial-*"))
    for n in on_disk["nodules"]:
        assert NODULE_KEYS <= set(n) and n["review"] == "pending"
    img = sitk.ReadImage(str(out / "nodules.nii.gz"))
    lab = sitk.GetArrayFromImage(img)
    assert lab.shape == ph.hu.shape
    assert np.allclose(img.GetOrigin(), ph.origin, atol=1e-3)
    # every finding's id is in the label map at its centre voxel
    for n in on_disk["nodules"]:
        assert lab[tuple(int(round(v)) for v in n["center_voxel_zyx"])] == n["id"] or (lab == n["id"]).any()
    lungs = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "lungs.nii.gz")))
    assert set(np.unique(lungs)) == {0, 1, 2}


@pytest.mark.slow
def test_analyze_nodule_label_lands_on_the_true_nodule(analysed) -> None:
    import SimpleITK as sitk

    out, ph, f, _ = analysed
    on_disk = json.loads((out / "findings.json").read_text())
    lab = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "nodules.nii.gz")))
    truth = ph.nodules == ph.records[0].id
    ids = np.unique(lab[truth])
    ids = ids[ids > 0]
    assert ids.size == 1
    hit = next(n for n in on_disk["nodules"] if n["id"] == int(ids[0]))
    assert 2 * ((lab == hit["id"]) & truth).sum() / ((lab == hit["id"]).sum() + truth.sum()) > 0.6
    # the LPS centre is where the truth says
    assert np.linalg.norm(np.array(hit["center_lps_mm"]) - np.array(ph.records[0].center_lps_mm)) < 3.0


def test_ct_without_nodules_gives_an_empty_list(tmp_path: Path) -> None:
    from inference.api import analyze

    hu = np.full((12, 64, 64), -1000, np.int16)  # air phantom: body-less, no lungs, nothing to find
    hu[:, 8:56, 8:56] = 40
    write_ct_series(tmp_path / "ct", hu, spacing=(3.0, 2.0, 2.0))
    f = analyze(tmp_path / "ct", tmp_path / "out", device="cpu")
    assert f["nodules"] == []
    assert json.loads((tmp_path / "out" / "findings.json").read_text())["nodules"] == []
    assert any("no lungs" in w for w in f["warnings"])


def test_folder_without_dicom_is_a_one_line_error(tmp_path: Path) -> None:
    from inference.api import analyze
    from inference.errors import NoUsableSeriesError

    (tmp_path / "notes.txt").write_text("not a CT")
    with pytest.raises(NoUsableSeriesError) as ei:
        analyze(tmp_path, tmp_path / "out", device="cpu")
    assert "\n" not in ei.value.one_line()
    assert not (tmp_path / "out" / "findings.json").exists()


def test_series_choice_prefers_thin_axial_ct() -> None:
    from inference.pipeline.analyze import choose_series
    from inference.types import PatientInfo, SeriesInfo, StudyInfo

    def s(uid, mod, thick, n, iop=(1, 0, 0, 0, 1, 0)):
        return SeriesInfo(series_instance_uid=uid, modality=mod, patient=PatientInfo(), study=StudyInfo("1"),
                          files=tuple(Path(f"{uid}{i}") for i in range(n)), slice_thickness_mm=thick,
                          image_orientation=iop)

    series = [s("thick", "CT", 5.0, 64), s("thin", "CT", 1.0, 300), s("pet", "PT", 3.0, 400),
              s("coronal", "CT", 0.5, 500, iop=(1, 0, 0, 0, 0, -1))]
    chosen, why = choose_series(series)
    assert chosen.series_instance_uid == "thin" and "thinnest" in why
    assert choose_series(series, "thick")[0].series_instance_uid == "thick"


@pytest.mark.slow
def test_analyze_with_a_saved_review_starts_from_the_readers_decisions(analysed, phantom_series, tmp_path: Path) -> None:
    """`clinview analyze --review review.json` (what the viewer's Analyze passes): the nodule the reader
    rejected is rejected in the new findings and left out of every score, down to the exam category and
    the deep model; an entry matching nothing is said, and a bad file is a warning, not a failure."""
    from clinview.cli import main

    _, _, f, _ = analysed
    study, _ = phantom_series
    assert f["nodules"] and f["exam"]["lung_rads"]["category"] != "1" and f["risk"]["nodule_id"] is not None
    entries = [{"id": n["id"], "review": "rejected", "center_lps_mm": n["center_lps_mm"]} for n in f["nodules"]]
    entries.append({"id": 99, "review": "rejected", "center_lps_mm": [500.0, 500.0, 500.0]})  # nowhere in this CT
    review = tmp_path / "review.json"
    review.write_text(json.dumps({"schema": "clinview.review/1", "saved": "2026-12-03T22:40:00+00:00",
                                  "nodules": entries}))
    assert main(["analyze", str(study), "--out", str(tmp_path / "out"), "--device", "cpu",
                 "--review", str(review)]) == 0
    g = json.loads((tmp_path / "out" / "findings.json").read_text())
    # the same CT and code give the same findings, now as the reader left them
    assert [n["center_lps_mm"] for n in g["nodules"]] == [n["center_lps_mm"] for n in f["nodules"]]
    for n in g["nodules"]:
        assert n["review"] == "rejected" and n["lung_rads"] is None and n["brock_probability"] is None
    assert g["exam"]["lung_rads"]["category"] == "1"  # no nodule remains
    assert g["risk"]["nodule_id"] is None
    assert g["reader_review"]["rejected"] == [n["id"] for n in g["nodules"]] and g["reader_review"]["unmatched"] == 1
    assert any("1 reviewed nodule(s) match no finding" in w for w in g["warnings"])

    assert main(["analyze", str(study), "--out", str(tmp_path / "out2"), "--device", "cpu",
                 "--review", str(tmp_path / "missing.json")]) == 0
    h = json.loads((tmp_path / "out2" / "findings.json").read_text())
    assert any("missing.json: review not read" in w for w in h["warnings"]) and h["nodules"][0]["review"] == "pending"
