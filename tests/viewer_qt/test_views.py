"""Slice views on real widgets: image, scrolling, window/level, crosshair,
measurements by mouse, overlays, markers, annotations, layouts."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from tests.viewer_model.phantoms import SPHERE_DIAMETER_MM
from tests.viewer_qt.conftest import OFF_CROSS, centre, click, drag, pixel, wheel
from viewer.model.measurements import line_length_mm


def grey(rgb) -> int:
    r, g, b = rgb
    assert abs(r - g) <= 2 and abs(g - b) <= 2, f"not grey: {rgb}"
    return r


def test_open_shows_the_sphere_in_all_views(loaded) -> None:
    c = centre(loaded) + OFF_CROSS
    for vid in ("axial", "coronal", "sagittal"):
        view = loaded.grid.views[vid]
        assert view.isVisible()
        inside = grey(pixel(view, c))
        outside = grey(pixel(view, c + np.array([0, 0, 25]) if vid != "sagittal" else c + np.array([0, 25, 0])))
        # lung window 1500/-600: +40 HU is near white, -800 HU dark grey
        assert inside > 200 and 60 < outside < 130, (vid, inside, outside)
    assert loaded.grid.views["axial"].orient["left"].text() == "R"
    assert loaded.grid.views["coronal"].orient["top"].text() == "S"
    assert loaded.grid.views["sagittal"].orient["left"].text() == "A"


def test_physical_aspect_of_anisotropic_voxels(loaded) -> None:
    """The sphere looks round in the coronal view although z voxels are 3.6×
    taller than x voxels: its on-screen height equals its width."""
    view = loaded.grid.views["coronal"]
    c = centre(loaded)
    r = SPHERE_DIAMETER_MM / 2
    top = view.widget_pos_of_voxel(c + np.array([r / 2.5, 0, 0]))
    bottom = view.widget_pos_of_voxel(c - np.array([r / 2.5, 0, 0]))
    left = view.widget_pos_of_voxel(c - np.array([0, 0, r / 0.7]))
    right = view.widget_pos_of_voxel(c + np.array([0, 0, r / 0.7]))
    h, w = abs(bottom.y() - top.y()), abs(right.x() - left.x())
    assert h > 20 and abs(h - w) <= 2


def test_wheel_and_keys_scroll_slices(loaded, qtbot) -> None:
    view = loaded.grid.views["axial"]
    k0 = loaded.model.slice_index("axial")
    s0 = loaded.model.cursor_lps()[2]
    wheel(view, centre(loaded), 1)  # wheel up: one slice towards the head
    assert loaded.model.slice_index("axial") == k0 + 1
    assert loaded.model.cursor_lps()[2] == pytest.approx(s0 + 2.5)
    assert f"Im {k0 + 2}/" in view.corner["bl"].text()
    wheel(view, centre(loaded), -2)
    assert loaded.model.slice_index("axial") == k0 - 1
    loaded.model.set_active_view("axial")
    loaded.setFocus()
    QTest.keyClick(loaded, Qt.Key_PageDown)
    assert loaded.model.slice_index("axial") == k0 - 1 - 10
    QTest.keyClick(loaded, Qt.Key_Up)
    assert loaded.model.slice_index("axial") == k0 - 10
    # after a click the view has the focus: the keys still mean "slice"
    cor = loaded.grid.views["coronal"]
    click(cor, centre(loaded))
    cor.setFocus()
    j0 = loaded.model.slice_index("coronal")
    QTest.keyClick(cor, Qt.Key_Down)
    assert loaded.model.active_view == "coronal" and loaded.model.slice_index("coronal") == j0 + 1  # towards the back
    # a slice outside the sphere shows lung only
    loaded.model.set_slice("axial", 0)
    assert grey(pixel(view, loaded.model.cursor + OFF_CROSS)) < 130


def test_ctrl_wheel_zooms_and_sync_is_optional(loaded) -> None:
    view = loaded.grid.views["axial"]
    loaded.model.set_sync_zoom(True)
    wheel(view, centre(loaded), 2, Qt.ControlModifier)
    assert loaded.model.zoom["axial"] > 1.2 and loaded.model.zoom["coronal"] == loaded.model.zoom["axial"]
    loaded.model.set_sync_zoom(False)
    wheel(view, centre(loaded), 2, Qt.ControlModifier)
    assert loaded.model.zoom["axial"] > loaded.model.zoom["coronal"]
    QTest.keyClick(loaded, Qt.Key_R)
    assert loaded.model.zoom["axial"] == 1.0


def test_window_level_by_key_and_by_drag(loaded) -> None:
    view = loaded.grid.views["axial"]
    c = centre(loaded)
    lung_pixel = np.array(c) + np.array([0, 3, 25])
    assert 60 < grey(pixel(view, lung_pixel)) < 130
    QTest.keyClick(loaded, Qt.Key_2)  # mediastinum 350/50: -800 HU is black
    assert (loaded.model.window.width, loaded.model.window.level) == (350, 50)
    assert grey(pixel(view, lung_pixel)) == 0
    assert "W 350  L 50" in view.corner["br"].text()
    loaded.model.set_tool("wl")
    w0 = loaded.model.window
    drag(view, c, c + np.array([0, 0, 20]))  # drag right widens the window
    assert loaded.model.window.width > w0.width


def test_click_moves_linked_crosshair(loaded) -> None:
    loaded.model.set_tool("wl")
    ax = loaded.grid.views["axial"]
    target = np.array([loaded.model.slice_index("axial"), 30, 70])
    click(ax, target)
    assert loaded.model.slice_index("coronal") == 30
    assert loaded.model.slice_index("sagittal") == 70
    cor = loaded.grid.views["coronal"]
    x, _ = cor.geom.voxel_to_scene(loaded.model.cursor)
    assert cor.crosshair_scene_pos()[0] == pytest.approx(x)
    # and from the sagittal view back to axial
    sag = loaded.grid.views["sagittal"]
    click(sag, np.array([12, 40, 70]))
    assert loaded.model.slice_index("axial") == 12


@pytest.mark.parametrize("plane", ["axial", "coronal", "sagittal"])
def test_line_by_mouse_across_sphere_reads_20mm(loaded, plane) -> None:
    """The reader drags callipers across the sphere, along the screen's
    horizontal and vertical axes, in each plane (2.5 mm slices, 0.7 mm
    pixels): every line reads 20 ± 1 mm."""
    loaded.model.set_tool("line")
    view = loaded.grid.views[plane]
    g = view.geom
    c = centre(loaded)
    for axis in (g.col_axis, g.row_axis):
        r_vox = int(SPHERE_DIAMETER_MM / 2 / loaded.model.volume.spacing[axis])  # outermost voxel centres inside
        off = np.zeros(3)
        off[axis] = r_vox
        drag(view, c - off, c + off)
    lengths = [line_length_mm(m) for m in loaded.model.measurements]
    assert len(lengths) == 2
    assert all(abs(x - SPHERE_DIAMETER_MM) <= 1.0 for x in lengths), lengths
    assert "mm" in loaded.measurement_list.list.item(0).text()
    # the lines are drawn on this slice and not on a neighbouring one
    assert view._measure_items
    loaded.model.step_slice(plane, 3)
    assert not view._measure_items


def test_ellipse_and_angle_by_mouse(loaded, qtbot) -> None:
    view = loaded.grid.views["axial"]
    c = centre(loaded)
    loaded.model.set_tool("ellipse")
    drag(view, c + np.array([0, -5, -5]), c + np.array([0, 5, 5]))
    loaded.model.set_tool("angle")
    drag(view, c + np.array([0, 0, 20]), c)
    click(view, c + np.array([0, -20, 0]))
    kinds = [m.kind for m in loaded.model.measurements]
    assert kinds == ["ellipse", "angle"]
    drag(view, c + np.array([0, 0, 20]), c)  # a second angle, abandoned with Esc
    QTest.keyClick(loaded, Qt.Key_Escape)
    click(view, c + np.array([0, 20, 0]))
    assert [m.kind for m in loaded.model.measurements] == kinds
    text = loaded.measurement_list.list.item(0).text()
    assert "40 ± 0 HU" in text
    assert "90.0°" in loaded.measurement_list.list.item(1).text()
    loaded.measurement_list.list.setCurrentRow(0)
    loaded.measurement_list.delete_selected()
    assert [m.kind for m in loaded.model.measurements] == ["angle"]


def test_overlay_pixel_shows_label_colour_and_hides_per_label(loaded) -> None:
    m = loaded.model
    vol = m.volume
    labels = np.zeros(vol.shape, np.uint8)
    labels[vol.array == 40] = 2
    labels[:, :10, :10] = 1
    loaded.set_label_overlay("nodules", labels, {1: (0, 0, 255), 2: (255, 40, 0)})
    m.update_overlay("nodules", opacity=1.0, mode="fill")
    c = centre(loaded) + OFF_CROSS
    for vid in ("axial", "coronal", "sagittal"):
        r, g, b = pixel(loaded.grid.views[vid], c)
        assert (r, g, b) == (255, 40, 0), vid
    m.update_overlay("nodules", visible_ids={1})
    assert grey(pixel(loaded.grid.views["axial"], c)) > 200  # back to the CT
    # the overlay panel's per-label boxes drive the same setting
    boxes = loaded.overlay_panel.controls["nodules"]["labels"]
    boxes[2].setChecked(True)
    assert pixel(loaded.grid.views["axial"], c) == (255, 40, 0)
    loaded.overlay_panel.controls["nodules"]["opacity"].setValue(50)
    r, g, b = pixel(loaded.grid.views["axial"], c)
    assert 100 < r < 255 and g < r and b < r  # blended with the grey CT
    loaded.set_label_overlay("nodules", None, {})
    assert grey(pixel(loaded.grid.views["axial"], c)) > 200


def test_markers_show_near_their_slice(loaded) -> None:
    vol = loaded.model.volume
    c = centre(loaded)
    loaded.set_markers([tuple(vol.voxel_to_lps(c))], ["N1"])
    ax = loaded.grid.views["axial"]
    assert len(ax.markers.data) == 1 and ax._marker_texts[0].toPlainText() == "N1"
    loaded.model.set_slice("axial", 0)  # 50 mm away
    assert len(ax.markers.data) == 0
    loaded.goto_lps(vol.voxel_to_lps(c + np.array([0, 10, 10])))
    assert loaded.model.slice_index("coronal") == c[1] + 10
    assert len(ax.markers.data) == 1


def test_labels_of_neighbouring_markers_do_not_overlap(loaded, qtbot) -> None:
    """Two findings side by side (the demo's #3 and #4 on an earlier render of the
    axial view) printed their labels over each other; each label now takes a free
    corner, and keeps one when the reader zooms in or out."""
    vol = loaded.model.volume
    c = centre(loaded)
    ax = loaded.grid.views["axial"]
    # 40 screen pixels to the side, same slice: the labels (~45 px wide) would overlap
    dx = 40 * ax.vb.viewPixelSize()[0] / vol.spacing[2]
    loaded.set_markers([tuple(vol.voxel_to_lps(c)), tuple(vol.voxel_to_lps(c + np.array([0, 1, dx])))],
                       ["#4 4B", "#3 4B"])

    def rects():
        return [t.sceneBoundingRect() for t in ax._marker_texts]

    assert len(rects()) == 2
    for zoom in (1.0, 1.5, 0.5):
        ax.vb.scaleBy((zoom, zoom))
        qtbot.wait(5)
        a, b = rects()
        assert a.width() > 10 and not a.intersects(b), (zoom, a, b)
    # a lone marker keeps the usual place, above and to the right of its ring
    loaded.set_markers([tuple(vol.voxel_to_lps(c))], ["#1 2"])
    (t,) = ax._marker_texts
    p = ax.vb.mapViewToDevice(t.pos())
    r = t.sceneBoundingRect()
    assert r.left() > p.x() and r.bottom() < p.y()


def test_annotation_hides_with_one_key(loaded) -> None:
    view = loaded.grid.views["axial"]
    assert "Phantom^Sphere" in view.corner["tl"].text() and view.corner["tl"].isVisible()
    assert "Phantom^Sphere" in loaded.windowTitle()
    QTest.keyClick(loaded, Qt.Key_H)
    assert not view.corner["tl"].isVisible() and not view.corner["tr"].isVisible()
    assert "Phantom" not in loaded.windowTitle()
    assert view.orient["left"].isVisible()  # orientation stays: it is not identifying
    QTest.keyClick(loaded, Qt.Key_H)
    assert view.corner["tl"].isVisible()


def test_layouts_and_double_click_maximise(loaded, qtbot) -> None:
    g = loaded.grid
    QTest.keyClick(loaded, Qt.Key_F7)
    assert [v.view_id for v in g.views.values() if v.isVisible()] == ["axial", "coronal", "sagittal", "mip"]
    mip = g.views["mip"]
    qtbot.waitUntil(lambda: mip._raw is not None, timeout=2000)  # its first paint may still be queued
    # the MIP shows the sphere's brightest voxels through the whole volume
    assert grey(pixel(mip, centre(loaded) + OFF_CROSS)) > 200
    QTest.keyClick(loaded, Qt.Key_F5)
    assert [v.view_id for v in g.views.values() if v.isVisible()] == ["axial"]
    QTest.keyClick(loaded, Qt.Key_F6)
    # MPR reads on a large axial view, coronal above sagittal beside it
    ax, co, sa = (g.views[v].geometry() for v in ("axial", "coronal", "sagittal"))
    assert ax.width() > co.width() and ax.width() * ax.height() > 2 * co.width() * co.height()
    assert co.x() == sa.x() > ax.right() and co.bottom() < sa.y()
    click(g.views["sagittal"], centre(loaded), double=True)
    assert [v.view_id for v in g.views.values() if v.isVisible()] == ["sagittal"]
    assert loaded.settings.layout == "mpr"  # a maximised view is not a layout choice
    click(g.views["sagittal"], centre(loaded), double=True)
    assert loaded.model.layout == "mpr"


def test_thick_slab_mip(loaded) -> None:
    m = loaded.model
    vol = m.volume
    m.set_slice("axial", m.slice_index("axial") + 5)  # 12.5 mm above the equator, sphere smaller there
    view = loaded.grid.views["axial"]
    thin = view._raw.copy()
    QTest.keyClick(loaded, Qt.Key_M)  # 5 mm
    QTest.keyClick(loaded, Qt.Key_M)  # 10 mm = 4 slices
    assert m.slab_mm == 10 and m.slab_slices("axial") == 4
    k = m.slice_index("axial")
    expected = vol.array[k - 2:k + 2].max(axis=0)
    assert np.array_equal(view._raw, expected)
    assert (view._raw == 40).sum() > (thin == 40).sum()
    assert "MIP slab 10.0 mm" in view.corner["bl"].text()


def test_hover_readout_hu_and_lps(loaded, qtbot) -> None:
    view = loaded.grid.views["axial"]
    c = centre(loaded)
    QTest.mouseMove(view.viewport(), view.widget_pos_of_voxel(c))
    qtbot.waitUntil(lambda: "HU" in loaded.readout.text(), timeout=2000)
    text = loaded.readout.text()
    assert text.startswith("40 HU")
    lps = loaded.model.volume.voxel_to_lps(c)
    assert f"{lps[0]:.1f}" in text and f"{lps[2]:.1f}" in text


def test_cine_steps_the_active_view(loaded, qtbot) -> None:
    loaded.model.set_active_view("axial")
    k0 = loaded.model.slice_index("axial")
    QTest.keyClick(loaded, Qt.Key_C)
    qtbot.waitUntil(lambda: loaded.model.slice_index("axial") != k0, timeout=2000)
    QTest.keyClick(loaded, Qt.Key_C)
    assert not loaded.cine_timer.isActive()


def test_right_drag_zooms_middle_drag_pans_crosshair_tool_tracks(loaded) -> None:
    view = loaded.grid.views["axial"]
    c = centre(loaded)
    loaded.model.set_sync_zoom(False)
    drag(view, c, c + np.array([0, -20, 0]), button=Qt.RightButton)  # drag up: zoom in
    assert loaded.model.zoom["axial"] > 1.3 and loaded.model.zoom["coronal"] == 1.0
    before = view.widget_pos_of_voxel(c)
    drag(view, c, c + np.array([0, 0, 10]), button=Qt.MiddleButton)  # the image follows the hand
    after = view.widget_pos_of_voxel(c)
    assert after.x() - before.x() > 20 and abs(after.y() - before.y()) <= 2
    QTest.keyClick(loaded, Qt.Key_R)
    assert loaded.model.zoom["axial"] == 1.0 and loaded.model.pan["axial"] == (0.0, 0.0)
    loaded.model.set_tool("crosshair")
    target = c + np.array([0, 7, -9])
    drag(view, c, target)
    assert (loaded.model.slice_index("coronal"), loaded.model.slice_index("sagittal")) == (target[1], target[2])
