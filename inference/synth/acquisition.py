"""What the scanner adds: reconstruction kernel, correlated noise, field of view.

Why these matter for transfer to real CT: a detector trained on white noise
learns the wrong texture. Real filtered-back-projection noise is *correlated*
(its power spectrum rises with frequency, then the kernel's apodisation cuts it
off), a sharp "lung" kernel enhances edges (overshoot at the pleura, crisp
vessels, grainy parenchyma) and a soft kernel smooths them. Noise grows as the
dose falls (sigma proportional to 1/sqrt(mAs)) and as the slice thins.
"""

from __future__ import annotations

import numpy as np

__all__ = ["KERNELS", "apply_kernel", "blur_inplane", "NoiseField", "noise_sigma", "apply_fov"]

#: Kernel name -> DICOM ConvolutionKernel text and noise level (HU) at the
#: reference dose (dose = 1.0) and 1.25 mm slices.
KERNELS = {
    "soft": {"dicom": "STANDARD", "sigma": 11.0},
    "sharp": {"dicom": "LUNG", "sigma": 42.0},
}


def _blur3(a: np.ndarray, axis: int) -> np.ndarray:
    """[1, 2, 1] / 4 smoothing along one axis (edges replicated): a cheap PSF."""
    out = a * np.float32(0.5)
    lo = [slice(None)] * a.ndim
    hi = [slice(None)] * a.ndim
    lo[axis] = slice(0, -1)
    hi[axis] = slice(1, None)
    out[tuple(hi)] += np.float32(0.25) * a[tuple(lo)]
    out[tuple(lo)] += np.float32(0.25) * a[tuple(hi)]
    first = [slice(None)] * a.ndim
    last = [slice(None)] * a.ndim
    first[axis] = slice(0, 1)
    last[axis] = slice(-1, None)
    out[tuple(first)] += np.float32(0.25) * a[tuple(first)]
    out[tuple(last)] += np.float32(0.25) * a[tuple(last)]
    return out


def blur_inplane(a: np.ndarray) -> np.ndarray:
    """[1, 2, 1]/4 blur along y and x of a (z, y, x) float32 array."""
    return _blur3(_blur3(a.astype(np.float32, copy=False), 1), 2)


def apply_kernel(hu: np.ndarray, kernel: str) -> np.ndarray:
    """Blur by the system PSF, then edge-enhance for the sharp kernel.

    Works slice by slice in-plane (reconstruction kernels act in the axial
    plane); returns a new float32 array.
    """
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {sorted(KERNELS)}, not {kernel!r}")
    out = np.empty_like(hu, dtype=np.float32)
    for k0 in range(0, hu.shape[0], 16):
        a = hu[k0 : k0 + 16].astype(np.float32, copy=False)
        b = _blur3(_blur3(a, 1), 2)
        if kernel == "soft":
            out[k0 : k0 + 16] = b
        else:
            # unsharp mask: overshoot at edges, crisp vessels (a lung kernel)
            b -= a
            b *= np.float32(-0.6)
            b += a
            out[k0 : k0 + 16] = b
    return out


def _noise_bank(rng: np.random.Generator, ny: int, nx: int, kernel: str, pixel_mm: float, n: int = 6) -> np.ndarray:
    """Unit-variance 2-D noise fields with an FBP-like power spectrum.

    NPS(f) ~ f * W(f)^2: the ramp filter times the kernel's apodisation window
    W; the sharp kernel keeps (and slightly boosts) the high frequencies, the
    soft kernel rolls them off early -- the visual difference between a lung
    and a mediastinal reconstruction of the same scan.
    """
    fy = np.fft.fftfreq(ny, d=pixel_mm)[:, None]
    fx = np.fft.rfftfreq(nx, d=pixel_mm)[None, :]
    f = np.sqrt(fx * fx + fy * fy)  # cycles / mm
    if kernel == "soft":
        w = np.exp(-((f / 0.32) ** 2))
    else:
        w = (1.0 + 1.2 * f) * np.exp(-((f / 0.62) ** 4))
    # real scanners also pass a little low-frequency noise (non-ideal ramp)
    h = np.sqrt(f + 0.03) * w
    bank = np.empty((n, ny, nx), np.float32)
    for i in range(n):
        white = rng.standard_normal((ny, nx))
        b = np.fft.irfft2(np.fft.rfft2(white) * h, s=(ny, nx))
        bank[i] = (b / b.std()).astype(np.float32)
    return bank


def noise_sigma(kernel: str, dose: float, slice_mm: float, body_scale: float = 1.0) -> float:
    """Noise standard deviation (HU) for a kernel, relative dose and slice.

    ``dose`` 1.0 is a routine diagnostic chest CT, ~0.25 a low-dose screening CT.
    """
    return float(KERNELS[kernel]["sigma"] / np.sqrt(max(dose, 1e-3)) * np.sqrt(1.25 / slice_mm) * body_scale**1.5)


class NoiseField:
    """Correlated scanner noise, one unit-variance 2-D field per slice.

    Each slice takes a random mix of two bank fields, randomly rolled and
    flipped, so slices differ without an FFT per slice (fast at 512²). The
    caller scales it by sigma (dose, kernel, slice) and by a spatial weight.
    """

    def __init__(self, rng: np.random.Generator, nz: int, ny: int, nx: int, *, kernel: str, pixel_mm: float) -> None:
        self.bank = _noise_bank(rng, ny, nx, kernel, pixel_mm)
        self.idx = rng.integers(0, len(self.bank), (nz, 2))
        self.ang = rng.uniform(0, 2 * np.pi, nz)
        self.rolls = rng.integers(0, max(ny, nx), (nz, 2))
        self.flips = rng.integers(0, 4, nz)

    def slice(self, k: int) -> np.ndarray:
        """The unit-variance noise of slice ``k``."""
        a = self.bank[self.idx[k, 0]]
        b = np.roll(self.bank[self.idx[k, 1]], tuple(int(v) for v in self.rolls[k]), axis=(0, 1))
        n = np.float32(np.cos(self.ang[k])) * a + np.float32(np.sin(self.ang[k])) * b
        if self.flips[k] & 1:
            n = n[::-1]
        if self.flips[k] & 2:
            n = n[:, ::-1]
        return n


def apply_fov(hu: np.ndarray, radius_px: float | None = None) -> np.ndarray:
    """Boolean (y, x) mask of the reconstruction circle; outside it a scanner
    writes its padding value, which the caller sets to -1024 HU."""
    ny, nx = hu.shape[-2:]
    r = radius_px if radius_px is not None else min(ny, nx) / 2.0
    yy, xx = np.mgrid[0:ny, 0:nx]
    return ((yy - (ny - 1) / 2) ** 2 + (xx - (nx - 1) / 2) ** 2) <= r * r
