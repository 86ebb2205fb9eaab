"""The list of measurements of the open series, with delete and go-to."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, QWidget

from viewer.model.viewer_model import ViewerModel
from viewer.widgets.slice_view import measurement_text

__all__ = ["MeasurementListWidget"]

_KIND = {"line": "Line", "ellipse": "ROI", "angle": "Angle"}


class MeasurementListWidget(QWidget):
    """Follows ``model.measurements``; Delete removes, double-click jumps."""

    def __init__(self, model: ViewerModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("measurement_list")
        self.model = model
        self.list = QListWidget(self)
        self.delete_button = QPushButton("Delete", self)
        self.clear_button = QPushButton("Delete all", self)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.list)
        row = QHBoxLayout()
        row.addWidget(self.delete_button)
        row.addWidget(self.clear_button)
        row.addStretch(1)
        lay.addLayout(row)
        self.delete_button.clicked.connect(self.delete_selected)
        self.clear_button.clicked.connect(model.measurements.clear)
        self.list.itemDoubleClicked.connect(self._goto)
        model.measurements.changed.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        self.list.clear()
        for m in self.model.measurements:
            text = measurement_text(self.model, m).replace("\n", "  ")
            it = QListWidgetItem(f"{_KIND[m.kind]} {m.id} · {m.plane} · {text}")
            it.setData(Qt.UserRole, m.id)
            self.list.addItem(it)
        self.delete_button.setEnabled(len(self.model.measurements) > 0)
        self.clear_button.setEnabled(len(self.model.measurements) > 0)

    def delete_selected(self) -> None:
        for it in self.list.selectedItems():
            self.model.measurements.remove(int(it.data(Qt.UserRole)))

    def keyPressEvent(self, ev):  # type: ignore[no-untyped-def]  # noqa: N802
        if ev.key() in (Qt.Key_Delete, Qt.Key_Backspace):
            self.delete_selected()
            return
        super().keyPressEvent(ev)

    def _goto(self, item: QListWidgetItem) -> None:
        mid = int(item.data(Qt.UserRole))
        for m in self.model.measurements:
            if m.id == mid:
                self.model.set_cursor_lps(np.mean(np.asarray(m.points, float), axis=0))
                return
