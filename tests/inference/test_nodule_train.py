"""Training cases of the dense network: drawn and resampled exactly as inference sees a CT."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")


@pytest.mark.slow
def test_clinical_training_cases_are_cropped_and_resampled_as_inference_does() -> None:
    """The network must be trained on what :func:`segment_nodules` feeds it: the product's lung crop of a
    scanner-like CT, resampled by the same function; every nodule's centre must lie in its own label."""
    from inference.models.fpr_data import draw_patient
    from inference.models.nodule_data import make_case
    from inference.pipeline.lungs import segment_lungs
    from inference.pipeline.nodules import lung_crop, to_model_grid

    c = make_case(9998, (2.0, 2.0, 2.0), source="clinical", n_nodules=3)
    ph = draw_patient(9998, n_nodules=3)
    vol = ph.to_volume()
    crop = lung_crop(segment_lungs(vol), vol.spacing)
    expected = to_model_grid(np.asarray(vol.array)[crop], vol.spacing, (2.0, 2.0, 2.0))[0, 0].numpy()
    assert c.hu.shape == expected.shape == c.nodules.shape == c.lungs.shape
    assert np.array_equal(c.hu, expected)
    assert len(c.truth) == len(ph.records) == 3
    for t in c.truth:
        z, y, x = (int(round(v)) for v in t.center_zyx)
        near = c.nodules[max(z - 1, 0):z + 2, max(y - 1, 0):y + 2, max(x - 1, 0):x + 2]
        assert (near == t.label).any(), f"nodule {t.label} ({t.type}, {t.diameter_mm} mm) not at its centre"
    assert set(np.unique(c.lungs)) <= {0, 1, 2} and c.lungs.any()


def test_a_config_with_a_base_says_only_what_differs_and_gets_the_rest(tmp_path) -> None:
    """The thin-slice reader's config names the 2 mm reader's as its base: it must train the same network
    with the same data and sampling, at its own spacing, cache and schedule -- and a base's nested keys that
    the overlay does not name must survive (a shallow merge would drop the base's ``train.batch``)."""
    from pathlib import Path

    from inference.models.nodule_train import load_config

    root = Path(__file__).resolve().parents[2] / "configs"
    base = load_config(root / "nodules_dense.yaml")
    fine = load_config(root / "nodules_dense_fine.yaml")
    assert "base" not in fine
    assert fine["name"] == "nodules-dense-fine" and fine["spacing_zyx_mm"] == [1.25, 1.25, 1.25]
    for key in ("architecture", "normalisation", "labels", "postprocess", "gpu", "seed"):
        assert fine[key] == base[key], key
    assert fine["data"]["cache_dir"] != base["data"]["cache_dir"]
    assert {k: v for k, v in fine["data"].items() if k != "cache_dir"} == {k: v for k, v in base["data"].items() if k != "cache_dir"}
    assert fine["train"]["batch"] == base["train"]["batch"] and fine["train"]["type_weights"] == base["train"]["type_weights"]
    assert fine["inference"]["whole_crop_max_voxels"] > base["inference"]["whole_crop_max_voxels"]
    assert fine["inference"]["roi_size"] == base["inference"]["roi_size"]
    # a chain of bases, relative to the file that names it; lists replace, they are not merged
    (tmp_path / "a.yaml").write_text("x: {p: 1, q: [1, 2]}\nname: a\n", encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.yaml").write_text("base: ../a.yaml\nx: {q: [3]}\n", encoding="utf-8")
    (tmp_path / "sub" / "c.yaml").write_text("base: b.yaml\nname: c\n", encoding="utf-8")
    assert load_config(tmp_path / "sub" / "c.yaml") == {"x": {"p": 1, "q": [3]}, "name": "c"}


def test_small_nodules_are_picked_more_often_when_the_config_weights_them() -> None:
    """``train.small_nodules`` is how the thin-slice reader is shown its 5-8 mm nodules more often: patches
    centred on a nodule under ``below_mm`` must come ``weight`` times as often as on a larger one of the same type."""
    from inference.models.nodule_data import Case, NoduleTruth
    from inference.models.nodule_train import sample_patch

    shape = (40, 40, 120)
    nod = np.zeros(shape, np.int16)
    nod[18:22, 18:22, 18:22] = 1      # small, far left
    nod[14:26, 14:26, 88:100] = 2     # large, far right
    truth = [NoduleTruth(1, "solid", 5.0, 65.0, (20.0, 20.0, 20.0)), NoduleTruth(2, "solid", 15.0, 1767.0, (20.0, 20.0, 94.0))]
    case = Case(np.where(nod > 0, 0.0, -850.0).astype(np.float32), (1.25, 1.25, 1.25), nod, np.ones(shape, np.uint8), truth)

    def share_small(small_nodules) -> float:
        rng = np.random.default_rng(0)
        n = 0
        for _ in range(300):
            img, _ = sample_patch(case, (16, 16, 16), rng, 1.0, None, "light", 0.0, small_nodules)
            # which nodule's side of the case the patch was cut from: the large one fills more of its patch
            n += int((img > -400).mean() < 0.2)
        return n / 300

    plain, weighted = share_small(None), share_small((8.0, 4.0))
    assert 0.35 < plain < 0.65, plain
    assert weighted > 0.7, weighted
