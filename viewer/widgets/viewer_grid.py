"""The grid of slice views: one view, MPR (a large axial view beside the
coronal and sagittal views, stacked) or 2×2 with a coronal MIP. Which views
show follows ``model.layout``.

Why MPR is 1 + 2 and not three columns: the axial view is where a chest CT is
read; beside the side docks three equal columns left each image about a
quarter of the width of the screen's centre (230 px of a 1600 px window), with
the rest black above and below it."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QGridLayout, QWidget

from viewer.model.viewer_model import VIEW_IDS, ViewerModel
from viewer.widgets.slice_view import SliceView

__all__ = ["ViewerGrid"]

#: view -> (row, column, row span, column span); a column's share of the width in _COLUMN_STRETCH
_POSITIONS: dict[str, dict[str, tuple[int, int, int, int]]] = {
    "mpr": {"axial": (0, 0, 2, 1), "coronal": (0, 1, 1, 1), "sagittal": (1, 1, 1, 1)},
    "2x2": {"axial": (0, 0, 1, 1), "coronal": (0, 1, 1, 1), "sagittal": (1, 0, 1, 1), "mip": (1, 1, 1, 1)},
}
_COLUMN_STRETCH = {"mpr": (3, 2), "2x2": (1, 1)}


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
            pos = {self.model.active_view: (0, 0, 1, 1)}
            stretch: tuple[int, ...] = (1,)
        else:
            pos = _POSITIONS[self.model.layout]
            stretch = _COLUMN_STRETCH[self.model.layout]
        for vid, (r, c, rs, cs) in pos.items():
            self._grid.addWidget(self.views[vid], r, c, rs, cs)
            for i in range(r, r + rs):
                self._grid.setRowStretch(i, 1)
            self.views[vid].show()
        for c, k in enumerate(stretch):
            self._grid.setColumnStretch(c, k)
        for v in self.views.values():
            v._refresh_active()

    def resizeEvent(self, ev):  # type: ignore[no-untyped-def]  # noqa: N802
        super().resizeEvent(ev)
        self.resized.emit()

    def visible_views(self) -> list[SliceView]:
        return [self.views[v] for v in self.model.visible_views()]
