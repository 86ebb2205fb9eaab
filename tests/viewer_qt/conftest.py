"""Fixtures for viewer widget tests: a real MainWindow, offscreen."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtTest import QTest

from tests.viewer_model.phantoms import sphere_volume


@pytest.fixture(autouse=True)
def themed_app(qapp):
    """Every widget test runs under the app's own theme (Fusion, palette, QSS), as the user
    sees it. Without this the theme arrived with the first test that built a MainWindow, and
    sizes measured by later tests depended on the order the tests ran in."""
    from viewer.app import make_app

    return make_app()


@pytest.fixture
def window(qtbot):
    from viewer.main_window import MainWindow
    from viewer.model.settings import Settings

    w = MainWindow(settings=Settings())
    qtbot.addWidget(w)
    w.resize(1500, 950)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.loader.cancel()
    w.loader.wait_idle(10000)


@pytest.fixture
def loaded(window, qtbot, request):
    # a UID per test: measurements are saved per series and must not leak
    uid = "2.25." + str(abs(hash(request.node.nodeid)) % 10**20)
    window.load_volume(sphere_volume(uid=uid))
    wait_views(window, qtbot)
    return window


def wait_views(window, qtbot) -> None:
    """The active view paints at once, the others follow a few ms later."""
    qtbot.waitUntil(lambda: all(v._raw is not None and not v._queued for v in window.grid.visible_views()), timeout=5000)
    qtbot.wait(5)


def pixel(view, zyx) -> tuple[int, int, int]:
    """RGB of the viewport pixel that shows voxel ``zyx``."""
    pos = view.widget_pos_of_voxel(zyx)
    img = view.viewport().grab().toImage()
    c = img.pixelColor(pos)
    return c.red(), c.green(), c.blue()


def wheel(view, zyx, steps: int, modifiers=Qt.NoModifier) -> None:
    pos = QPointF(view.widget_pos_of_voxel(zyx))
    vp = view.viewport()
    ev = QWheelEvent(pos, QPointF(vp.mapToGlobal(pos.toPoint())), QPoint(0, 0), QPoint(0, 120 * steps),
                     Qt.NoButton, modifiers, Qt.NoScrollPhase, False)
    from PySide6.QtWidgets import QApplication

    QApplication.sendEvent(vp, ev)


def _send(view, etype, pos: QPoint, button, buttons) -> None:
    """Deliver one mouse event straight to the viewport.

    QTest's synthetic clicks go through the window system layer, which turns
    two presses close in (fake) time into a double-click even across tests;
    sending the events directly makes each gesture exactly what it says.
    """
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    vp = view.viewport()
    p = QPointF(pos)
    ev = QMouseEvent(etype, p, p, QPointF(vp.mapToGlobal(pos)), button, buttons, Qt.NoModifier)
    QApplication.sendEvent(vp, ev)


def drag(view, a_zyx, b_zyx, button=Qt.LeftButton, steps: int = 4) -> None:
    """Press at one voxel, move in ``steps`` and release at another. The moves
    are spaced in time because pyqtgraph drops moves faster than its mouse
    rate limit (as it would a real mouse's)."""
    from PySide6.QtCore import QEvent

    a, b = view.widget_pos_of_voxel(a_zyx), view.widget_pos_of_voxel(b_zyx)
    _send(view, QEvent.MouseButtonPress, a, button, button)
    for i in range(1, steps + 1):
        t = i / steps
        p = QPoint(round(a.x() + (b.x() - a.x()) * t), round(a.y() + (b.y() - a.y()) * t))
        QTest.qWait(20)
        _send(view, QEvent.MouseMove, p, Qt.NoButton, button)
    _send(view, QEvent.MouseButtonRelease, b, button, Qt.NoButton)


def click(view, zyx, button=Qt.LeftButton, double: bool = False) -> None:
    from PySide6.QtCore import QEvent

    p = view.widget_pos_of_voxel(zyx)
    _send(view, QEvent.MouseButtonPress, p, button, button)
    _send(view, QEvent.MouseButtonRelease, p, button, Qt.NoButton)
    if double:
        _send(view, QEvent.MouseButtonDblClick, p, button, button)
        _send(view, QEvent.MouseButtonRelease, p, button, Qt.NoButton)


def centre(window) -> np.ndarray:
    return np.array(window.model.cursor)


# A voxel inside the sphere but off the crosshair lines in every view.
OFF_CROSS = np.array([1, 2, 2])
