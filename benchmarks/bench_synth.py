"""Synthetic patients: generation speed, side by side with a baseline in the same run.

Usage::

    .venv/bin/python -m benchmarks.bench_synth            # timings (markdown table)
    .venv/bin/python -m benchmarks.bench_synth --images   # also docs/images/synth_*.png

Rows (each the median of ``--repeat`` runs; the machine load is printed so a
reader can judge contention):

* training phantom (256², 1.3 mm, 2 mm slices): the size the nodule model trains on;
* full-resolution CT (512², 0.7 mm, 1.25 mm): default (coarse smooth anatomy,
  full-resolution vessels/nodules) vs **baseline** ``anatomy_factor=1``
  (everything at full resolution);
* training I/O: reading the same phantom as NIfTI vs as a DICOM series
  (**baseline**), both with SimpleITK;
* the demo patient, generated cold (two CTs + DICOM + clinical files).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any, Callable

import numpy as np

REPO = Path(__file__).resolve().parents[1]
REAL_CT = REPO.parent / "shared" / "data" / "lung-pet-ct-dx" / "A0001" / "ct-lung-kernel"


def _time(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    ts, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts), out


def run(repeat: int) -> list[tuple[str, str, str]]:
    import SimpleITK as sitk

    from inference.synth.demo import ensure_demo_patient
    from inference.synth.dicom_writer import derive_uid, write_ct_series
    from inference.synth.nifti_writer import write_nifti
    from inference.synth.phantom import make_phantom
    from inference.types import PatientInfo

    rows: list[tuple[str, str, str]] = []
    train = dict(shape=(256, 256), pixel_mm=1.3, slice_mm=2.0, vessel_density=0.5, n_nodules=4, kernel="sharp", dose=1.0,
                 emphysema=False, effusion=False, atelectasis=False, fov_clip=False)
    t, ph = _time(lambda: make_phantom(1, **train), repeat)
    rows.append(("training phantom 256²×%d, 1.3 mm, 2 mm, 4 nodules" % ph.hu.shape[0], f"{t:.2f} s", ""))
    full = dict(train, shape=(512, 512), pixel_mm=0.7, slice_mm=1.25, vessel_density=0.9)
    t_fast, big = _time(lambda: make_phantom(2, **full), repeat)
    t_base, _ = _time(lambda: make_phantom(2, **full, anatomy_factor=1), repeat)
    rows.append((f"full CT 512²×{big.hu.shape[0]}, 0.7 mm, 1.25 mm", f"{t_fast:.2f} s", f"{t_base:.2f} s (anatomy at full resolution)"))
    tmp = Path(tempfile.mkdtemp(prefix="bench_synth_"))
    try:
        pat = PatientInfo(patient_id="BENCH", name="BENCH^SYNTH", birth_date=date(1960, 1, 1), sex="M")
        tw_d, _ = _time(lambda: write_ct_series(ph, tmp / "dcm", patient=pat, study_uid=derive_uid("b", 1),
                                               series_uid=derive_uid("b", 2), study_date=date(2025, 1, 1)), 1)
        tw_n, paths = _time(lambda: write_nifti(ph, tmp / "nii"), 1)
        rows.append(("write training phantom: NIfTI (3 files)", f"{tw_n:.2f} s", f"{tw_d:.2f} s (DICOM series)"))

        def read_dicom() -> Any:
            r = sitk.ImageSeriesReader()
            r.SetFileNames(r.GetGDCMSeriesFileNames(str(tmp / "dcm")))
            return sitk.GetArrayFromImage(r.Execute())

        tr_n, a = _time(lambda: sitk.GetArrayFromImage(sitk.ReadImage(str(paths["image"]))), repeat)
        tr_d, b = _time(read_dicom, repeat)
        assert np.array_equal(a, b)
        rows.append(("read training phantom: NIfTI", f"{tr_n:.3f} s", f"{tr_d:.3f} s (DICOM series)"))
        os.environ["CLINVIEW_CACHE_DIR"] = str(tmp / "cache")
        t_demo, _ = _time(ensure_demo_patient, 1)
        rows.append(("demo patient, cold (2 CTs 512², DICOM, VCF, FHIR, CSV, truth)", f"{t_demo:.1f} s", "budget 30 s"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rows


# --------------------------------------------------------------------------- images


def _real() -> np.ndarray | None:
    if not REAL_CT.is_dir():
        return None
    import SimpleITK as sitk

    r = sitk.ImageSeriesReader()
    r.SetFileNames(r.GetGDCMSeriesFileNames(str(REAL_CT)))
    return sitk.GetArrayFromImage(r.Execute())


def images(out: Path) -> None:
    """Render the comparison and gallery PNGs that the README shows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from inference.synth.followup import make_followup
    from inference.synth.nodules import NODULE_KINDS
    from inference.synth.phantom import make_phantom

    out.mkdir(parents=True, exist_ok=True)
    lung = dict(cmap="gray", vmin=-1350, vmax=150)
    # 1. synthetic vs real, matched levels (lung window, as the real series is shown)
    real = _real()
    ph = make_phantom(20250310, shape=(512, 512), pixel_mm=0.7, slice_mm=1.25, kernel="sharp", dose=0.6, sex="F",
                      n_nodules=4, nodule_types=["spiculated", "part-solid", "ground-glass", "calcified-central"],
                      nodule_size_mm=(8, 20), emphysema=False, effusion=False, atelectasis=False, fov_clip=False)
    an = ph.anatomy
    assert an is not None

    def k_at(z_anat: float) -> int:
        return int(np.clip(round((z_anat + ph.shift[2] - ph.origin[2]) / ph.spacing[0]), 0, ph.hu.shape[0] - 1))

    levels = [("heart", k_at(-105 * an.scale)), ("hila", k_at(-25 * an.scale)), ("upper lobes", k_at(45 * an.scale))]
    ncol = 4
    fig, ax = plt.subplots(2 if real is not None else 1, ncol, figsize=(4.2 * ncol, 8.8 if real is not None else 4.6), squeeze=False)
    for c, (name, k) in enumerate(levels):
        ax[0, c].imshow(ph.hu[k], **lung)
        ax[0, c].set_title(f"synthetic: {name}")
    row = int(round((10.0 * an.scale + ph.shift[1] - ph.origin[1]) / ph.spacing[1]))  # through the hila
    cor = ph.hu[:, row, :]
    ax[0, 3].imshow(cor, origin="lower", aspect=ph.spacing[0] / ph.spacing[1], **lung)
    ax[0, 3].set_title("synthetic: coronal")
    if real is not None:
        for c, k in enumerate((15, 32, 50)):
            ax[1, c].imshow(real[k], **lung)
            ax[1, c].set_title(f"real Lung-PET-CT-Dx A0001, slice {k}")
        r = ph.records[0] if ph.records else None
        if r is not None:
            z, y, x = r.center_voxel_zyx
            ax[1, 3].imshow(ph.hu[z, y - 40 : y + 40, x - 40 : x + 40], **lung)
            ax[1, 3].set_title(f"synthetic {r.subtype} {r.mean_diameter_mm} mm")
    for a in ax.flat:
        a.axis("off")
    fig.suptitle("clinview synthetic chest CT (top) beside a real CT (bottom); lung window W1500/L-600", fontsize=12)
    fig.tight_layout()
    fig.savefig(out / "synth_vs_real.png", dpi=60)
    plt.close(fig)
    # 2. nodule gallery
    kinds = list(NODULE_KINDS)
    g = make_phantom(4242, shape=(512, 512), pixel_mm=0.7, slice_mm=1.0, kernel="sharp", dose=1.0, n_nodules=len(kinds),
                     nodule_types=kinds, nodule_size_mm=(6, 22), emphysema=False, effusion=False, atelectasis=False,
                     fov_clip=False, vessel_density=0.8)
    cols = 5
    rows_ = int(np.ceil(len(g.records) / cols))
    fig, ax = plt.subplots(rows_, cols, figsize=(cols * 3.0, rows_ * 3.2), squeeze=False)
    for a in ax.flat:
        a.axis("off")
    for a, r in zip(ax.flat, g.records):
        z, y, x = r.center_voxel_zyx
        h = max(24, int(r.long_axis_mm / 0.7 * 1.3))
        win = dict(cmap="gray", vmin=-450, vmax=1050) if r.type == "calcified" else lung
        a.imshow(g.hu[z, max(0, y - h) : y + h, max(0, x - h) : x + h], **win)
        a.set_title(f"{r.subtype}\n{r.mean_diameter_mm} mm, {r.lobe}", fontsize=9)
    fig.suptitle("synthetic nodules (lung window W1500/L-600; calcified: W1500/L300)", fontsize=11)
    fig.tight_layout()
    fig.savefig(out / "synth_nodules.png", dpi=60)
    plt.close(fig)
    # 3. kinds of case
    base = dict(shape=(384, 384), pixel_mm=0.9, n_nodules=2, fov_clip=False)
    cases = [
        ("emphysema, lung kernel", make_phantom(11, **base, slice_mm=1.25, kernel="sharp", dose=1.0, emphysema=True, effusion=False, atelectasis=False), lung, 0.74),
        ("effusion + atelectasis, soft kernel", make_phantom(12, **base, slice_mm=1.25, kernel="soft", dose=1.0, emphysema=False, effusion=True, atelectasis=True), dict(cmap="gray", vmin=-160, vmax=240), 0.25),
        ("5 mm, low dose (0.25)", make_phantom(13, **base, slice_mm=5.0, kernel="sharp", dose=0.25, emphysema=False, effusion=False, atelectasis=False), lung, 0.5),
        ("field of view clips the body", make_phantom(14, **dict(base, fov_clip=True), slice_mm=2.5, kernel="soft", dose=1.0, emphysema=False, effusion=False, atelectasis=False), lung, 0.5),
    ]
    fu_base = make_phantom(15, **dict(base, n_nodules=3), slice_mm=2.0, kernel="sharp", dose=1.0,
                           nodule_types=["solid", "spiculated", "part-solid"], nodule_size_mm=(8, 14),
                           emphysema=False, effusion=False, atelectasis=False)
    fu = make_followup(fu_base, 16, months=12)
    fig, ax = plt.subplots(1, 6, figsize=(27, 4.8))
    for a, (name, p, win, frac) in zip(ax, cases):
        a.imshow(p.hu[int(frac * p.hu.shape[0])], **win)
        a.set_title(name)
    matched = [r for r in fu_base.records if r.id in fu.followup.matches]
    gr = max(matched, key=lambda r: fu.record(r.id).volume_mm3 / r.volume_mm3) if matched else None
    if gr is not None:
        z = gr.center_voxel_zyx[0]
        ax[4].imshow(fu_base.hu[z], **lung)
        ax[4].set_title("baseline")
        q = fu.followup.baseline_to_followup_lps @ np.append(gr.center_lps_mm, 1.0)
        kz = int(round(fu.to_volume().lps_to_voxel(q[:3])[0]))
        ax[5].imshow(fu.hu[int(np.clip(kz, 0, fu.hu.shape[0] - 1))], **lung)
        ax[5].set_title("12-month follow-up (moved, grown)")
    for a in ax:
        a.axis("off")
    fig.tight_layout()
    fig.savefig(out / "synth_cases.png", dpi=55)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--images", action="store_true", help="also write docs/images/synth_*.png")
    ap.add_argument("--no-timings", action="store_true")
    a = ap.parse_args()
    if a.images:
        images(REPO / "docs" / "images")
    if a.no_timings:
        return
    load = os.getloadavg()
    rows = run(a.repeat)
    print(f"load average before: {load[0]:.1f}; cores: {os.cpu_count()}")
    print("| case | clinview | baseline |\n|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} |")


if __name__ == "__main__":
    main()
