"""Measurements: a 20 mm sphere measures 20 ± 1 mm in all three planes with
anisotropic voxels; ROI statistics, angles and persistence."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tests.viewer_model.phantoms import SPHERE_DIAMETER_MM, sphere_volume
from viewer.model.measurements import (
    Measurement, MeasurementList, angle_deg, ellipse_stats, line_length_mm, measurements_path,
)
from viewer.model.viewer_model import ViewerModel


def sphere_extent_points(m: ViewerModel, plane: str, axis: str):
    """Two LPS points at the centres of the outermost sphere pixels along the
    screen row ("h") or column ("v") through the sphere, found in the
    displayed 2D image -- where a reader would put the callipers."""
    g = m.geometry[plane]
    img = g.slice2d(m.volume.array, m.slice_index(plane))
    r0, c0 = g.pixel_of_voxel(m.cursor)
    if axis == "h":
        idx = np.flatnonzero(img[r0, :] > -100)
        pix = [(r0, idx[0]), (r0, idx[-1])]
    else:
        idx = np.flatnonzero(img[:, c0] > -100)
        pix = [(idx[0], c0), (idx[-1], c0)]
    pts = []
    for r, c in pix:
        v = g.scene_to_voxel((c + 0.5) * g.col_mm, (r + 0.5) * g.row_mm, m.slice_index(plane))
        pts.append(tuple(m.volume.voxel_to_lps(v)))
    return tuple(pts)


@pytest.mark.parametrize("plane", ["axial", "coronal", "sagittal"])
@pytest.mark.parametrize("axis", ["h", "v"])
def test_line_across_20mm_sphere_reads_20mm(plane: str, axis: str) -> None:
    m = ViewerModel()
    m.set_volume(sphere_volume())  # spacing (2.5, 0.7, 0.7): 3.6× anisotropic
    a, b = sphere_extent_points(m, plane, axis)
    stored = m.measurements.add(Measurement("line", (a, b), plane))
    assert abs(line_length_mm(stored) - SPHERE_DIAMETER_MM) <= 1.0


def test_ellipse_stats_inside_sphere() -> None:
    m = ViewerModel()
    vol = sphere_volume()
    m.set_volume(vol)
    c = np.array(m.cursor)
    # 8 mm × 6 mm ellipse centred in the sphere on the axial slice
    a = vol.voxel_to_lps(c + np.array([0, -3 / 0.7, -4 / 0.7]))
    b = vol.voxel_to_lps(c + np.array([0, 3 / 0.7, 4 / 0.7]))
    st = ellipse_stats(Measurement("ellipse", (tuple(a), tuple(b)), "axial"), vol, m.geometry["axial"])
    assert st is not None
    assert st.mean == 40 and st.sd == 0 and st.min == 40 and st.max == 40
    assert st.area_mm2 == pytest.approx(math.pi * 4 * 3, rel=1e-6)
    # the same ellipse straddling the edge sees lung too
    a2 = vol.voxel_to_lps(c + np.array([0, -3 / 0.7, 6 / 0.7]))
    b2 = vol.voxel_to_lps(c + np.array([0, 3 / 0.7, 16 / 0.7]))
    st2 = ellipse_stats(Measurement("ellipse", (tuple(a2), tuple(b2)), "axial"), vol, m.geometry["axial"])
    assert st2.min < -700 and st2.max == 40


def test_angle() -> None:
    m = Measurement("angle", ((10.0, 0, 0), (0.0, 0, 0), (0.0, 5.0, 0)), "axial")
    assert angle_deg(m) == pytest.approx(90.0)
    m2 = Measurement("angle", ((1.0, 1.0, 0), (0.0, 0, 0), (1.0, 0, 0)), "axial")
    assert angle_deg(m2) == pytest.approx(45.0)


def test_save_and_reload_keeps_lps_points(tmp_path) -> None:
    ml = MeasurementList()
    ml.add(Measurement("line", ((0.0, 0, 0), (3.0, 4.0, 0)), "axial"))
    ml.add(Measurement("angle", ((1.0, 0, 0), (0.0, 0, 0), (0.0, 1.0, 0)), "coronal"))
    path = tmp_path / "m.json"
    ml.save(path)
    other = MeasurementList()
    assert other.load(path) == []
    assert [x.kind for x in other] == ["line", "angle"]
    assert line_length_mm(other.items[0]) == pytest.approx(5.0)
    other.remove(other.items[0].id)
    assert [x.kind for x in other] == ["angle"]


def test_bad_entries_become_issues_and_the_rest_loads(tmp_path) -> None:
    path = tmp_path / "m.json"
    good = {"kind": "line", "points": [[0, 0, 0], [0, 0, 7]], "plane": "sagittal"}
    path.write_text(json.dumps({"version": 1, "measurements": [good, {"kind": "line", "points": [[0, 0]], "plane": "axial"},
                                                               {"kind": "blob", "points": [], "plane": "axial"}]}))
    ml = MeasurementList()
    issues = ml.load(path)
    assert len(ml) == 1 and line_length_mm(ml.items[0]) == 7
    assert len(issues) == 2 and all(str(path) in i.one_line() for i in issues)
    assert "#2" in issues[0].one_line()
    path.write_text("{not json")
    issues = ml.load(path)
    assert len(ml) == 0 and len(issues) == 1 and "not readable" in issues[0].message


def test_measurements_live_in_the_user_data_folder(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("CLINVIEW_DATA_DIR", str(tmp_path))
    p = measurements_path("1.2.3.4")
    assert p == tmp_path / "studies" / "1.2.3.4" / "measurements.json"
    assert ".." not in measurements_path("../../etc").parts
