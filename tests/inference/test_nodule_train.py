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
