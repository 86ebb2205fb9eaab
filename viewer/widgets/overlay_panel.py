"""Overlay controls: per overlay a visibility box, fill/contour mode and an
opacity slider; per label a visibility box with its colour."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox, QComboBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QSlider, QVBoxLayout, QWidget,
)

from viewer.model.viewer_model import ViewerModel

__all__ = ["OverlayPanel"]


class OverlayPanel(QWidget):
    """Rebuilt whenever the set of overlays changes; edits go to the model."""

    def __init__(self, model: ViewerModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("overlay_panel")
        self.model = model
        self._lay = QVBoxLayout(self)
        self._lay.setContentsMargins(4, 4, 4, 4)
        self._signature: tuple = ()
        self.controls: dict[str, dict[str, object]] = {}
        self._empty = QLabel("No label maps yet: they appear after analysis.", self)
        self._empty.setWordWrap(True)
        self._empty.setProperty("role", "placeholder")
        self._lay.addWidget(self._empty)
        self._lay.addStretch(1)
        model.overlays_changed.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        sig = tuple((n, tuple(o.ids())) for n, o in sorted(self.model.overlays.items()))
        if sig == self._signature:
            self._sync_values()
            return
        self._signature = sig
        while self._lay.count():
            it = self._lay.takeAt(0)
            w = it.widget()
            if w is not None and w is not self._empty:
                # hidden and detached now: deleteLater alone leaves it drawn
                # until the event loop runs (screenshots, tests) -- a ghost box
                w.hide()
                w.setParent(None)
                w.deleteLater()
        self.controls = {}
        if not self.model.overlays:
            self._lay.addWidget(self._empty)
            self._empty.show()
        else:
            self._empty.hide()
        for name, ov in sorted(self.model.overlays.items()):
            box = QGroupBox(name.capitalize(), self)
            box.setCheckable(True)
            box.setChecked(ov.visible)
            form = QFormLayout(box)
            mode = QComboBox(box)
            mode.addItems(["both", "fill", "contour"])
            mode.setCurrentText(ov.mode)
            slider = QSlider(Qt.Horizontal, box)
            slider.setRange(0, 100)
            slider.setValue(int(round(ov.opacity * 100)))
            form.addRow("Display", mode)
            form.addRow("Opacity", slider)
            labels = QWidget(box)
            ll = QHBoxLayout(labels)
            ll.setContentsMargins(0, 0, 0, 0)
            checks = {}
            for i in ov.ids()[:24]:
                r, g, b = ov.colors[i]
                cb = QCheckBox(str(i), labels)
                cb.setChecked(ov.is_shown(i) or not ov.visible)
                cb.setStyleSheet(f"QCheckBox {{ color: rgb({r},{g},{b}); font-weight: 600; }}")
                cb.toggled.connect(lambda _on, n=name: self._labels_changed(n))
                ll.addWidget(cb)
                checks[i] = cb
            ll.addStretch(1)
            form.addRow("Labels", labels)
            box.toggled.connect(lambda on, n=name: self.model.update_overlay(n, visible=on))
            mode.currentTextChanged.connect(lambda t, n=name: self.model.update_overlay(n, mode=t))
            slider.valueChanged.connect(lambda v, n=name: self.model.update_overlay(n, opacity=v / 100.0))
            self._lay.addWidget(box)
            self.controls[name] = {"box": box, "mode": mode, "opacity": slider, "labels": checks}
        self._lay.addStretch(1)

    def _sync_values(self) -> None:
        """Follow changes made elsewhere (API, keys) without echoing them back."""
        for name, ctl in self.controls.items():
            ov = self.model.overlays[name]
            widgets = [ctl["box"], ctl["mode"], ctl["opacity"], *ctl["labels"].values()]  # type: ignore[union-attr]
            for w in widgets:
                w.blockSignals(True)
            ctl["box"].setChecked(ov.visible)  # type: ignore[union-attr]
            ctl["mode"].setCurrentText(ov.mode)  # type: ignore[union-attr]
            ctl["opacity"].setValue(int(round(ov.opacity * 100)))  # type: ignore[union-attr]
            for i, cb in ctl["labels"].items():  # type: ignore[union-attr]
                cb.setChecked(ov.visible_ids is None or i in ov.visible_ids)
            for w in widgets:
                w.blockSignals(False)

    def _labels_changed(self, name: str) -> None:
        checks = self.controls[name]["labels"]
        ids = {i for i, cb in checks.items() if cb.isChecked()}  # type: ignore[union-attr]
        self.model.update_overlay(name, visible_ids=ids)
