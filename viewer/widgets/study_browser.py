"""Study browser: patients › studies › series, with modality, description,
image count and a thumbnail. Double-click (or Enter) on a series loads it."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import QHeaderView, QTreeWidget, QTreeWidgetItem, QWidget

from inference.types import ScanResult, SeriesInfo

__all__ = ["StudyBrowser"]

_ROLE = Qt.UserRole + 1


class StudyBrowser(QTreeWidget):
    """Shows one :class:`ScanResult`; emits ``series_activated(SeriesInfo)``."""

    series_activated = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("study_browser")
        # One column: a docked browser is narrow, and separate modality/count
        # columns squeezed the series description out of sight.
        self.setColumnCount(1)
        self.setHeaderHidden(True)
        self.header().setSectionResizeMode(0, QHeaderView.Stretch)
        self.setIconSize(QSize(48, 48))
        self.setIndentation(12)
        self.setRootIsDecorated(True)
        self.setUniformRowHeights(False)
        self.setTextElideMode(Qt.ElideMiddle)
        self.setAlternatingRowColors(False)
        self._series_items: dict[str, QTreeWidgetItem] = {}
        self._study_items: dict[str, QTreeWidgetItem] = {}
        self._notes: dict[str, str] = {}
        self._thumbs: dict[str, np.ndarray] = {}
        self.itemActivated.connect(self._on_activated)
        self.scan_result: ScanResult | None = None

    def set_scan(self, result: ScanResult | None) -> None:
        """Replace the tree with ``result`` (None clears it)."""
        self.clear()
        self._series_items = {}
        self._study_items = {}
        self.scan_result = result
        if result is None:
            return
        for pid, studies in result.patients().items():
            first = next(iter(studies.values()))[0]
            pname = first.patient.name or "(no name)"
            p_item = QTreeWidgetItem([f"{pname}\n{pid}"])
            self.addTopLevelItem(p_item)
            for _uid, series_list in studies.items():
                st = series_list[0].study
                when = st.date.isoformat() if st.date else "no date"
                note = self._notes.get(st.study_instance_uid, "")
                s_item = QTreeWidgetItem([f"{when}  {st.description or '(no description)'}" + (f"  · {note}" if note else "")])
                p_item.addChild(s_item)
                self._study_items[st.study_instance_uid] = s_item
                for s in sorted(series_list, key=lambda x: (x.series_number is None, x.series_number or 0)):
                    num = f"#{s.series_number} " if s.series_number is not None else ""
                    it = QTreeWidgetItem([f"{num}{s.description or '(no description)'}\n{s.modality} · {s.n_images} images"])
                    it.setData(0, _ROLE, s)
                    it.setToolTip(0, _series_tooltip(s))
                    s_item.addChild(it)
                    self._series_items[s.series_instance_uid] = it
                    if s.series_instance_uid in self._thumbs:
                        self.set_thumbnail(s.series_instance_uid, self._thumbs[s.series_instance_uid])
        self.expandAll()

    def add_scan(self, result: ScanResult, *, note: str = "") -> None:
        """List ``result``'s series beside the current ones (e.g. the prior
        study), each of its studies marked with ``note``."""
        for s in result.series:
            if note:
                self._notes[s.study.study_instance_uid] = note
        if self.scan_result is None:
            self.set_scan(result)
            return
        known = {s.series_instance_uid for s in self.scan_result.series}
        merged = ScanResult(root=self.scan_result.root,
                            series=self.scan_result.series + tuple(s for s in result.series if s.series_instance_uid not in known),
                            skipped=self.scan_result.skipped + result.skipped)
        self.set_scan(merged)

    def study_item(self, study_uid: str) -> QTreeWidgetItem | None:
        return self._study_items.get(study_uid)

    def set_thumbnail(self, series_uid: str, image: np.ndarray) -> None:
        """Show a uint8 grey thumbnail beside the series."""
        self._thumbs[series_uid] = image
        it = self._series_items.get(series_uid)
        if it is None:
            return
        img = np.ascontiguousarray(image, np.uint8)
        q = QImage(img.data, img.shape[1], img.shape[0], img.strides[0], QImage.Format_Grayscale8).copy()
        it.setIcon(0, QIcon(QPixmap.fromImage(q)))

    def series_item(self, series_uid: str) -> QTreeWidgetItem | None:
        return self._series_items.get(series_uid)

    def mark_loaded(self, series_uid: str | None) -> None:
        """Bold the series being shown so the reader knows which one it is."""
        for uid, it in self._series_items.items():
            f = it.font(0)
            f.setBold(uid == series_uid)
            it.setFont(0, f)

    def _on_activated(self, item: QTreeWidgetItem, _col: int) -> None:
        s = item.data(0, _ROLE)
        if isinstance(s, SeriesInfo):
            self.series_activated.emit(s)


def _series_tooltip(s: SeriesInfo) -> str:
    parts = [f"Series UID {s.series_instance_uid}"]
    if s.rows and s.columns:
        parts.append(f"{s.columns}×{s.rows}")
    if s.pixel_spacing_mm:
        parts.append(f"pixel {s.pixel_spacing_mm[0]:.2f} mm")
    if s.slice_thickness_mm:
        parts.append(f"slice {s.slice_thickness_mm:.2f} mm")
    if s.kernel:
        parts.append(f"kernel {s.kernel}")
    return "\n".join(parts)
