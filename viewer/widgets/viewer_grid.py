"""The grid of slice views: one view, MPR (three side by side) or 2×2 with
a coronal MIP. Which views show follows ``model.layout``."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QGridLayout, QWidget

from viewer.model.viewer_model import VIEW_IDS, ViewerModel
from viewer.widgets.slice_view import SliceView

__all__ = ["ViewerGrid"]

_POSITIONS = {
    "mpr": {"axial": (0, 0), "coronal": (0, 1), "sagittal": (0, 2)},
    "2x2": {"axial": (0, 0), "coronal": (0, 1), "sagittal": (1, 0), "mip": (1, 1)},
}


class ViewerGrid(QWidget):
    """Owns the four :class:`SliceView` widgets and arranges them."""

    resized = Signal()

    def __init__(self, model: ViewerModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("viewer_grid")
        self.model = model
        self.views: dict[str, SliceView] = {v: SliceView(model, v, self) for v in VIEW_IDS}
        self._grid = QGridLayout(self)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setSpacing(2)
        model.layout_changed.connect(self._arrange)
        self._arrange()

    def _arrange(self) -> None:
        for v in self.views.values():
            self._grid.removeWidget(v)
            v.hide()
        for i in range(3):
            self._grid.setRowStretch(i, 0)
            self._grid.setColumnStretch(i, 0)
        if self.model.layout == "single":
            pos = {self.model.active_view: (0, 0)}
        else:
            pos = _POSITIONS[self.model.layout]
        for vid, (r, c) in pos.items():
            self._grid.addWidget(self.views[vid], r, c)
            self._grid.setRowStretch(r, 1)
            self._grid.setColumnStretch(c, 1)
            self.views[vid].show()
        for v in self.views.values():
            v._refresh_active()

    def resizeEvent(self, ev):  # type: ignore[no-untyped-def]  # noqa: N802
        super().resizeEvent(ev)
        self.resized.emit()

    def visible_views(self) -> list[SliceView]:
        return [self.views[v] for v in self.model.visible_views()]
