"""One 2D view of the open volume (axial, coronal, sagittal or the MIP).

It displays :class:`viewer.model.ViewerModel` and turns mouse gestures into
model intents; it computes nothing about anatomy itself. Scene coordinates are
millimetres in the plane (see :mod:`viewer.model.geometry`) and the view box
locks a 1:1 aspect, so anisotropic voxels keep their physical shape.

Mouse: wheel = slice, Ctrl+wheel or right-drag = zoom, middle-drag = pan,
left-drag = the current tool (window/level, crosshair, line, ellipse, angle),
left-click = crosshair, double-click = maximise / restore.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPoint, QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QGraphicsDropShadowEffect, QGraphicsEllipseItem, QLabel, QWidget

from viewer.model.geometry import PlaneGeometry
from viewer.model.measurements import Measurement, describe
from viewer.model.overlays import rgba_slice
from viewer.model.viewer_model import ViewerModel, plane_of

__all__ = ["SliceView", "VIEW_TITLES"]

# No global antialiasing: it sends every repaint of the scaled CT image down
# Qt's slow transformed-image path (3x the repaint time at 512x512). Only
# the measurement graphics ask for it, per item.
pg.setConfigOptions(imageAxisOrder="row-major", antialias=False)

VIEW_TITLES = {"axial": "Axial", "coronal": "Coronal", "sagittal": "Sagittal", "mip": "Coronal MIP slab"}
# Crosshair colours follow Slicer's convention (axial red, sagittal yellow,
# coronal green): the line in a view has the colour of the plane it shows.
PLANE_COLOURS = {"axial": "#e05a4f", "coronal": "#5fbf6a", "sagittal": "#e3c14b"}
MEASURE_COLOUR = "#4fc3f7"
MARKER_COLOUR = "#ff9f1c"
MARKER_RANGE_MM = 10.0
#: where a marker's label may sit (pyqtgraph TextItem anchors), in order of preference: above right,
#: above left, below right, below left -- clear of the 30 px ring either way
LABEL_ANCHORS: tuple[tuple[float, float], ...] = ((-0.35, 1.25), (1.35, 1.25), (-0.35, -0.25), (1.35, -0.25))
MARKER_RING_PX = 30
STAGGER_MS = 12
CROSS_GAP_PX = 14
MIP_VIEW_SLAB_MM = 20.0


class _ViewBox(pg.ViewBox):
    """A ViewBox that forwards every gesture to its SliceView."""

    def __init__(self, owner: "SliceView") -> None:
        super().__init__(lockAspect=True, invertY=True, enableMenu=False, defaultPadding=0.0)
        self.setMouseEnabled(False, False)
        self._owner = owner

    def wheelEvent(self, ev, axis=None):  # type: ignore[no-untyped-def]  # noqa: N802
        self._owner._on_wheel(ev)
        ev.accept()

    def mouseDragEvent(self, ev, axis=None):  # type: ignore[no-untyped-def]  # noqa: N802
        self._owner._on_drag(ev)
        ev.accept()

    def mouseClickEvent(self, ev):  # type: ignore[no-untyped-def]  # noqa: N802
        self._owner._on_click(ev)
        ev.accept()


class _CrispImageItem(pg.ImageItem):
    """Label overlays are drawn nearest-neighbour: interpolated labels make
    coloured halos that look like tissue that is not there."""

    def paint(self, p, *args):  # type: ignore[no-untyped-def]
        p.setRenderHint(QPainter.SmoothPixmapTransform, False)
        super().paint(p, *args)


def _passive(item: object) -> None:
    """Decorations (labels, lines, markers) never take the mouse: a press on a
    measurement's label must still start the next measurement."""
    item.setAcceptedMouseButtons(Qt.NoButton)  # type: ignore[attr-defined]
    item.setAcceptHoverEvents(False)  # type: ignore[attr-defined]


def _set_text(label: QLabel, text: str) -> bool:
    """setText only when the text changes: a QLabel re-lays itself out on
    every setText (~0.5 ms each with the theme), and slice scrolling would
    otherwise pay that for four corners in three views."""
    if label.text() == text:
        return False
    label.setText(text)
    return True


def _label(parent: QWidget, align: Qt.AlignmentFlag, name: str) -> QLabel:
    lab = QLabel(parent)
    lab.setObjectName(name)
    lab.setAlignment(align)
    lab.setAttribute(Qt.WA_TransparentForMouseEvents)
    lab.setTextFormat(Qt.PlainText)
    # a hard 1-px shadow keeps white text legible over bright bone or contrast
    shadow = QGraphicsDropShadowEffect(lab)
    shadow.setBlurRadius(2)
    shadow.setOffset(1, 1)
    shadow.setColor(QColor(0, 0, 0, 230))
    lab.setGraphicsEffect(shadow)
    return lab


class SliceView(pg.GraphicsView):
    """Displays one view of the model; emits ``activated`` when used."""

    activated = Signal(str)

    def __init__(self, model: ViewerModel, view_id: str, parent: QWidget | None = None) -> None:
        super().__init__(parent, background="#000000")
        self.setObjectName(f"slice_view_{view_id}")
        self.model = model
        self.view_id = view_id
        self.plane = plane_of(view_id)
        self.is_mip = view_id == "mip"
        self.setFocusPolicy(Qt.ClickFocus)
        # bilinear display of the image (as Slicer, OHIF, RadiAnt): thick
        # slices reformatted to coronal/sagittal look stair-stepped otherwise.
        # Measured: no repaint cost on the ARGB32 path.
        self.setRenderHint(QPainter.SmoothPixmapTransform, True)
        self.vb = _ViewBox(self)
        self.setCentralItem(self.vb)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.vb.addItem(self.image)
        self.overlay_items: dict[str, pg.ImageItem] = {}
        if self.plane == "axial":
            colour_h, colour_v = PLANE_COLOURS["coronal"], PLANE_COLOURS["sagittal"]
        elif self.plane == "coronal":
            colour_h, colour_v = PLANE_COLOURS["axial"], PLANE_COLOURS["sagittal"]
        else:
            colour_h, colour_v = PLANE_COLOURS["axial"], PLANE_COLOURS["coronal"]
        # The crosshair leaves a gap around the point itself (as Slicer and
        # RadiAnt do): the lines must never hide the nodule under them.
        self.hline = pg.PlotCurveItem(pen=pg.mkPen(colour_h, width=1), connect="pairs")
        self.vline = pg.PlotCurveItem(pen=pg.mkPen(colour_v, width=1), connect="pairs")
        self._cross_xy = (0.0, 0.0)
        self.vb.sigRangeChanged.connect(lambda *_: self._draw_crosshair())
        for ln in (self.hline, self.vline):
            ln.setZValue(20)
            _passive(ln)
            self.vb.addItem(ln, ignoreBounds=True)
        self.markers = pg.ScatterPlotItem(symbol="o", size=MARKER_RING_PX, pen=pg.mkPen(MARKER_COLOUR, width=1.5), brush=None, pxMode=True)
        self.markers.setZValue(30)
        _passive(self.markers)
        self.vb.addItem(self.markers, ignoreBounds=True)
        self._marker_texts: list[pg.TextItem] = []
        # the labels are laid out on screen, so a zoom or pan can make or undo a collision
        self.vb.sigRangeChanged.connect(lambda *_: self._place_marker_labels())
        self._measure_items: list[object] = []
        self._preview: list[object] = []
        self._drag: dict[str, object] = {}
        self._angle_pending: list[np.ndarray] | None = None
        self._raw: np.ndarray | None = None
        self._rect_key: tuple | None = None

        self.corner = {
            "tl": _label(self, Qt.AlignLeft | Qt.AlignTop, "corner_tl"),
            "tr": _label(self, Qt.AlignRight | Qt.AlignTop, "corner_tr"),
            "bl": _label(self, Qt.AlignLeft | Qt.AlignBottom, "corner_bl"),
            "br": _label(self, Qt.AlignRight | Qt.AlignBottom, "corner_br"),
        }
        self.orient = {
            k: _label(self, Qt.AlignCenter, f"orient_{k}") for k in ("left", "right", "top", "bottom")
        }
        for lab in self.orient.values():
            lab.setProperty("role", "orientation")
        for lab in self.corner.values():
            lab.setProperty("role", "annotation")
        self.title = _label(self, Qt.AlignLeft | Qt.AlignTop, "view_title")
        self.title.setProperty("role", "title")
        self.title.setStyleSheet(f"color: {PLANE_COLOURS[self.plane]}; font-weight: 600;")

        self._queued = False
        self._stale = False
        self._corner_full: dict[str, str] = {}
        self.scene().sigMouseMoved.connect(self._on_hover)
        m = model
        m.volume_changed.connect(self._on_volume)
        m.cursor_changed.connect(self._on_cursor)
        m.window_changed.connect(self._on_window)
        m.view_changed.connect(self._on_view_changed)
        m.slab_changed.connect(self._refresh_image)
        m.overlays_changed.connect(self._refresh_overlays)
        m.markers_changed.connect(self._refresh_markers)
        m.measurements.changed.connect(self._refresh_measurements)
        m.annotations_changed.connect(self._refresh_annotations)
        m.layout_changed.connect(self._refresh_active)
        self._on_volume()

    # -- geometry helpers ------------------------------------------------------
    @property
    def geom(self) -> PlaneGeometry | None:
        return self.model.geometry.get(self.plane)

    def scene_pos_of_voxel(self, zyx: np.ndarray | tuple[float, float, float]) -> QPointF:
        """Where voxel ``zyx`` is in this view's scene (millimetres)."""
        assert self.geom is not None
        x, y = self.geom.voxel_to_scene(zyx)
        return QPointF(x, y)

    def widget_pos_of_voxel(self, zyx: np.ndarray | tuple[float, float, float]) -> QPoint:
        """Widget pixel that shows voxel ``zyx`` (for tests and tooltips)."""
        p = self.vb.mapViewToScene(self.scene_pos_of_voxel(zyx))
        return self.mapFromScene(p)

    def voxel_at_widget_pos(self, pos: QPoint | QPointF) -> np.ndarray | None:
        if self.geom is None:
            return None
        v = self.vb.mapSceneToView(self.mapToScene(QPoint(int(pos.x()), int(pos.y()))))
        return self.geom.scene_to_voxel(v.x(), v.y(), self.model.slice_index(self.plane))

    def _voxel_of_view_point(self, p: QPointF) -> np.ndarray:
        assert self.geom is not None
        k = self.model.cursor[self.geom.fixed_axis] if self.is_mip else self.model.slice_index(self.plane)
        return self.geom.scene_to_voxel(p.x(), p.y(), k)

    # -- model -> display ----------------------------------------------------------
    def _hidden(self) -> bool:
        """Hidden views (the MIP in MPR layout, the others in one-view layout)
        skip all work and catch up in :meth:`showEvent`: a full-volume MIP
        is tens of milliseconds the reader should not wait for. A view whose
        new volume is still queued (see :meth:`_on_volume`) skips too."""
        if getattr(self, "_queued", False):
            return True
        if self.isVisible():
            return False
        self._stale = True
        return True

    def showEvent(self, ev):  # type: ignore[no-untyped-def]  # noqa: N802
        super().showEvent(ev)
        if getattr(self, "_stale", False) and not getattr(self, "_queued", False):
            self._stale = False
            self._show_volume()

    def _on_volume(self) -> None:
        # Drop the old slice at once, even in a hidden or queued view: it is a
        # view into the previous volume and would keep all of it in memory.
        self._raw = None
        self._rect_key = None
        self.image.clear()
        for item in self.overlay_items.values():
            item.clear()
        # The active view paints first; the others follow on the next turns
        # of the event loop, so the first image appears sooner and the GUI
        # never blocks for the whole set at once.
        if self.model.volume is not None and self.view_id != self.model.active_view and not getattr(self, "_queued", False):
            self._queued = True
            # staggered so that each view is sliced and painted in its own turn
            order = [v for v in ("axial", "coronal", "sagittal", "mip") if v != self.model.active_view]
            QTimer.singleShot(STAGGER_MS * (1 + order.index(self.view_id)), self._dequeue)
            return
        self._show_volume()

    def _dequeue(self) -> None:
        self._queued = False
        self._show_volume()

    def _show_volume(self) -> None:
        if self._hidden():
            return
        g = self.geom
        for items in (self._measure_items, self._preview):
            for it in items:
                self.vb.removeItem(it)
            items.clear()
        self._angle_pending = None
        if g is None:
            self.image.clear()
            self._raw = None
            for lab in [*self.corner.values(), *self.orient.values()]:
                lab.setText("")
            self.title.setText(VIEW_TITLES[self.view_id])
            self.hline.hide()
            self.vline.hide()
            self._layout_labels()
            return
        self.hline.show()
        self.vline.show()
        left, right, top, bottom = g.labels
        for k, t in zip(("left", "right", "top", "bottom"), (left, right, top, bottom)):
            _set_text(self.orient[k], t)
        _set_text(self.title, VIEW_TITLES[self.view_id])
        self._refresh_image()
        self._apply_range()
        self._move_crosshair()
        self._refresh_overlays()
        self._refresh_markers()
        self._refresh_measurements()
        self._refresh_annotations()

    def _slab(self) -> int:
        """Slices in this view's slab: the reader's thick-slab setting, and at
        least :data:`MIP_VIEW_SLAB_MM` in the 2×2 layout's MIP view (a
        full-volume MIP is all ribs and spine in a lung window)."""
        n = self.model.slab_slices(self.plane)
        g = self.geom
        if self.is_mip and g is not None:
            n = max(n, int(round(MIP_VIEW_SLAB_MM / g.slice_mm)))
        return n

    def _levels(self) -> tuple[float, float]:
        w = self.model.window
        return (w.low, w.high)

    def _refresh_image(self) -> None:
        if self._hidden():
            return
        g, vol = self.geom, self.model.volume
        if g is None or vol is None:
            return
        raw = g.slice2d(vol.array, self.model.slice_index(self.plane), self._slab())
        self._raw = raw
        # int16 straight in with levels: pyqtgraph's own rescale path makes an
        # ARGB32 image, the one format QPainter draws without converting
        # (measured faster than a 64k LUT to grey8: benchmarks/bench_viewer.py).
        self.image.setImage(raw, autoLevels=False, levels=self._levels())
        if self._rect_key != (g.width_mm, g.height_mm, raw.shape):
            # setRect needs the image's pixel size, so it follows setImage.
            self.image.setRect(QRectF(0, 0, g.width_mm, g.height_mm))
            self._rect_key = (g.width_mm, g.height_mm, raw.shape)
        self._refresh_overlay_images()
        self._refresh_annotations()

    def _on_window(self) -> None:
        if self._hidden():
            return
        if self._raw is not None:
            self.image.setLevels(self._levels())
        self._refresh_annotations()

    def _on_cursor(self, planes: frozenset) -> None:
        if self._hidden():
            return
        if self.geom is None:
            return
        if self.plane in planes:
            self._refresh_image()
            self._refresh_markers()
            self._refresh_measurements()
        self._move_crosshair()

    def crosshair_scene_pos(self) -> tuple[float, float]:
        """Where the crosshair lines cross, in scene millimetres."""
        return self._cross_xy

    def _move_crosshair(self) -> None:
        if self.geom is None:
            return
        self._cross_xy = self.geom.voxel_to_scene(self.model.cursor)
        self._draw_crosshair()

    def _draw_crosshair(self) -> None:
        if self.geom is None:
            return
        x, y = self._cross_xy
        px, py = self.vb.viewPixelSize()
        gx, gy = CROSS_GAP_PX * px, CROSS_GAP_PX * py
        far = 10 * max(self.geom.width_mm, self.geom.height_mm)
        self.hline.setData([-far, x - gx, x + gx, far], [y, y, y, y])
        self.vline.setData([x, x, x, x], [-far, y - gy, y + gy, far])

    def _on_view_changed(self, view_id: str) -> None:
        if view_id == self.view_id:
            self._apply_range()
            self._refresh_annotations()

    def _apply_range(self) -> None:
        g = self.geom
        if g is None:
            return
        zoom = self.model.zoom[self.view_id]
        px, py = self.model.pan[self.view_id]
        cx, cy = g.width_mm / 2 + px, g.height_mm / 2 + py
        hw, hh = g.width_mm / 2 / zoom, g.height_mm / 2 / zoom
        self.vb.setRange(QRectF(cx - hw, cy - hh, 2 * hw, 2 * hh), padding=0.0, update=True)

    def keyPressEvent(self, ev):  # type: ignore[no-untyped-def]  # noqa: N802
        # QGraphicsView would scroll itself on arrows / PgUp / PgDn; here those
        # keys mean "slice", which the main window handles for the active view.
        ev.ignore()

    def resizeEvent(self, ev):  # type: ignore[no-untyped-def]  # noqa: N802
        super().resizeEvent(ev)
        if not hasattr(self, "corner"):  # pyqtgraph resizes during its own __init__
            return
        self._apply_range()
        self._layout_labels()

    def _set_corner(self, key: str, text: str) -> bool:
        if self._corner_full.get(key) == text:
            return False
        self._corner_full[key] = text
        return True

    def _layout_labels(self) -> None:
        w, h, m = self.width(), self.height(), 6
        # Corners share the width: each line is elided to half the view (less
        # room for the orientation letter) so narrow MPR views never overlap.
        half = max(40, (w - 3 * m) // 2 - 12)
        for k, lab in self.corner.items():
            fm = lab.fontMetrics()
            mode = Qt.ElideRight if k[1] == "l" else Qt.ElideLeft
            lines = self._corner_full.get(k, "").split("\n")
            _set_text(lab, "\n".join(fm.elidedText(ln, mode, half) for ln in lines))
            lab.adjustSize()
            x = m if k[1] == "l" else w - lab.width() - m
            y = m if k[0] == "t" else h - lab.height() - m
            if k == "tl":
                y += self.title.sizeHint().height()
            lab.move(x, y)
        self.title.adjustSize()
        self.title.move(m, m)
        for k, lab in self.orient.items():
            lab.adjustSize()
            if k == "left":
                lab.move(m, (h - lab.height()) // 2)
            elif k == "right":
                lab.move(w - lab.width() - m, (h - lab.height()) // 2)
            elif k == "top":
                lab.move((w - lab.width()) // 2, m)
            else:
                lab.move((w - lab.width()) // 2, h - lab.height() - m)

    def _refresh_active(self) -> None:
        active = self.model.active_view == self.view_id and self.model.layout != "single"
        self.setProperty("active", active)
        colour = "#3d7fb8" if active else "#202428"
        self.setStyleSheet(f"SliceView#{self.objectName()} {{ border: 1px solid {colour}; }}")

    def _refresh_annotations(self) -> None:
        if self._hidden():
            return
        vol, g = self.model.volume, self.geom
        show = self.model.show_annotations and vol is not None
        for lab in self.corner.values():
            lab.setVisible(show)
        if not show or vol is None or g is None:
            self._layout_labels()
            return
        s = vol.series
        tl, tr = [], []
        if s is not None:
            p = s.patient
            tl.append(p.name or "(no name)")
            tl.append(f"ID {p.patient_id or '—'}")
            extra = " ".join(x for x in (p.sex or "", f"{p.age_years:.0f} y" if p.age_years else "",
                                             f"DOB {p.birth_date.isoformat()}" if p.birth_date else "") if x)
            if extra:
                tl.append(extra)
            st = s.study
            if st.date:
                tr.append(st.date.isoformat())
            if st.description:
                tr.append(st.description)
            desc = " ".join(x for x in (f"Se {s.series_number}" if s.series_number is not None else "", s.description) if x)
            if desc:
                tr.append(desc)
            if s.kernel:
                tr.append(f"Kernel {s.kernel}")
        changed = self._set_corner("tl", "\n".join(tl))
        changed |= self._set_corner("tr", "\n".join(tr))
        k = self.model.slice_index(self.plane)
        bl = []
        if self.is_mip:
            pos = vol.voxel_to_lps(self.model.cursor)
            bl.append(f"P {pos[1]:.1f} mm")
            bl.append(f"MIP slab {self._slab() * g.slice_mm:.1f} mm")
        else:
            pos = vol.voxel_to_lps(self.model.cursor)
            axis_name = {"axial": "S", "coronal": "P", "sagittal": "L"}[self.plane]
            coord = {"axial": pos[2], "coronal": pos[1], "sagittal": pos[0]}[self.plane]
            bl.append(f"Im {k + 1}/{g.n_slices}")
            bl.append(f"{axis_name} {coord:.1f} mm")
            n = self.model.slab_slices(self.plane)
            bl.append(f"MIP slab {n * g.slice_mm:.1f} mm" if n > 1 else f"Thk {g.slice_mm:.2f} mm")
        changed |= self._set_corner("bl", "\n".join(bl))
        w = self.model.window
        br = [f"W {w.width:.0f}  L {w.level:.0f}", f"Zoom {self.model.zoom[self.view_id]:.2f}×"]
        changed |= self._set_corner("br", "\n".join(br))
        if changed:
            self._layout_labels()

    # -- overlays --------------------------------------------------------------------
    def _refresh_overlays(self) -> None:
        if self._hidden():
            return
        for name in list(self.overlay_items):
            if name not in self.model.overlays:
                self.vb.removeItem(self.overlay_items.pop(name))
        g = self.geom
        if g is None:
            return
        for i, name in enumerate(sorted(self.model.overlays, key=lambda n: (n != "lungs", n))):
            if name not in self.overlay_items:
                item = _CrispImageItem(axisOrder="row-major")
                item.setZValue(5 + i)
                self.vb.addItem(item)
                self.overlay_items[name] = item
        self._refresh_overlay_images()

    def _refresh_overlay_images(self) -> None:
        g = self.geom
        if g is None:
            return
        for name, item in self.overlay_items.items():
            ov = self.model.overlays.get(name)
            if ov is None or not ov.visible:
                item.hide()
                continue
            if self.is_mip and name == "lungs":
                item.hide()  # a projected lung mask hides the vessels the MIP is for
                continue
            lab = g.slice2d(ov.labels, self.model.slice_index(self.plane), self._slab())
            item.setImage(rgba_slice(ov, lab), autoLevels=False, levels=(0, 255))
            item.setRect(QRectF(0, 0, g.width_mm, g.height_mm))
            item.show()

    # -- markers ----------------------------------------------------------------------
    def _refresh_markers(self) -> None:
        if self._hidden():
            return
        for t in self._marker_texts:
            self.vb.removeItem(t)
        self._marker_texts = []
        g, vol = self.geom, self.model.volume
        if g is None or vol is None or not self.model.markers:
            if len(self.markers.data):
                self.markers.setData([], [])
            return
        xs, ys = [], []
        k = self.model.slice_index(self.plane)
        for mk in self.model.markers:
            v = vol.lps_to_voxel(np.asarray(mk.lps, float))
            if abs(v[g.fixed_axis] - k) * g.slice_mm > max(MARKER_RANGE_MM, self._slab() * g.slice_mm / 2):
                continue
            x, y = g.voxel_to_scene(v)
            xs.append(x)
            ys.append(y)
            if mk.label:
                t = pg.TextItem(mk.label, color=MARKER_COLOUR, anchor=LABEL_ANCHORS[0])
                t.setZValue(31)
                _passive(t)
                t.setPos(x, y)
                self.vb.addItem(t, ignoreBounds=True)
                self._marker_texts.append(t)
        self.markers.setData(xs, ys)
        self._place_marker_labels()

    def _place_marker_labels(self) -> None:
        """Give each marker label the first corner where it covers no other label or ring.

        Why: two findings side by side (the demo's #3 and #4, seen on an
        earlier render) had their labels printed over each other on the axial
        view. Greedy, left to right on screen; where every corner collides the
        least-covered one is used (``min`` keeps the first of equals, so the
        order of :data:`LABEL_ANCHORS` is the preference). Rings of markers
        without a label are not avoided (every finding has one).
        """
        if not self._marker_texts:
            return
        pts = [self.vb.mapViewToDevice(t.pos()) for t in self._marker_texts]  # each label sits at its marker
        if any(p is None for p in pts):
            return
        r = MARKER_RING_PX / 2
        taken = [QRectF(p.x() - r, p.y() - r, 2 * r, 2 * r) for p in pts]
        for i in sorted(range(len(pts)), key=lambda j: (pts[j].x(), pts[j].y())):
            t, p = self._marker_texts[i], pts[i]
            br = t.textItem.boundingRect()
            w, h = br.width(), br.height()
            others = [q for j, q in enumerate(taken) if j != i]

            def cover(rect: QRectF) -> float:
                return sum(o.width() * o.height() for o in (rect.intersected(q) for q in others))

            rect, anchor = min(((QRectF(p.x() - ax * w, p.y() - ay * h, w, h), (ax, ay)) for ax, ay in LABEL_ANCHORS),
                               key=lambda c: cover(c[0]))
            t.setAnchor(anchor)
            taken.append(rect)

    # -- measurements -------------------------------------------------------------------
    def _measurement_on_slice(self, m: Measurement) -> bool:
        g, vol = self.geom, self.model.volume
        if g is None or vol is None or self.is_mip or m.plane != self.plane:
            return False
        k = self.model.slice_index(self.plane)
        return all(abs(vol.lps_to_voxel(p)[g.fixed_axis] - k) < 0.51 for p in m.points)

    def _refresh_measurements(self) -> None:
        if self._hidden():
            return
        for it in self._measure_items:
            self.vb.removeItem(it)
        self._measure_items = []
        for m in self.model.measurements:
            if self._measurement_on_slice(m):
                self._measure_items.extend(self._draw_measurement(m))

    def measurement_text(self, m: Measurement) -> str:
        """The label drawn beside a measurement (also used by the list)."""
        return measurement_text(self.model, m)

    def _draw_measurement(self, m: Measurement, preview: bool = False) -> list[object]:
        vol, g = self.model.volume, self.geom
        assert vol is not None and g is not None
        pts = [self.scene_pos_of_voxel(vol.lps_to_voxel(p)) for p in m.points]
        pen = pg.mkPen(MEASURE_COLOUR, width=2, style=Qt.DashLine if preview else Qt.SolidLine)
        items: list[object] = []
        if m.kind in ("line", "angle"):
            curve = pg.PlotCurveItem([p.x() for p in pts], [p.y() for p in pts], pen=pen, antialias=True)
            items.append(curve)
            ends = pg.ScatterPlotItem([p.x() for p in pts], [p.y() for p in pts], size=6, pen=pen, brush=pg.mkBrush(MEASURE_COLOUR))
            items.append(ends)
        else:
            r = QRectF(pts[0], pts[1]).normalized()
            ell = QGraphicsEllipseItem(r)
            qpen = QPen(QColor(MEASURE_COLOUR))
            qpen.setCosmetic(True)
            qpen.setWidth(2)
            if preview:
                qpen.setStyle(Qt.DashLine)
            ell.setPen(qpen)
            items.append(ell)
        text = pg.TextItem(measurement_text(self.model, m), color=MEASURE_COLOUR, anchor=(0, 0), fill=pg.mkBrush(0, 0, 0, 140))
        anchor_pt = pts[-1] if m.kind != "ellipse" else QRectF(pts[0], pts[1]).normalized().bottomRight()
        text.setPos(anchor_pt)
        items.append(text)
        for it in items:
            it.setZValue(40)  # type: ignore[attr-defined]
            _passive(it)
            self.vb.addItem(it, ignoreBounds=True)
        return items

    def cancel_pending(self) -> None:
        """Drop a half-drawn angle (Esc)."""
        self._angle_pending = None
        self._clear_preview()

    def _clear_preview(self) -> None:
        for it in self._preview:
            self.vb.removeItem(it)
        self._preview = []

    def _show_preview(self, m: Measurement) -> None:
        self._clear_preview()
        self._preview = self._draw_measurement(m, preview=True)

    # -- gestures -> intents ----------------------------------------------------------------
    def _on_hover(self, scene_pos: QPointF) -> None:
        if self.geom is None:
            return
        v = self.vb.mapSceneToView(scene_pos)
        if not self.vb.sceneBoundingRect().contains(scene_pos):
            self.model.set_hover(None)
            return
        self.model.set_hover(self._voxel_of_view_point(v))
        if self._angle_pending is not None and self.model.volume is not None:
            a, vtx = self._angle_pending
            c = self.model.volume.voxel_to_lps(self._voxel_of_view_point(v))
            self._show_preview(Measurement("angle", (tuple(a), tuple(vtx), tuple(c)), self.plane))

    def _activate(self) -> None:
        self.model.set_active_view(self.view_id)
        self.activated.emit(self.view_id)

    def _on_wheel(self, ev) -> None:  # type: ignore[no-untyped-def]
        if self.geom is None:
            return
        delta = ev.delta() if hasattr(ev, "delta") else ev.angleDelta().y()
        steps = delta / 120.0
        if ev.modifiers() & Qt.ControlModifier:
            self.model.set_zoom(self.view_id, self.model.zoom[self.view_id] * (1.15 ** steps))
        else:
            # wheel up (away from the reader) goes towards the head / front.
            n = int(math.copysign(max(1, round(abs(steps))), steps)) if steps else 0
            self.model.step_up(self.plane, n)

    def _on_click(self, ev) -> None:  # type: ignore[no-untyped-def]
        if self.geom is None or self.model.volume is None:
            return
        self._activate()
        if ev.button() != Qt.LeftButton:
            return
        if ev.double():
            self.model.toggle_maximize(self.view_id)
            return
        p = self.vb.mapToView(ev.pos())
        tool = self.model.tool
        if tool == "angle" and self._angle_pending is not None:
            a, vtx = self._angle_pending
            c = self.model.volume.voxel_to_lps(self._voxel_of_view_point(p))
            self._angle_pending = None
            self._clear_preview()
            self.model.measurements.add(Measurement("angle", (tuple(a), tuple(vtx), tuple(c)), self.plane))
            return
        if tool in ("wl", "crosshair"):
            self._set_cursor_at(p)

    def _set_cursor_at(self, p: QPointF) -> None:
        v = self._voxel_of_view_point(p)
        if self.is_mip:
            c = self.model.cursor.copy()
            c[self.geom.row_axis] = v[self.geom.row_axis]  # type: ignore[union-attr]
            c[self.geom.col_axis] = v[self.geom.col_axis]  # type: ignore[union-attr]
            v = c
        self.model.set_cursor_voxel(v)

    def _on_drag(self, ev) -> None:  # type: ignore[no-untyped-def]
        if self.geom is None or self.model.volume is None:
            return
        btn = ev.button()
        if ev.isStart():
            self._activate()
            self._drag = {
                "zoom": self.model.zoom[self.view_id], "pan": self.model.pan[self.view_id],
                "window": self.model.window, "px": self.vb.viewPixelSize(),
                "start": self.vb.mapToView(ev.buttonDownPos()),
            }
        d = ev.screenPos() - ev.buttonDownScreenPos()
        if btn == Qt.RightButton:
            self.model.set_zoom(self.view_id, float(self._drag["zoom"]) * math.exp(-d.y() / 150.0))
        elif btn == Qt.MiddleButton:
            (px0, py0), (sx, sy) = self._drag["pan"], self._drag["px"]  # type: ignore[misc]
            self.model.set_pan(self.view_id, px0 - d.x() * sx, py0 - d.y() * sy)
        elif btn == Qt.LeftButton:
            self._left_drag(ev, d)
        if ev.isFinish():
            self._drag = {}

    def _left_drag(self, ev, d: QPointF) -> None:  # type: ignore[no-untyped-def]
        tool = self.model.tool
        p = self.vb.mapToView(ev.pos())
        vol = self.model.volume
        assert vol is not None
        if tool == "wl":
            w0 = self._drag["window"]
            scale = max(1.0, w0.width / 256.0)  # type: ignore[attr-defined]
            self.model.set_window(w0.width + d.x() * scale, w0.level - d.y() * scale)  # type: ignore[attr-defined]
            return
        if tool == "crosshair":
            self._set_cursor_at(p)
            return
        if self.is_mip:
            return
        start = self._drag["start"]
        a = tuple(vol.voxel_to_lps(self._voxel_of_view_point(start)))  # type: ignore[arg-type]
        b = tuple(vol.voxel_to_lps(self._voxel_of_view_point(p)))
        kind = "ellipse" if tool == "ellipse" else "line"
        m = Measurement(kind, (a, b), self.plane)
        if not ev.isFinish():
            self._show_preview(m)
            return
        self._clear_preview()
        if np.linalg.norm(np.subtract(a, b)) < 1e-6:
            return
        if tool == "angle":
            self._angle_pending = [np.asarray(a), np.asarray(b)]
            self._show_preview(Measurement("line", (a, b), self.plane))
        else:
            self.model.measurements.add(m)


def measurement_text(model: ViewerModel, m: Measurement) -> str:
    """Human label of a measurement on the open volume (see
    :func:`viewer.model.measurements.describe`)."""
    if model.volume is None:
        return ""
    return describe(m, model.volume, model.geometry[m.plane])
