"""How a (z, y, x) volume is shown in the three standard planes.

Radiological display conventions (what every reader expects, and what 3D
Slicer, OHIF and RadiAnt do): axial and coronal views show the patient's
**left on the screen's right**; axial has anterior at the top; coronal and
sagittal have superior at the top; sagittal has anterior on the left.

Which *index* axis feeds which screen axis depends on the volume's direction
matrix, so it is computed here once per volume (any axis-aligned acquisition,
including flipped or permuted ones, comes out right; oblique ones use the
dominant axis and their labels say so). Scene coordinates inside a view are
millimetres in the plane, so anisotropic voxels keep their physical aspect.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = ["Plane", "PLANES", "PlaneGeometry", "plane_geometries", "index_axis_for_lps"]

Plane = Literal["axial", "coronal", "sagittal"]
PLANES: tuple[Plane, ...] = ("axial", "coronal", "sagittal")

_LPS_POS = "LPS"
_LPS_NEG = "RAI"


def index_axis_for_lps(direction: np.ndarray) -> tuple[int, int, int]:
    """For each LPS axis (L, P, S) the (z, y, x) index axis that runs along it.

    Chosen as the permutation with the largest product of |cosines| so that
    every LPS axis gets a distinct index axis even for oblique acquisitions.
    """
    d = np.abs(np.asarray(direction, float))  # rows: LPS, cols: index x, y, z
    best: tuple[float, tuple[int, int, int]] = (-1.0, (2, 1, 0))
    for perm in itertools.permutations(range(3)):  # perm[lps] = index column (x=0,y=1,z=2)
        score = float(np.prod([d[lps, perm[lps]] for lps in range(3)]))
        if score > best[0]:
            best = (score, tuple(2 - c for c in perm))  # column x,y,z -> zyx axis 2,1,0
    return best[1]


def _letter(vec: np.ndarray) -> str:
    """Orientation letter for an LPS direction (dominant component)."""
    i = int(np.argmax(np.abs(vec)))
    return _LPS_POS[i] if vec[i] > 0 else _LPS_NEG[i]


@dataclass(frozen=True)
class PlaneGeometry:
    """Mapping between one plane's 2D image and the volume's voxel indices.

    ``row_axis``/``col_axis``/``fixed_axis`` are (z, y, x) index axes;
    ``*_flip`` says the screen runs against the index. Scene coordinates are
    millimetres from the image's top-left corner, voxel centres at
    ``(c + 0.5) * col_mm``.
    """

    plane: Plane
    fixed_axis: int
    row_axis: int
    col_axis: int
    row_flip: bool
    col_flip: bool
    row_mm: float
    col_mm: float
    slice_mm: float
    n_rows: int
    n_cols: int
    n_slices: int
    labels: tuple[str, str, str, str]  # left, right, top, bottom
    up_sign: int = 1  # index step that moves "up": towards head (axial), front (coronal), right (sagittal)

    @property
    def width_mm(self) -> float:
        return self.n_cols * self.col_mm

    @property
    def height_mm(self) -> float:
        return self.n_rows * self.row_mm

    def slice2d(self, array: np.ndarray, index: int, slab: int = 1) -> np.ndarray:
        """The 2D image at ``index`` along the fixed axis, screen-oriented.

        ``slab > 1`` returns the maximum-intensity projection of ``slab``
        slices centred on ``index`` (thick-slab MIP for nodule hunting).
        Returns a view when possible (no copy for a thin axial slice).
        """
        n = array.shape[self.fixed_axis]
        index = int(min(max(index, 0), n - 1))
        if slab > 1:
            lo = max(0, index - slab // 2)
            hi = min(n, lo + slab)
            sl = [slice(None)] * 3
            sl[self.fixed_axis] = slice(lo, hi)
            img = np.max(array[tuple(sl)], axis=self.fixed_axis)
        else:
            sl = [slice(None)] * 3
            sl[self.fixed_axis] = index  # basic indexing: a view, never a copy
            img = array[tuple(sl)]
        return self.orient(img)

    def orient(self, img: np.ndarray) -> np.ndarray:
        """Put a 2D array whose axes are the remaining index axes (in
        increasing order) into screen order (rows, cols) with flips."""
        rest = [a for a in range(3) if a != self.fixed_axis]
        if rest.index(self.row_axis) == 1:
            img = img.T
        if self.row_flip:
            img = img[::-1, :]
        if self.col_flip:
            img = img[:, ::-1]
        return img

    def project(self, array: np.ndarray) -> np.ndarray:
        """Maximum-intensity projection through the whole volume."""
        return self.orient(np.max(array, axis=self.fixed_axis))

    # -- coordinates -----------------------------------------------------
    def voxel_to_scene(self, zyx: np.ndarray | tuple[float, float, float]) -> tuple[float, float]:
        """Continuous (z, y, x) index → (x_mm, y_mm) in this view's scene."""
        p = np.asarray(zyx, float)
        c = p[self.col_axis]
        r = p[self.row_axis]
        if self.col_flip:
            c = self.n_cols - 1 - c
        if self.row_flip:
            r = self.n_rows - 1 - r
        return float((c + 0.5) * self.col_mm), float((r + 0.5) * self.row_mm)

    def scene_to_voxel(self, x_mm: float, y_mm: float, slice_index: float) -> np.ndarray:
        """(x_mm, y_mm) in the scene on slice ``slice_index`` → (z, y, x)."""
        c = x_mm / self.col_mm - 0.5
        r = y_mm / self.row_mm - 0.5
        if self.col_flip:
            c = self.n_cols - 1 - c
        if self.row_flip:
            r = self.n_rows - 1 - r
        out = np.zeros(3)
        out[self.col_axis] = c
        out[self.row_axis] = r
        out[self.fixed_axis] = slice_index
        return out

    def pixel_of_voxel(self, zyx: np.ndarray | tuple[float, float, float]) -> tuple[int, int]:
        """Integer (row, col) of the 2D image that shows voxel ``zyx``."""
        x, y = self.voxel_to_scene(zyx)
        return int(np.floor(y / self.row_mm)), int(np.floor(x / self.col_mm))


def plane_geometries(shape: tuple[int, int, int], spacing: tuple[float, float, float], direction: np.ndarray) -> dict[Plane, PlaneGeometry]:
    """The three :class:`PlaneGeometry` objects for a volume."""
    D = np.asarray(direction, float)
    ax_l, ax_p, ax_s = index_axis_for_lps(D)

    def vec(axis: int) -> np.ndarray:  # LPS direction of a (z, y, x) index axis
        return D[:, 2 - axis]

    def make(plane: Plane, fixed: int, row: int, col: int, row_down: int, col_right: int, up: int) -> PlaneGeometry:
        # row_down / col_right: LPS component index whose + direction should
        # point down / right on screen (+1) or up / left (-1 encoded by sign).
        col_flip = bool(np.sign(vec(col)[abs(col_right) - 1]) != np.sign(col_right))
        row_flip = bool(np.sign(vec(row)[abs(row_down) - 1]) != np.sign(row_down))
        right = vec(col) * (-1 if col_flip else 1)
        down = vec(row) * (-1 if row_flip else 1)
        labels = (_letter(-right), _letter(right), _letter(-down), _letter(down))
        return PlaneGeometry(
            plane=plane, fixed_axis=fixed, row_axis=row, col_axis=col,
            row_flip=row_flip, col_flip=col_flip,
            row_mm=float(spacing[row]), col_mm=float(spacing[col]), slice_mm=float(spacing[fixed]),
            n_rows=int(shape[row]), n_cols=int(shape[col]), n_slices=int(shape[fixed]), labels=labels,
            up_sign=1 if np.sign(vec(fixed)[abs(up) - 1]) == np.sign(up) else -1,
        )

    # LPS component numbers are 1-based here so that the sign can carry "against".
    return {
        "axial": make("axial", ax_s, ax_p, ax_l, row_down=+2, col_right=+1, up=+3),
        "coronal": make("coronal", ax_p, ax_s, ax_l, row_down=-3, col_right=+1, up=-2),
        "sagittal": make("sagittal", ax_l, ax_s, ax_p, row_down=-3, col_right=+2, up=-1),
    }
