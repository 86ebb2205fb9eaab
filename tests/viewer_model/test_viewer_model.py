"""ViewerModel without Qt: cursor/slices, window presets, layout, zoom,
overlays and settings behave as a reader expects."""

from __future__ import annotations

import numpy as np
import pytest

from tests.viewer_model.phantoms import sphere_volume
from viewer.model.settings import MAX_RECENT, Settings
from viewer.model.viewer_model import ViewerModel


def _model():
    m = ViewerModel()
    m.set_volume(sphere_volume(shape=(20, 32, 30)))
    return m


def test_open_centres_cursor_and_scroll_clamps() -> None:
    m = _model()
    assert m.slice_index("axial") == 10 or m.slice_index("axial") == 9
    seen = []
    m.cursor_changed.connect(seen.append)
    m.step_slice("axial", 3)
    assert seen[-1] == frozenset({"axial"})  # coronal/sagittal slices do not change
    m.step_slice("axial", 1000)
    assert m.slice_index("axial") == 19
    m.step_slice("axial", -1000)
    assert m.slice_index("axial") == 0


def test_cursor_links_the_three_planes() -> None:
    m = _model()
    m.set_cursor_voxel((5, 7, 21))
    assert (m.slice_index("axial"), m.slice_index("coronal"), m.slice_index("sagittal")) == (5, 7, 21)
    lps = m.cursor_lps()
    m.set_cursor_voxel((0, 0, 0))
    m.set_cursor_lps(lps)
    assert np.allclose(m.cursor, (5, 7, 21))


def test_presets_are_the_documented_values() -> None:
    # clinical-facts.md §9.2 (OHIF lung/soft tissue/bone; 350/50 mediastinum)
    m = _model()
    for name, (w, lvl) in {"lung": (1500, -600), "mediastinum": (350, 50), "bone": (2500, 480),
                           "soft tissue": (400, 40)}.items():
        m.apply_preset(name)
        assert (m.window.width, m.window.level) == (w, lvl)
        assert m.preset_name() == name
    with pytest.raises(KeyError, match="lung"):
        m.apply_preset("liver-ish")
    m.set_window(-5, 10)
    assert m.window.width >= 1  # never a zero/negative window


def test_maximise_and_restore() -> None:
    m = _model()
    m.set_layout("2x2")
    m.toggle_maximize("sagittal")
    assert m.layout == "single" and m.visible_views() == ("sagittal",)
    m.toggle_maximize("sagittal")
    assert m.layout == "2x2" and len(m.visible_views()) == 4
    with pytest.raises(ValueError):
        m.set_layout("3x3")


def test_sync_zoom_is_optional() -> None:
    m = _model()
    m.set_sync_zoom(True)
    m.set_zoom("axial", 2.0)
    assert m.zoom["coronal"] == 2.0
    m.set_sync_zoom(False)
    m.set_zoom("axial", 3.0)
    assert m.zoom["coronal"] == 2.0 and m.zoom["axial"] == 3.0
    m.reset_views()
    assert set(m.zoom.values()) == {1.0}


def test_slab_slices_follow_spacing() -> None:
    m = _model()  # 2.5 mm slices, 0.7 mm pixels
    m.set_slab_mm(10)
    assert m.slab_slices("axial") == 4
    assert m.slab_slices("coronal") == 14
    m.set_slab_mm(0)
    assert m.slab_slices("axial") == 1


def test_overlay_must_match_volume_and_new_volume_clears_state() -> None:
    m = _model()
    with pytest.raises(ValueError, match="shape"):
        m.set_label_overlay("nodules", np.zeros((2, 2, 2), np.uint8), {1: (255, 0, 0)})
    m.set_label_overlay("nodules", np.zeros(m.volume.shape, np.uint8), {1: (255, 0, 0)})
    m.update_overlay("nodules", opacity=0.8)
    assert m.overlays["nodules"].opacity == 0.8
    m.set_volume(sphere_volume(shape=(10, 16, 16)))
    assert m.overlays == {} and len(m.measurements) == 0


def test_hover_readout_gives_hu_and_lps() -> None:
    m = _model()
    c = np.array(m.volume.shape) // 2
    m.set_hover(c)
    hu, lps = m.hover_readout()
    assert hu == 40  # inside the sphere
    assert np.allclose(lps, m.volume.voxel_to_lps(c))
    m.set_hover((-5, 0, 0))
    assert m.hover_readout() is None


def test_recent_list_is_bounded_and_deduplicated() -> None:
    s = Settings()
    for i in range(MAX_RECENT + 5):
        s.add_recent(f"/d/{i}")
    s.add_recent("/d/3")
    assert s.recent[0] == "/d/3" and len(s.recent) == MAX_RECENT and s.recent.count("/d/3") == 1
