"""Model catalogue: checksums verified before any weights are used."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from inference.errors import ModelIntegrityError  # noqa: E402
from inference.models.catalogue import load_model, read_model_info, save_model, sha256_file  # noqa: E402

TINY = {"name": "monai.BasicUNet",
        "kwargs": {"spatial_dims": 3, "in_channels": 1, "out_channels": 1, "features": [2, 2, 2, 2, 2, 2]}}


def _tiny(root: Path) -> Path:
    from inference.models.catalogue import build_network

    torch.manual_seed(0)
    net = build_network(TINY)
    save_model(net, {"name": "tiny", "version": "0.0.1", "architecture": TINY,
                     "spacing_zyx_mm": [2, 2, 2], "normalisation": {"type": "clip_scale"}}, root / "tiny")
    return root / "tiny"


def test_shipped_nodule_model_loads_and_matches_its_checksum() -> None:
    net, info = load_model("nodules", device="cpu")
    assert info.sha256 == sha256_file(info.path / "model.safetensors")
    assert info.spacing is not None and len(info.spacing) == 3
    # the metrics a reviewer needs to judge it: validation sensitivity, FP rate, and the candidate ceiling
    assert {"val_sensitivity_ge5mm", "val_fp_per_scan", "candidate_stage_sensitivity_ge5mm", "val_auc_candidates"} <= set(info.metrics)
    x, f = torch.zeros(1, 3, 32, 32, 32), torch.zeros(1, 14)
    with torch.no_grad():
        assert net(x, f).shape == (1, 1)


def test_roundtrip_gives_identical_outputs(tmp_path: Path) -> None:
    from inference.models.catalogue import build_network

    d = _tiny(tmp_path)
    torch.manual_seed(0)
    ref = build_network(TINY).eval()
    net, info = load_model("tiny", device="cpu", root=tmp_path)
    x = torch.randn(1, 1, 32, 32, 32)
    with torch.no_grad():
        assert torch.equal(ref(x), net(x))
    assert info.version == "0.0.1" and info.spacing == (2.0, 2.0, 2.0)
    assert json.loads((d / "metadata.json").read_text())["sha256"] == info.sha256


def test_one_altered_byte_is_refused_naming_the_file(tmp_path: Path) -> None:
    d = _tiny(tmp_path)
    w = d / "model.safetensors"
    data = bytearray(w.read_bytes())
    data[-1] ^= 0x01
    w.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError) as ei:
        load_model("tiny", device="cpu", root=tmp_path)
    msg = ei.value.one_line()
    assert "model.safetensors" in msg and "sha256" in msg and "reinstall" in msg


def test_unknown_file_in_model_folder_is_refused(tmp_path: Path) -> None:
    d = _tiny(tmp_path)
    (d / "model.pt").write_bytes(b"pickle could run code")
    with pytest.raises(ModelIntegrityError, match="model.pt"):
        read_model_info("tiny", root=tmp_path)


def test_unknown_model_name_lists_known_ones(tmp_path: Path) -> None:
    _tiny(tmp_path)
    with pytest.raises(ModelIntegrityError) as ei:
        load_model("nosuch", device="cpu", root=tmp_path)
    assert "nosuch" in ei.value.one_line() and "tiny" in ei.value.one_line()


def test_unregistered_architecture_is_refused(tmp_path: Path) -> None:
    d = _tiny(tmp_path)
    meta = json.loads((d / "metadata.json").read_text())
    meta["architecture"]["name"] = "evil.Net"
    (d / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ModelIntegrityError, match="architecture"):
        load_model("tiny", device="cpu", root=tmp_path)


def test_lungs_model_is_described_without_weights() -> None:
    info = read_model_info("lungs")
    assert info.sha256 is None and "classical" in json.dumps(info.architecture)
    with pytest.raises(ModelIntegrityError, match="no weights"):
        load_model("lungs", device="cpu")


def test_choose_device_cuda_request_without_cuda_falls_back_with_a_note() -> None:
    from inference.models.device import choose_device

    dev, note = choose_device("cuda")
    if torch.cuda.is_available():
        assert dev.type == "cuda"
    else:
        assert dev.type == "cpu" and "no CUDA" in note
    with pytest.raises(ValueError):
        choose_device("tpu")
