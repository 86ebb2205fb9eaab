"""Brush / erase editing of one nodule's mask.

The editor shows the axial slices around the nodule (lung window, the mask in
translucent colour), and the reader paints with a round brush whose size is
given in millimetres, in the slice on screen. *Apply* writes the edited mask
into :class:`~viewer.model.analysis.AnalysisState`, which re-measures the
nodule (volume, long/short axis, mean diameter) Qt-free and saves it with the
study; *Cancel* leaves everything as it was.

Why a focused editor instead of painting in the main slice view: the crop is
magnified so a 5 mm nodule is large enough to edit voxel by voxel, and the
edit is a transaction the reader applies or discards as a whole.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QGraphicsEllipseItem,
    QDialog,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QRadioButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from viewer.model.analysis import AnalysisState, measure_mask
from viewer.widgets.identity_banner import DOCK_QSS, PALETTE

__all__ = ["MaskEditor", "MaskEditorDialog"]

_MARGIN_YX = 14  # voxels of context around the nodule
_MARGIN_Z = 3
_LUNG_WINDOW = (-1350.0, 150.0)  # W 1500 / L -600


class _PaintImage(pg.ImageItem):
    """Image item that reports left-button clicks and drags in pixel coordinates."""

    def __init__(self, on_paint: "callable", on_hover: "callable", **kw: object) -> None:  # type: ignore[valid-type]
        super().__init__(**kw)
        self._on_paint = on_paint
        self._on_hover = on_hover
        self.setAcceptHoverEvents(True)

    def hoverEvent(self, ev: pg.GraphicsScene.mouseEvents.HoverEvent) -> None:  # noqa: N802
        if ev.isExit():
            self._on_hover(None)
        else:
            p = ev.pos()
            self._on_hover((p.y(), p.x()))

    def mouseClickEvent(self, ev: pg.GraphicsScene.mouseEvents.MouseClickEvent) -> None:  # noqa: N802
        if ev.button() == Qt.MouseButton.LeftButton:
            p = ev.pos()
            self._on_paint(p.y(), p.x())
            ev.accept()

    def mouseDragEvent(self, ev: pg.GraphicsScene.mouseEvents.MouseDragEvent) -> None:  # noqa: N802
        if ev.button() != Qt.MouseButton.LeftButton:
            ev.ignore()
            return
        p = ev.pos()
        self._on_paint(p.y(), p.x())
        ev.accept()


class MaskEditor(QWidget):
    """Edit the mask of ``nodule_id`` in ``state``.

    Signals
    -------
    applied(int)
        The edit was written to the state (nodule id).
    cancelled()
    """

    applied = Signal(int)
    cancelled = Signal()

    def __init__(self, state: AnalysisState, nodule_id: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("AnalysisDock")
        self.setStyleSheet(DOCK_QSS + "QRadioButton, QDoubleSpinBox { color: %s; }" % PALETTE["text"])
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        if state.nodule_labels is None:
            raise ValueError("no nodule label map to edit")
        self.state = state
        self.nodule_id = int(nodule_id)
        labels = state.nodule_labels
        full = labels == self.nodule_id
        n = state.nodule(self.nodule_id) or {}
        if full.any():
            idx = np.argwhere(full)
            lo, hi = idx.min(axis=0), idx.max(axis=0)
        else:  # an emptied nodule: centre the crop on its reported centre
            c = np.asarray(n.get("center_voxel_zyx") or np.array(labels.shape) // 2, float).round().astype(int)
            lo = hi = c
        shape = np.array(labels.shape)
        self._lo = np.maximum(np.array(lo) - [_MARGIN_Z, _MARGIN_YX, _MARGIN_YX], 0)
        self._hi = np.minimum(np.array(hi) + [_MARGIN_Z, _MARGIN_YX, _MARGIN_YX] + 1, shape)
        sl = tuple(slice(a, b) for a, b in zip(self._lo, self._hi))
        self._crop = sl
        self.mask = full[sl].copy()  # the working copy (crop)
        self._other = (labels[sl] != 0) & (labels[sl] != self.nodule_id)  # never paint over another nodule
        vol = state.volume
        self._ct = vol.array[sl].astype(np.float32) if vol is not None and vol.array.shape == labels.shape else None
        self._spacing = state._spacing()

        lay = QVBoxLayout(self)
        lay.setContentsMargins(8, 8, 8, 8)
        self.title = QLabel()
        self.title.setTextFormat(Qt.TextFormat.RichText)
        lay.addWidget(self.title)

        self.view = pg.GraphicsLayoutWidget()
        self.view.setBackground(PALETTE["bg"])
        self.vb = self.view.addViewBox(lockAspect=self._spacing[1] / self._spacing[2])
        self.vb.invertY(True)  # row 0 (anterior) at the top, as axial CT is read
        self.vb.setMouseEnabled(False, False)
        self.ct_item = pg.ImageItem(axisOrder="row-major")
        self.mask_item = _PaintImage(self._paint_at, self._hover_at, axisOrder="row-major")
        self.vb.addItem(self.ct_item)
        self.vb.addItem(self.mask_item)
        # the brush outline follows the pointer so its size in mm is visible
        self.brush_outline = QGraphicsEllipseItem()
        self.brush_outline.setPen(pg.mkPen(PALETTE["accent"], width=1.5, cosmetic=True))
        self.brush_outline.setVisible(False)
        self.vb.addItem(self.brush_outline)
        self.view.setMinimumSize(360, 360)
        lay.addWidget(self.view, 1)

        row = QHBoxLayout()
        row.addWidget(QLabel("Slice"))
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, self.mask.shape[0] - 1)
        areas = self.mask.reshape(self.mask.shape[0], -1).sum(axis=1)
        self.slider.setValue(int(np.argmax(areas)) if areas.any() else self.mask.shape[0] // 2)
        self.slider.valueChanged.connect(lambda _v: self._redraw())
        row.addWidget(self.slider, 1)
        self.slice_label = QLabel()
        row.addWidget(self.slice_label)
        lay.addLayout(row)

        tools = QHBoxLayout()
        self.brush_btn = QRadioButton("Brush")
        self.erase_btn = QRadioButton("Erase")
        self.brush_btn.setChecked(True)
        grp = QButtonGroup(self)
        grp.addButton(self.brush_btn)
        grp.addButton(self.erase_btn)
        tools.addWidget(self.brush_btn)
        tools.addWidget(self.erase_btn)
        tools.addSpacing(12)
        tools.addWidget(QLabel("Brush size"))
        self.size_box = QDoubleSpinBox()
        self.size_box.setRange(0.5, 20.0)
        self.size_box.setSingleStep(0.5)
        self.size_box.setSuffix(" mm")
        self.size_box.setValue(2.0)
        tools.addWidget(self.size_box)
        tools.addStretch(1)
        lay.addLayout(tools)

        self.measure_label = QLabel()
        self.measure_label.setTextFormat(Qt.TextFormat.RichText)
        lay.addWidget(self.measure_label)

        btns = QHBoxLayout()
        btns.addStretch(1)
        self.cancel_btn = QPushButton("Cancel")
        self.apply_btn = QPushButton("Apply edit")
        self.apply_btn.setStyleSheet(f"background: {PALETTE['accent']}; color: white; border: none;")
        self.cancel_btn.clicked.connect(self.cancelled)
        self.apply_btn.clicked.connect(self.apply)
        btns.addWidget(self.cancel_btn)
        btns.addWidget(self.apply_btn)
        lay.addLayout(btns)
        self._orig_measure = measure_mask(full, self._spacing)
        self._redraw()

    # ------------------------------------------------------------------ editing
    @property
    def current_slice(self) -> int:
        """Index of the displayed slice within the crop."""
        return int(self.slider.value())

    def paint(self, row: float, col: float, *, erase: bool | None = None, size_mm: float | None = None) -> int:
        """Paint (or erase) a disc of diameter ``size_mm`` centred on crop pixel
        (row, col) of the current slice (pixel centres are the integers);
        returns how many voxels changed."""
        erase = self.erase_btn.isChecked() if erase is None else erase
        d = float(size_mm if size_mm is not None else self.size_box.value())
        sy, sx = self._spacing[1], self._spacing[2]
        k = self.current_slice
        h, w = self.mask.shape[1:]
        yy, xx = np.ogrid[:h, :w]
        disc = ((yy - row) * sy) ** 2 + ((xx - col) * sx) ** 2 <= (d / 2.0) ** 2 + 1e-9
        if not disc.any():  # a brush smaller than a pixel still paints the pixel under it
            r, c = int(round(row)), int(round(col))
            if 0 <= r < h and 0 <= c < w:
                disc = np.zeros((h, w), bool)
                disc[r, c] = True
        before = self.mask[k].copy()
        if erase:
            self.mask[k] &= ~disc
        else:
            self.mask[k] |= disc & ~self._other[k]
        changed = int((before != self.mask[k]).sum())
        if changed:
            self._redraw()
        return changed

    def stroke(self, points: Iterable[tuple[float, float]], **kw: object) -> int:
        """Paint along crop pixel points (what a mouse drag produces)."""
        return sum(self.paint(r, c, **kw) for r, c in points)  # type: ignore[arg-type]

    def _hover_at(self, pos: tuple[float, float] | None) -> None:
        if pos is None:
            self.brush_outline.setVisible(False)
            return
        y, x = pos
        d = float(self.size_box.value())
        ry, rx = d / 2.0 / self._spacing[1], d / 2.0 / self._spacing[2]
        self.brush_outline.setRect(x - rx, y - ry, 2 * rx, 2 * ry)
        self.brush_outline.setPen(pg.mkPen(PALETTE["red"] if self.erase_btn.isChecked() else PALETTE["accent"],
                                           width=1.5, cosmetic=True))
        self.brush_outline.setVisible(True)

    def _paint_at(self, y: float, x: float) -> None:
        # item coordinates put pixel (r, c) on [c, c+1) x [r, r+1); paint() takes
        # pixel indices whose centres are the integers
        self.paint(y - 0.5, x - 0.5)

    def full_mask(self) -> np.ndarray:
        """The edited mask in the geometry of the whole label map."""
        labels = self.state.nodule_labels
        assert labels is not None
        full = labels == self.nodule_id
        full[self._crop] = self.mask
        return full

    def apply(self) -> None:
        """Write the edit into the state (re-measured and saved there)."""
        self.state.set_nodule_mask(self.nodule_id, self.full_mask())
        self.applied.emit(self.nodule_id)

    # ------------------------------------------------------------------ display
    def _redraw(self) -> None:
        k = self.current_slice
        if self._ct is not None:
            self.ct_item.setImage(self._ct[k], levels=_LUNG_WINDOW, autoLevels=False)
        else:
            self.ct_item.setImage(np.zeros(self.mask.shape[1:], np.float32), levels=(0, 1), autoLevels=False)
        rgba = np.zeros(self.mask.shape[1:] + (4,), np.ubyte)
        rgba[self.mask[k]] = (255, 140, 0, 120)
        rgba[self._other[k]] = (120, 120, 255, 80)
        self.mask_item.setImage(rgba, autoLevels=False, levels=(0, 255))
        self.vb.autoRange(padding=0.0)
        z = int(self._lo[0]) + k
        self.slice_label.setText(f"{z}")
        m = measure_mask(self.mask, self._spacing)
        o = self._orig_measure
        self.title.setText(f'<b>Edit nodule #{self.nodule_id}</b>&nbsp;&nbsp;<span style="color:{PALETTE["muted"]};">'
                           f"left-drag paints in the shown slice · lung window</span>")
        self.measure_label.setText(
            f"Volume {m['volume_mm3']:.0f} mm³ (was {o['volume_mm3']:.0f}) · mean diameter "
            f"{m['mean_diameter_mm']:.1f} mm (was {o['mean_diameter_mm']:.1f}) "
            f'<span style="color:{PALETTE["muted"]};">— re-measured in the viewer</span>')


class MaskEditorDialog(QDialog):
    """The editor in a dialog (what the Findings dock's *Edit* opens)."""

    def __init__(self, state: AnalysisState, nodule_id: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Edit nodule #{nodule_id}")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.editor = MaskEditor(state, nodule_id, self)
        lay.addWidget(self.editor)
        self.editor.applied.connect(lambda _i: self.accept())
        self.editor.cancelled.connect(self.reject)
        self.resize(520, 600)
