"""``analyze --prior``: two CTs of one patient are compared; a prior of another
patient is never combined without the user's confirmation."""

from __future__ import annotations

import numpy as np
import pytest

from tests.dicomgen import write_ct_series


@pytest.fixture(scope="module")
def two_studies(tmp_path_factory):
    from inference.synth.phantom import make_phantom

    ph = make_phantom(7003, shape=(160, 160), pixel_mm=2.0, slice_mm=3.0, n_nodules=1, nodule_types=("solid",),
                      nodule_size_mm=(14.0, 16.0), emphysema=False, effusion=False, atelectasis=False, fov_clip=False)
    root = tmp_path_factory.mktemp("prior")
    kw = dict(spacing=ph.spacing, origin=ph.origin, direction=np.asarray(ph.direction))
    cur = root / "current"
    write_ct_series(cur, ph.hu, patient_id="PRIOR01", **kw)
    same = root / "prior_same"
    write_ct_series(same, ph.hu, patient_id="PRIOR01", **kw)
    other = root / "prior_other"
    write_ct_series(other, ph.hu, patient_id="SOMEONE-ELSE", **kw)
    return root, cur, same, other


@pytest.mark.slow
def test_prior_of_another_patient_is_not_combined(two_studies) -> None:
    from inference.api import analyze

    root, cur, _, other = two_studies
    f = analyze(cur, root / "out_other", prior=other, device="cpu")
    assert f["prior"] is None
    assert all(n["growth"] is None for n in f["nodules"])
    assert any("prior not used" in w and "SOMEONE-ELSE" in w for w in f["warnings"])


@pytest.mark.slow
def test_prior_of_the_same_patient_gives_growth(two_studies) -> None:
    from inference.api import analyze

    root, cur, same, _ = two_studies
    f = analyze(cur, root / "out_same", prior=same, device="cpu")
    assert f["prior"] is not None and f["prior"]["study"] is not None
    assert not any("prior not used" in w for w in f["warnings"])
    assert f["nodules"], "the 15 mm nodule (or at least one finding) is expected on this phantom"
    # every current nodule was compared: matched (same image, so stable) or reported new
    for n in f["nodules"]:
        assert n["growth"] is not None and n["growth"]["status"] in {"stable", "new", "grown", "shrunk"}
