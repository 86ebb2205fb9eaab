"""Rasterise tubes (vessels, airways, great vessels) into a voxel grid.

Why a separate module: tubes are the one structure drawn from a list of
primitives rather than from analytic fields, and drawing them must be fast
(thousands of branches per phantom) and antialiased (the partial-volume profile
of a thin vessel is exactly what a nodule detector must learn to reject).

Every tube segment touches only its bounding box, evaluated with broadcast 1-D
coordinate arrays, so the cost scales with the segment's size, not the volume's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Grid", "Segments", "draw_segments"]


@dataclass(frozen=True)
class Grid:
    """An axis-aligned voxel grid in LPS mm: ``world = origin + index * spacing``
    with index and spacing in (z, y, x) order and ``origin`` in (x, y, z)."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]

    def axes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """World coordinate of every plane: ``(z_mm, y_mm, x_mm)`` 1-D arrays."""
        nz, ny, nx = self.shape
        sz, sy, sx = self.spacing
        x0, y0, z0 = self.origin
        return (
            z0 + sz * np.arange(nz, dtype=np.float64),
            y0 + sy * np.arange(ny, dtype=np.float64),
            x0 + sx * np.arange(nx, dtype=np.float64),
        )


@dataclass
class Segments:
    """Tube segments in world LPS mm: start ``a`` and end ``b`` (N, 3) as
    (x, y, z), radii ``r0``/``r1`` at the ends, and the HU ``value`` inside."""

    a: np.ndarray
    b: np.ndarray
    r0: np.ndarray
    r1: np.ndarray
    value: np.ndarray

    @staticmethod
    def empty() -> "Segments":
        z = np.zeros((0, 3))
        return Segments(z, z.copy(), np.zeros(0), np.zeros(0), np.zeros(0))

    def __len__(self) -> int:
        return int(self.r0.shape[0])

    def concat(self, other: "Segments") -> "Segments":
        return Segments(
            np.concatenate([self.a, other.a]),
            np.concatenate([self.b, other.b]),
            np.concatenate([self.r0, other.r0]),
            np.concatenate([self.r1, other.r1]),
            np.concatenate([self.value, other.value]),
        )

    def transformed(self, rot: np.ndarray, shift: np.ndarray) -> "Segments":
        """Apply ``p -> rot @ p + shift`` to both ends (a rigid patient move)."""
        return Segments(self.a @ rot.T + shift, self.b @ rot.T + shift, self.r0, self.r1, self.value)


def draw_segments(
    hu: np.ndarray,
    grid: Grid,
    seg: Segments,
    *,
    mode: str = "max",
    blur_mm: float | None = None,
    occ_out: np.ndarray | None = None,
) -> None:
    """Composite tubes into ``hu`` in place with an antialiased profile.

    Parameters
    ----------
    hu
        float32 array on ``grid``.
    grid
        Geometry of ``hu``.
    seg
        Tubes to draw.
    mode
        ``"max"`` only raises values (vessels, airway walls brighter than lung);
        ``"min"`` only lowers them (air in an airway lumen); ``"blend"`` mixes
        toward the value by the occupancy (soft tissue that may be darker or
        brighter than what it covers).
    occ_out
        Optional float32 array on ``grid`` that receives the maximum occupancy,
        so the caller knows which voxels the tubes cover (e.g. "not lung").
    blur_mm
        Width of the edge ramp; defaults to the coarsest voxel side. Tubes thinner
        than this keep their cross-section *area*: peak contrast drops instead of
        the tube growing, which is how a real scanner shows a sub-voxel vessel.
    """
    if len(seg) == 0:
        return
    zs, ys, xs = grid.axes()
    sz, sy, sx = grid.spacing
    w = float(blur_mm if blur_mm is not None else max(sx, sy, 0.6 * sz))
    lo = np.minimum(seg.a, seg.b) - (np.maximum(seg.r0, seg.r1) + w)[:, None]
    hi = np.maximum(seg.a, seg.b) + (np.maximum(seg.r0, seg.r1) + w)[:, None]
    x0, y0, z0 = grid.origin
    nz, ny, nx = grid.shape
    i0 = np.clip(np.floor((lo[:, 0] - x0) / sx), 0, nx).astype(int)
    i1 = np.clip(np.ceil((hi[:, 0] - x0) / sx) + 1, 0, nx).astype(int)
    j0 = np.clip(np.floor((lo[:, 1] - y0) / sy), 0, ny).astype(int)
    j1 = np.clip(np.ceil((hi[:, 1] - y0) / sy) + 1, 0, ny).astype(int)
    k0 = np.clip(np.floor((lo[:, 2] - z0) / sz), 0, nz).astype(int)
    k1 = np.clip(np.ceil((hi[:, 2] - z0) / sz) + 1, 0, nz).astype(int)
    d = seg.b - seg.a
    length2 = np.maximum((d * d).sum(1), 1e-9)
    f32 = np.float32
    zs32, ys32, xs32 = zs.astype(f32), ys.astype(f32), xs.astype(f32)
    for n in np.nonzero((i1 > i0) & (j1 > j0) & (k1 > k0))[0]:
        ax_, ay_, az_ = (float(v) for v in seg.a[n])
        zz = (zs32[k0[n] : k1[n]] - f32(az_))[:, None, None]
        yy = (ys32[j0[n] : j1[n]] - f32(ay_))[None, :, None]
        xx = (xs32[i0[n] : i1[n]] - f32(ax_))[None, None, :]
        dx, dy, dz = (f32(v) for v in d[n])
        inv = f32(1.0 / length2[n])
        t = (xx * (dx * inv) + yy * (dy * inv)) + zz * (dz * inv)
        np.maximum(t, f32(0.0), out=t)
        np.minimum(t, f32(1.0), out=t)
        ex = xx - t * dx
        ey = yy - t * dy
        ez = zz - t * dz
        dist = np.sqrt(ex * ex + ey * ey + ez * ez)
        r0, r1 = float(seg.r0[n]), float(seg.r1[n])
        if r0 == r1:
            re = max(r0, 0.5 * w)
            occ = (f32(re / w + 0.5) - dist * f32(1.0 / w)) * f32(min(1.0, (r0 / re) ** 2))
            top = f32(min(1.0, (r0 / re) ** 2))
        else:
            r = f32(r0) + f32(r1 - r0) * t
            re = np.maximum(r, f32(0.5 * w))
            c = r / re
            occ = ((re - dist) * f32(1.0 / w) + f32(0.5)) * (c * c)
            top = c * c
        np.maximum(occ, f32(0.0), out=occ)
        occ = np.minimum(occ, top)
        sl = (slice(k0[n], k1[n]), slice(j0[n], j1[n]), slice(i0[n], i1[n]))
        if occ_out is not None:
            np.maximum(occ_out[sl], occ, out=occ_out[sl])
        box = hu[sl]
        target = box + occ * (f32(seg.value[n]) - box)
        if mode == "max":
            np.maximum(box, target, out=box)
        elif mode == "min":
            np.minimum(box, target, out=box)
        else:
            box[...] = target
