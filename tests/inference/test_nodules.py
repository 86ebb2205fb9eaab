"""Nodule detection (candidates + classifier) with the shipped weights on small synthetic CTs."""

from __future__ import annotations

import numpy as np
import pytest

from inference.errors import CancelledError
from inference.pipeline.nodules import components
from inference.types import Volume

torch = pytest.importorskip("torch")


def _ball(shape, c, r):
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    return (z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2 <= r * r


def test_components_filters_and_orders_by_size() -> None:
    shape = (40, 60, 60)
    lungs = np.zeros(shape, np.uint8)
    lungs[:, :, :40] = 1
    prob = np.zeros(shape, np.float32)
    prob[_ball(shape, (10, 20, 10), 3)] = 0.7   # small, in lung
    prob[_ball(shape, (25, 30, 20), 6)] = 0.95  # large, in lung
    prob[_ball(shape, (20, 30, 52), 6)] = 0.99  # outside the lungs
    prob[_ball(shape, (35, 10, 10), 1)] = 0.99  # below min volume
    prob[_ball(shape, (5, 50, 30), 4)] = 0.55   # below min probability
    lab, p = components(prob, lungs, (1.0, 1.0, 1.0), threshold=0.5, min_volume_mm3=15, min_probability=0.6)
    assert lab.max() == 2 and p == [0.95, 0.7]
    assert lab[25, 30, 20] == 1 and lab[10, 20, 10] == 2
    assert lab[20, 30, 52] == 0 and lab[35, 10, 10] == 0


def test_vessel_like_tube_is_dropped_by_the_elongation_filter() -> None:
    shape = (40, 60, 60)
    lungs = np.ones(shape, np.uint8)
    prob = np.zeros(shape, np.float32)
    prob[5:35, 20:23, 20:23] = 0.9  # 30 mm long, 3 mm wide: a vessel
    prob[_ball(shape, (20, 45, 45), 4)] = 0.9
    lab, _ = components(prob, lungs, (1.0, 1.0, 1.0), max_elongation=3.0)
    assert lab.max() == 1 and lab[20, 45, 45] == 1 and lab[20, 21, 21] == 0
    lab, _ = components(prob, lungs, (1.0, 1.0, 1.0), max_elongation=None)
    assert lab.max() == 2


def _one_nodule_phantom(seed: int, kind: str, size_mm: tuple[float, float], matrix: int, pixel_mm: float, slice_mm: float):
    """A plain chest phantom (no emphysema, effusion, atelectasis or clipped field) with one nodule of ``kind``."""
    from inference.synth.phantom import make_phantom

    ph = make_phantom(seed, shape=(matrix, matrix), pixel_mm=pixel_mm, slice_mm=slice_mm, n_nodules=1,
                      nodule_types=(kind,), nodule_size_mm=size_mm, emphysema=False,
                      effusion=False, atelectasis=False, fov_clip=False)
    vol = Volume(array=ph.hu, spacing=tuple(ph.spacing), origin=tuple(ph.origin), direction=np.asarray(ph.direction))
    return vol, ph


@pytest.fixture(scope="module")
def one_nodule_ct():
    return _one_nodule_phantom(7001, "solid", (12.0, 14.0), 200, 1.6, 2.5)


@pytest.mark.slow
def test_finds_and_segments_a_12mm_nodule_deterministically(one_nodule_ct) -> None:
    from inference.pipeline.imaging import run_imaging

    vol, ph = one_nodule_ct
    fr: list[float] = []
    r1 = run_imaging(vol, device="cpu", progress=lambda p: fr.append(p.fraction))
    truth = ph.nodules == ph.records[0].id
    hits = [n for n in r1.nodules if truth[tuple(int(round(v)) for v in n["center_voxel_zyx"])]]
    assert hits, f"nodule not found; findings: {[n['center_voxel_zyx'] for n in r1.nodules]}"
    n = hits[0]
    pred = r1.nodule_labels == n["id"]
    dice = 2 * (pred & truth).sum() / (pred.sum() + truth.sum())
    assert dice > 0.7
    assert abs(n["mean_diameter_mm"] - ph.records[0].mean_diameter_mm) < 2.0
    # the shipped model's calibrated probability, at or above its operating point
    assert n["review"] == "pending" and r1.model["name"] == "nodules"
    from inference.models.catalogue import read_model_info

    assert read_model_info("nodules").metadata["postprocess"]["min_probability"] <= n["probability"] <= 1.0
    assert n["location"]["side"] == ph.records[0].side
    # progress monotone to 1, ids 1..n by volume
    assert fr == sorted(fr) and fr[-1] == 1.0
    vols = [m["volume_mm3"] for m in r1.nodules]
    assert vols == sorted(vols, reverse=True) and [m["id"] for m in r1.nodules] == list(range(1, len(vols) + 1))
    # deterministic on the CPU -- and the same when the evaluation keeps the detector's trace
    r2 = run_imaging(vol, device="cpu", trace=True)
    assert np.array_equal(r1.nodule_labels, r2.nodule_labels)
    assert [m["probability"] for m in r1.nodules] == [m["probability"] for m in r2.nodules]
    assert r1.trace is None
    tr = r2.trace
    assert tr.candidate_probabilities.size == int(tr.candidate_labels.max()) > 0
    # the classifier's score of the candidate under the finding is the finding's probability
    on = tr.candidate_labels[pred]
    best = int(np.bincount(on[on > 0]).argmax())
    assert round(float(tr.candidate_probabilities[best - 1]), 3) == n["probability"]
    assert tr.dense_labels is not None and tr.dense_probability_map is not None  # the second reader ran


def test_cancel_stops_inside_the_nodule_detection(one_nodule_ct) -> None:
    from inference.pipeline.imaging import run_imaging

    vol, _ = one_nodule_ct
    calls = {"n": 0}

    def cancel() -> bool:
        calls["n"] += 1
        return calls["n"] > 4  # after lungs and model load, during candidate detection

    with pytest.raises(CancelledError):
        run_imaging(vol, device="cpu", cancel=cancel)


@pytest.mark.slow
def test_a_chest_ct_without_nodules_gives_no_findings() -> None:
    """A clean chest (vessels, airways, fissures, no nodule) at a clinical
    reconstruction: the shipped model reports nothing. (Over all 36 held-out
    synthetic patients it averages 0.56 false findings per scan; a chest
    without any nodule must not be the case that produces them.)"""
    from inference.synth.phantom import make_phantom
    from inference.pipeline.imaging import run_imaging

    ph = make_phantom(7003, shape=(320, 320), pixel_mm=1.0, slice_mm=2.5, n_nodules=0, emphysema=False,
                      effusion=False, atelectasis=False, fov_clip=False)
    assert not ph.records
    r = run_imaging(ph.to_volume(), device="cpu")
    assert r.nodules == [], [(n["mean_diameter_mm"], n["probability"], n["center_voxel_zyx"]) for n in r.nodules]
    assert r.lungs["right_ml"] > 1000 and r.lungs["left_ml"] > 1000


def test_the_model_grid_averages_noise_instead_of_sampling_it() -> None:
    """Down to the dense network's 2 mm, a 0.8 mm image's noise must fall as averaging over the model voxel
    predicts, not stay as it is (plain trilinear sampling), and a uniform
    region and the extent in mm must stay what they were."""
    from inference.pipeline.nodules import model_grid_shape, to_model_grid

    rng = np.random.default_rng(0)
    sp, model = (1.25, 0.8, 0.8), (2.0, 2.0, 2.0)
    noise = rng.normal(-800.0, 100.0, (64, 160, 160)).astype(np.float32)
    out = to_model_grid(noise, sp, model)[0, 0].numpy()
    assert out.shape == model_grid_shape(noise.shape, sp, model) == (40, 64, 64)
    inner = out[5:-5, 5:-5, 5:-5]
    assert abs(float(inner.mean()) + 800.0) < 2.0
    plain = torch.nn.functional.interpolate(torch.from_numpy(noise)[None, None], size=out.shape, mode="trilinear",
                                            align_corners=False)[0, 0].numpy()[5:-5, 5:-5, 5:-5]
    # a box average over the 2 mm voxel (~10 native voxels) gives 100 / sqrt(10) = 32 HU; plain sampling ~50
    assert float(inner.std()) < 0.6 * float(plain.std())
    assert 20.0 < float(inner.std()) < 36.0


@pytest.fixture(scope="module")
def ground_glass_ct():
    return _one_nodule_phantom(7002, "ground-glass", (14.0, 16.0), 224, 1.5, 2.0)


def _dense_reader() -> tuple:
    from inference.models.catalogue import load_model, read_model_info

    return load_model(str(read_model_info("nodules").metadata["second_reader"]["model"]))


@pytest.mark.slow
def test_the_dense_second_reader_reports_ground_glass_once_and_leaves_solid_nodules_to_the_classifier(
        ground_glass_ct, one_nodule_ct) -> None:
    """With nothing kept, the shipped dense network reports the ground-glass nodule with its own mask; once
    a kept finding holds it, the network adds nothing there (a nodule is never reported twice); a solid
    nodule it leaves to the classifier (its postprocess.max_mean_hu), so it adds no solid look-alikes."""
    from scipy import ndimage as ndi

    from inference.pipeline.detect import add_dense_findings
    from inference.pipeline.lungs import segment_lungs

    dense = _dense_reader()
    vol, ph = ground_glass_ct
    lungs = segment_lungs(vol)
    truth = ph.nodules == ph.records[0].id
    kept = np.zeros(vol.shape, np.uint16)
    boxes: list = []
    added = add_dense_findings(vol, lungs, kept, boxes, dense, first_id=1, device=torch.device("cpu"), warnings=[])
    hit = [i for i in added if (kept[boxes[i]] == i + 1)[truth[boxes[i]]].any()]
    assert len(hit) == 1 and float(dense[1].metadata["postprocess"]["min_probability"]) <= added[hit[0]] <= 1.0
    pred = kept == hit[0] + 1
    assert 2 * (pred & truth).sum() / (pred.sum() + truth.sum()) > 0.6
    # the same nodule already reported (id 1): nothing new overlaps it
    kept2 = np.zeros(vol.shape, np.uint16)
    kept2[ndi.binary_erosion(truth, iterations=2)] = 1
    boxes2: list = [ndi.find_objects(kept2)[0]]
    added2 = add_dense_findings(vol, lungs, kept2, boxes2, dense, first_id=2, device=torch.device("cpu"), warnings=[])
    assert not any((kept2[boxes2[i]] == i + 1)[truth[boxes2[i]]].any() for i in added2)
    assert len(added2) == len(added) - 1
    # a solid 12 mm nodule: not the second reader's to report
    svol, sph = one_nodule_ct
    skept = np.zeros(svol.shape, np.uint16)
    sboxes: list = []
    sadded = add_dense_findings(svol, segment_lungs(svol), skept, sboxes, dense, first_id=1, device=torch.device("cpu"),
                                warnings=[])
    assert not (skept[sph.nodules == sph.records[0].id] > 0).any(), sadded


@pytest.mark.slow
def test_a_second_reader_with_altered_weights_is_left_out_with_one_warning(one_nodule_ct, tmp_path) -> None:
    """Altered dense weights must not stop the analysis: the classifier still reports, one warning says
    which model was left out, and the findings do not name it."""
    import shutil

    from inference.models.catalogue import models_root, read_model_info
    from inference.pipeline.imaging import run_imaging, second_reader_name

    vol, ph = one_nodule_ct
    name = str(second_reader_name(read_model_info("nodules").metadata, float(vol.spacing[0])))  # the one this CT gets
    root = tmp_path / "models"
    shutil.copytree(models_root(), root)
    w = root / name / "model.safetensors"
    data = bytearray(w.read_bytes())
    data[-1] ^= 0xFF
    w.write_bytes(bytes(data))
    res = run_imaging(vol, device="cpu", model_root=root)
    assert [x for x in res.warnings if "second reader" in x and name in x], res.warnings
    assert "dense_model" not in res.model
    assert any(n["detected_by"] == "classifier" for n in res.nodules)


def test_thin_slice_cts_get_the_fine_second_reader_and_thick_ones_the_2mm_one() -> None:
    """Which dense network reads a CT depends on its slices: the 1.25 mm one on slices up to the nodule
    model's ``thin_slices.max_slice_mm`` (on 5 mm slices it reads noise as ground glass), the 2 mm one
    above; a model without a thin-slice reader always names its one reader."""
    from inference.models.catalogue import read_model_info
    from inference.pipeline.imaging import second_reader_name

    meta = read_model_info("nodules").metadata
    thin = meta["second_reader"]["thin_slices"]
    assert read_model_info(thin["model"]).spacing == (1.25, 1.25, 1.25)
    assert second_reader_name(meta, 1.25) == second_reader_name(meta, float(thin["max_slice_mm"])) == thin["model"]
    assert second_reader_name(meta, 5.0) == meta["second_reader"]["model"] != thin["model"]
    assert second_reader_name({"second_reader": {"model": "nodules-dense"}}, 1.0) == "nodules-dense"
    assert second_reader_name({}, 1.0) is None


@pytest.mark.slow
def test_the_thin_slice_reader_finds_a_7mm_ground_glass_nodule_the_2mm_reader_cannot_see() -> None:
    """The reason the 1.25 mm reader exists: a 7-8 mm ground-glass nodule on 1.25 mm slices is about three
    2 mm voxels across. Through the whole product path it is reported by the fine network (named in the
    findings' model block); the 2 mm network alone reports nothing on it."""
    from scipy import ndimage as ndi

    from inference.pipeline.detect import add_dense_findings
    from inference.pipeline.imaging import run_imaging
    from inference.pipeline.lungs import segment_lungs

    vol, ph = _one_nodule_phantom(7003, "ground-glass", (7.0, 8.0), 256, 1.2, 1.25)
    truth = ph.nodules == ph.records[0].id
    res = run_imaging(vol, device="cpu")
    assert res.model["dense_model"]["name"] == "nodules-dense-fine"
    hits = [n for n in res.nodules if (res.nodule_labels == n["id"])[truth].any()]
    assert len(hits) == 1 and hits[0]["detected_by"] == "dense network", [(n["id"], n["detected_by"]) for n in res.nodules]
    kept = np.zeros(vol.shape, np.uint16)
    boxes: list = []
    add_dense_findings(vol, segment_lungs(vol), kept, boxes, _dense_reader(), first_id=1, device=torch.device("cpu"),
                       warnings=[])
    assert not (kept[ndi.binary_dilation(truth, iterations=2)] > 0).any()


def test_a_lung_crop_that_fits_is_one_window_padded_to_what_the_network_divides() -> None:
    """The dense network runs the whole 2 mm lung crop as one window when it fits (8 tiles computed it 3.5x
    over); every axis stays at least the trained window, and a crop over the cap, or a model without the
    option, keeps the tiles."""
    from inference.pipeline.nodules import window_size

    opt = {"whole_crop_max_voxels": 8_000_000, "size_divisor": 16}
    assert window_size((160, 98, 128), (96, 96, 96), opt) == (160, 112, 128)
    assert window_size((40, 98, 150), (96, 96, 96), opt) == (96, 112, 160)
    assert window_size((250, 200, 220), (96, 96, 96), opt) == (96, 96, 96)
    assert window_size((160, 98, 128), (96, 96, 96), {}) == (96, 96, 96)


@pytest.mark.slow
def test_one_window_finds_the_ground_glass_nodule_the_tiles_find(ground_glass_ct) -> None:
    """The speed-ups must not change what the second reader sees: on a ground-glass nodule, the shipped dense
    network's probability over the nodule agrees between one window and 96³ tiles, and between the
    channels-last and the default layout."""
    from inference.pipeline.lungs import segment_lungs
    from inference.pipeline.nodules import lung_crop, normalise, predict_probability, to_model_grid, window_size

    net, info = _dense_reader()
    vol, ph = ground_glass_ct
    crop = lung_crop(segment_lungs(vol), vol.spacing)
    t = normalise(to_model_grid(vol.array[crop], vol.spacing, info.spacing), info.normalisation)
    inf = info.metadata["inference"]
    tile = tuple(inf["roi_size"])
    whole = window_size(tuple(t.shape[2:]), tile, inf)
    assert whole != tile
    kw = dict(device=torch.device("cpu"), sw_batch_size=1, overlap=float(inf["overlap"]), cpu_autocast=inf["cpu_autocast"])
    p_tiles = predict_probability(net, t, roi_size=tile, **kw)
    p_whole = predict_probability(net, t, roi_size=whole, **kw)
    truth = torch.nn.functional.interpolate(torch.from_numpy((ph.nodules[crop] == ph.records[0].id).astype(np.float32))[None, None],
                                            size=tuple(t.shape[2:]), mode="trilinear", align_corners=False)[0, 0] > 0.5
    a, b = p_tiles[0, 0] > 0.5, p_whole[0, 0] > 0.5
    # the product's CPU layout (channels-last 3-D, 1.6x faster here) gives the same probabilities
    import copy

    last = copy.deepcopy(net).to(memory_format=torch.channels_last_3d)
    p_last = predict_probability(last, t, roi_size=whole, channels_last=True, **kw)
    assert torch.allclose(p_last, p_whole, atol=1e-3)
    # and so does the decoder without its (empty) edge padding, as segment_nodules runs it: bit for bit
    from inference.pipeline.nodules import decoder_without_edge_padding

    ups = [m for m in last.modules() if hasattr(m, "is_pad")]
    assert len(ups) == 4 and all(m.is_pad for m in ups)
    with decoder_without_edge_padding(last, whole, int(inf["size_divisor"])):
        assert not any(m.is_pad for m in ups)
        assert torch.equal(predict_probability(last, t, roi_size=whole, channels_last=True, **kw), p_last)
    assert all(m.is_pad for m in ups)  # the cached network is left as it was
    with decoder_without_edge_padding(last, (whole[0] + 1, *whole[1:]), int(inf["size_divisor"])):
        assert all(m.is_pad for m in ups)  # an odd window keeps the padding it needs
    # and so do the decoder's transposed convolutions as matrix products, as segment_nodules runs them on the CPU
    from inference.pipeline.nodules import deconv_as_matmul

    with decoder_without_edge_padding(last, whole, int(inf["size_divisor"])), deconv_as_matmul(last):
        p_matmul = predict_probability(last, t, roi_size=whole, channels_last=True, **kw)
    assert torch.allclose(p_matmul, p_last, atol=1e-3)
    assert int((a & truth).sum()) > 0.5 * int(truth.sum())
    assert 2 * int((a & b & truth).sum()) / (int((a & truth).sum()) + int((b & truth).sum())) > 0.9


def test_an_odd_window_never_runs_without_the_padding_another_thread_switched_off() -> None:
    """The dense network is cached and shared by the analyses of one process. While one runs a window that
    needs no edge padding (flags off), another's odd window must still get its padding -- it waits -- and
    the flags are as they were afterwards."""
    import threading

    from monai.networks.nets import BasicUNet

    from inference.pipeline.nodules import decoder_without_edge_padding

    net = BasicUNet(spatial_dims=3, in_channels=1, out_channels=1, features=(4, 4, 4, 4, 4, 4))
    ups = [m for m in net.modules() if hasattr(m, "is_pad")]
    entered, seen = threading.Event(), []

    def even() -> None:
        with decoder_without_edge_padding(net, (32, 32, 32), 16):
            entered.set()
            threading.Event().wait(0.3)  # the other thread tries to start meanwhile
            seen.append(("even", [m.is_pad for m in ups]))

    def odd() -> None:
        entered.wait(5)
        with decoder_without_edge_padding(net, (33, 32, 32), 16):
            seen.append(("odd", [m.is_pad for m in ups]))

    threads = [threading.Thread(target=even), threading.Thread(target=odd)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert seen == [("even", [False] * 4), ("odd", [True] * 4)]
    assert all(m.is_pad for m in ups)


def test_transposed_convolutions_as_matrix_products_give_the_layer_s_own_output_and_are_restored() -> None:
    """deconv_as_matmul swaps the kernel-2 stride-2 upsampling of a MONAI BasicUNet for one matrix product per layer
    (the network 1.3x faster on the CPU in bf16): the same output in float32 and under bf16 autocast, channels-last, any other
    transposed convolution left alone, and every layer its own again after the block."""
    from monai.networks.nets import BasicUNet

    from inference.pipeline.nodules import deconv_as_matmul

    torch.manual_seed(0)
    net = BasicUNet(spatial_dims=3, in_channels=1, out_channels=1, features=(4, 6, 8, 8, 12, 4)).eval()
    other = torch.nn.ConvTranspose3d(3, 2, kernel_size=3, stride=2, padding=1)
    net.add_module("not_two_by_two", other)
    layers = [m for m in net.modules() if isinstance(m, torch.nn.ConvTranspose3d)]
    assert len(layers) == 5
    x = torch.rand(1, 1, 32, 48, 32)
    with torch.inference_mode():
        ref = net(x)
        ref_bf16 = None
        with torch.autocast("cpu", dtype=torch.bfloat16):
            ref_bf16 = net(x.contiguous(memory_format=torch.channels_last_3d)).float()
        with deconv_as_matmul(net):
            assert [("forward" in m.__dict__) for m in layers] == [True] * 4 + [False]
            got = net(x)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                got_bf16 = net(x.contiguous(memory_format=torch.channels_last_3d)).float()
            up = layers[0](torch.rand(1, layers[0].in_channels, 3, 4, 5))
    assert torch.allclose(got, ref, atol=1e-5)
    assert torch.allclose(got_bf16, ref_bf16, atol=2e-2)
    assert up.shape[2:] == (6, 8, 10) and up.is_contiguous(memory_format=torch.channels_last_3d)
    assert not any("forward" in m.__dict__ for m in layers)


def test_cancel_stops_the_dense_network_inside_its_one_window(ground_glass_ct) -> None:
    """One window over the whole lung crop is one network call: a cancel pressed during it must stop it
    between the network's blocks, not after the whole window (1-2 s here, 4.4 s at the size cap)."""
    from inference.pipeline.lungs import segment_lungs
    from inference.pipeline.nodules import lung_crop, normalise, predict_probability, to_model_grid, window_size

    net, info = _dense_reader()
    vol, _ = ground_glass_ct
    crop = lung_crop(segment_lungs(vol), vol.spacing)
    t = normalise(to_model_grid(vol.array[crop], vol.spacing, info.spacing), info.normalisation)
    inf = info.metadata["inference"]
    whole = window_size(tuple(t.shape[2:]), tuple(inf["roi_size"]), inf)
    reached_the_end: list[bool] = []
    last = list(net.children())[-1]
    handle = last.register_forward_hook(lambda *_: reached_the_end.append(True))
    calls = {"n": 0}

    def cancel() -> bool:
        calls["n"] += 1
        return calls["n"] > 3  # the window's own check, then two blocks of the network

    try:
        with pytest.raises(CancelledError):
            predict_probability(net, t, roi_size=whole, device=torch.device("cpu"), sw_batch_size=1, cancel=cancel,
                                cpu_autocast=inf["cpu_autocast"])
    finally:
        handle.remove()
    assert calls["n"] == 4 and not reached_the_end
    # and the hooks are gone: the same network runs to the end afterwards
    p = predict_probability(net, t, roi_size=whole, device=torch.device("cpu"), sw_batch_size=1, cancel=lambda: False,
                            cpu_autocast=inf["cpu_autocast"])
    assert p.shape == t.shape


def test_preloading_the_nodule_model_loads_both_second_readers_so_the_first_ct_waits_for_neither() -> None:
    """The spare worker preloads while it waits: the thick- and thin-slice readers must both be in the cache
    afterwards (which one a CT needs is known only once it is read), so a request loads no network."""
    from inference.models.catalogue import read_model_info
    from inference.pipeline.imaging import _cached_model, clear_model_cache, preload_model, second_reader_names

    names = second_reader_names(read_model_info("nodules").metadata)
    assert len(names) == 2 and len(set(names)) == 2
    clear_model_cache()
    preload_model("nodules", "cpu")
    loaded = _cached_model.cache_info().currsize
    for name in ["nodules", *names]:
        _cached_model(name, "cpu", None)
    info = _cached_model.cache_info()
    clear_model_cache()
    assert loaded == 3 and info.currsize == 3 and info.hits >= 3


@pytest.mark.slow
def test_a_large_nodule_merged_into_a_rejected_candidate_is_reported_by_the_second_reader() -> None:
    """Validation patient 5030 (never a held-out patient): a 27 mm spiculated nodule whose candidate merged with
    its neighbours, and the classifier rejected it -- the worst kind of miss. The second reader marks it on its
    own, solid and free in aerated lung (``second_reader.lung_surrounded``): reported through the whole
    product path, and measured within 2 mm. Fails on nodules 2.5.0, which reported no solid second-reader mark."""
    from inference.models.fpr_data import draw_patient
    from inference.models.nodule_eval import match_findings
    from inference.pipeline.imaging import run_imaging

    ph = draw_patient(5030, n_nodules=4)
    vol = ph.to_volume()
    res = run_imaging(vol, device="cpu")
    matches, _ = match_findings(res.nodules, res.nodule_labels, np.asarray(ph.nodules), vol.spacing)
    big = [m for m in matches if m["diameter_mm"] > 25]
    assert len(big) == 1 and big[0]["finding"] is not None, [(m["diameter_mm"], m["finding"]) for m in matches]
    n = big[0]["finding"]
    assert n["detected_by"] == "dense network" and n["type"] == "solid"
    assert abs(n["mean_diameter_mm"] - big[0]["diameter_mm"]) < 2.0
    assert res.model["dense_model"]["lung_surrounded"]["min_ring_air"] > 0
