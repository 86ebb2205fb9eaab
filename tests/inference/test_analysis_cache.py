"""The key that decides whether a finished analysis may be shown again instead of re-run."""

from __future__ import annotations

import json
import os
from pathlib import Path

from inference.analysis_cache import KEY_FILE, analysis_key, find_reusable, write_key


def _inputs(tmp_path: Path) -> dict:
    study = tmp_path / "ct"
    study.mkdir()
    for i in range(3):
        (study / f"IM{i:04d}.dcm").write_bytes(bytes([i]) * 100)
    labs = tmp_path / "labs.csv"
    labs.write_text("loinc,value,unit\n2160-0,1.0,mg/dL\n")
    return {"command": "analyze", "study": str(study), "out": str(tmp_path / "out1"), "series_uid": "1.2.3",
            "prior": None, "genomics": [], "labs": [str(labs)], "clinical": None, "device": "auto",
            "confirm_identity": False}


def test_same_inputs_same_key_and_any_change_a_new_one(tmp_path: Path) -> None:
    req = _inputs(tmp_path)
    key = analysis_key(req)
    assert key is not None and key == analysis_key({**req, "out": str(tmp_path / "elsewhere")})  # where it goes: no
    # a slice replaced, a slice added, a lab file edited, another series, the reader's identity confirmation
    im = Path(req["study"]) / "IM0001.dcm"
    st = im.stat()
    im.write_bytes(b"\x07" * 100)
    os.utime(im, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    k2 = analysis_key(req)
    (Path(req["study"]) / "IM0003.dcm").write_bytes(b"x")
    k3 = analysis_key(req)
    Path(req["labs"][0]).write_text("loinc,value,unit\n2160-0,2.5,mg/dL\n")
    k4 = analysis_key(req)
    assert len({key, k2, k3, k4, analysis_key({**req, "series_uid": "1.2.4"}),
                analysis_key({**req, "confirm_identity": True})}) == 6


def test_a_missing_input_gives_no_key(tmp_path: Path) -> None:
    req = _inputs(tmp_path)
    assert analysis_key({**req, "labs": [str(tmp_path / "gone.csv")]}) is None
    assert analysis_key({**req, "study": str(tmp_path / "no-such-folder")}) is None



def test_a_folder_too_large_to_fingerprint_quickly_gives_no_key(tmp_path: Path, monkeypatch) -> None:
    import inference.analysis_cache as ac

    req = _inputs(tmp_path)
    monkeypatch.setattr(ac, "MAX_FILES", 2)  # the study folder holds 3 files
    assert ac.analysis_key(req) is None


def test_only_a_finished_analysis_with_the_same_key_is_found(tmp_path: Path) -> None:
    req = _inputs(tmp_path)
    key = analysis_key(req)
    root = tmp_path / "analyses"
    old, new, crashed, other = (root / n for n in ("20260101-090000-000001", "20260102-090000-000001",
                                                   "20260103-090000-000001", "20260104-090000-000001"))
    for d in (old, new, crashed, other):
        d.mkdir(parents=True)
    for d in (old, new, other):
        (d / "findings.json").write_text("{}")
        write_key(d, key if d is not other else "another-key", req)
    (crashed / KEY_FILE).write_text(json.dumps({"key": key}))  # a key without findings.json is not a result
    assert find_reusable(root, key) == (new, True)
    assert json.loads((new / KEY_FILE).read_text())["request"]["study"] == req["study"]
    assert find_reusable(root, "nothing-like-it") == (None, False) and find_reusable(root, None) == (None, False)
    assert find_reusable(tmp_path / "absent", key) == (None, False)


def test_a_dicomdir_stands_for_the_images_beside_it(tmp_path: Path) -> None:
    """Opening a DICOMDIR: an image replaced beside it (the index itself unchanged) is a new input."""
    req = _inputs(tmp_path)
    dicomdir = Path(req["study"]) / "DICOMDIR"
    dicomdir.write_bytes(b"index")
    req = {**req, "study": str(dicomdir)}
    key = analysis_key(req)
    im = Path(req["study"]).parent / "IM0002.dcm"
    st = im.stat()
    os.utime(im, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert key is not None and analysis_key(req) != key


def test_a_review_is_an_input_but_reopening_after_one_finds_the_analysis_of_the_same_inputs(tmp_path: Path) -> None:
    """An analysis given the reader's review is found again only with that review; after the reader
    changes it, the newest analysis of the same CT and files -- with an older review or none -- is
    what reopening shows (api.find_reusable_analysis), and one of other inputs never is."""
    from inference.analysis_cache import analysis_keys, inputs_key
    from inference.api import find_reusable_analysis

    def as_sent(r: dict) -> dict:  # the request as the viewer sends it: both keys from one pass
        key, inputs = analysis_keys(r)
        return {**r, "cache_key": key, "inputs_key": inputs}

    req = _inputs(tmp_path)
    review = tmp_path / "review.json"
    review.write_text('{"schema": "clinview.review/1", "nodules": []}')
    root = tmp_path / "analyses"
    plain_dir, reviewed_dir = root / "20260101-090000-000001", root / "20260102-090000-000001"
    with_review = {**req, "review": str(review)}
    for d, r in ((plain_dir, req), (reviewed_dir, with_review)):
        d.mkdir(parents=True)
        (d / "findings.json").write_text("{}")
        write_key(d, analysis_key(r), r)
    assert analysis_key(with_review) != analysis_key(req) and inputs_key(with_review) == analysis_key(req)
    assert find_reusable_analysis(root, as_sent(with_review)) == (reviewed_dir, True)
    st = review.stat()
    review.write_text('{"schema": "clinview.review/1", "nodules": [{"id": 1, "review": "rejected"}]}')
    os.utime(review, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert find_reusable_analysis(root, as_sent(with_review)) == (reviewed_dir, False)  # the newest of the same inputs
    assert find_reusable_analysis(root, as_sent(req)) == (plain_dir, True)
    Path(req["labs"][0]).write_text("loinc,value,unit\n2160-0,9.9,mg/dL\n")
    assert find_reusable_analysis(root, as_sent(with_review)) == (None, False)
