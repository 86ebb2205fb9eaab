"""Right and left lung masks by a classical, versioned method ("lung model").

Why classical: on CT the aerated lung is the largest low-density region inside
the body, so thresholding + connected components is accurate, needs no
weights, and runs in well under a second at reduced resolution. What makes it
hold on real scans is the clean-up, each step answering one failure seen on
real CT:

1. **air outside the body** -- the body is the largest dense component with
   its holes filled slice by slice; only air *inside* it can be lung;
2. **trachea and main bronchi** -- found as a small, round, central air column
   in the upper slices, grown downwards with a strict lumen threshold and
   removed (dilated by one voxel), which also separates the two lungs;
3. **bowel gas** -- below the diaphragm and much smaller than a lung: only the
   two largest components are kept, and only if each is a sizeable fraction of
   the largest;
4. **lungs touching at the anterior junction** -- one component holding both
   lungs is split at the column of least lung between the two halves;
5. **tumour, vessels and juxtapleural nodules** -- holes are filled and a 2-D
   closing (radius :data:`CLOSING_MM`) per lung and slice pulls dense tissue
   that bulges into the lung from the pleura or mediastinum back into the
   mask, so a nodule is never cut out of its own lung.

That map (:func:`segment_lungs`) is where nodules are searched. What is
*reported* -- volumes, emphysema, ``lungs.nii.gz``, the overlay -- is
:func:`aerated_lungs` of it: the closing also takes in the hilum and strips of
mediastinum and chest wall, which a nodule search must not lose but a lung
volume must not count.

Left/right comes from LPS geometry (patient right = smaller LPS x), never from
array order. Described in ``resources/models/lungs/metadata.json``.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from inference.types import Volume

__all__ = ["segment_lungs", "aerated_lungs", "LUNGS_VERSION", "lung_volumes_ml", "emphysema_laa950"]

LUNGS_VERSION = "1.2.0"
#: working in-plane pixel size (mm): fast, and lungs are large structures
WORK_MM = 2.5
AIR_HU = -400.0
#: radius of the per-slice closing that keeps juxtapleural/hilar masses
CLOSING_MM = 30.0
#: ... and the largest piece (mm², per slice) it may add: a 6 cm disk
MAX_ADD_MM2 = float(np.pi * 30.0**2)
#: ... and the largest region the two touching lungs may enclose together and still take in (mm², per slice)
MAX_BETWEEN_MM2 = float(np.pi * 18.0**2)
#: 2-D (in-slice) 4-connectivity for 3-D arrays
_SLICE_4 = np.pad(ndi.generate_binary_structure(2, 1)[None], ((1, 1), (0, 0), (0, 0)))


def _disk(r: int) -> np.ndarray:
    y, x = np.ogrid[-r : r + 1, -r : r + 1]
    return (x * x + y * y) <= r * r


def largest_component(mask: np.ndarray, structure: np.ndarray | None = None) -> np.ndarray:
    """The largest connected piece of ``mask`` (an empty mask when it has none)."""
    lab, n = ndi.label(mask, structure=structure)
    if n == 0:
        return mask.copy()
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    return lab == int(np.argmax(sizes))


def _fill_holes_2d(mask: np.ndarray) -> np.ndarray:
    out = np.empty_like(mask)
    for k in range(mask.shape[0]):
        out[k] = ndi.binary_fill_holes(mask[k])
    return out


def _downsample(a: np.ndarray, f: int) -> np.ndarray:
    """Block mean in-plane by ``f`` (keeps HU meaning, suppresses noise)."""
    if f == 1:
        return a.astype(np.float32)
    z, y, x = a.shape
    yy, xx = (y // f) * f, (x // f) * f
    b = a[:, :yy, :xx].astype(np.float32).reshape(z, yy // f, f, xx // f, f)
    return b.mean(axis=(2, 4))


def _airway(hu: np.ndarray, air: np.ndarray, px_mm: float) -> np.ndarray:
    """Trachea + main bronchi: seeded in the top slices, grown downwards.

    The seed is the most central small round air blob in the highest slices
    that hold one (neck/upper chest). Growth uses a strict lumen threshold
    (-900 HU after block averaging) and stops when a slice's airway area jumps
    (that is leakage into lung parenchyma).
    """
    nz, ny, nx = hu.shape
    lumen = hu < -900
    area_min, area_max = 40.0 / px_mm**2, 600.0 / px_mm**2  # mm² → px (trachea ~ 1.5-5 cm²)
    seed_k = None
    seed = None
    for k in range(nz - 1, -1, -1):  # top (head side) first; caller ensures z ascending = head last
        lab, n = ndi.label(air[k])
        best = None
        for i in range(1, n + 1):
            comp = lab == i
            a = comp.sum()
            if not (area_min <= a <= area_max):
                continue
            cy, cx = ndi.center_of_mass(comp)
            d = np.hypot((cy - ny / 2) / ny, (cx - nx / 2) / nx)
            if d < 0.2 and (best is None or d < best[0]):
                best = (d, comp)
        if best is not None:
            seed_k, seed = k, best[1]
            break
    out = np.zeros_like(air)
    if seed is None:
        return out
    out[seed_k] = seed & air[seed_k]
    prev = out[seed_k]
    prev_area = max(int(prev.sum()), 1)
    # the trachea and both main bronchi together never have much more lumen than the trachea:
    # more is lung parenchyma reached through a lumen voxel
    cap = 2.5 * prev_area + 20
    for k in range(seed_k - 1, -1, -1):
        # connected through lumen only: growing through (eroded) lung air let the airway creep
        # over every < -900 HU voxel of a lung, slice after slice (seen on synthetic patients:
        # 400 px "airway" cut blocks out of the lung and the nodules in them)
        lab, n = ndi.label(lumen[k])
        if n == 0:
            break
        ids = np.unique(lab[ndi.binary_dilation(prev, iterations=2) & (lab > 0)])
        cur = np.isin(lab, ids[ids > 0])
        a = int(cur.sum())
        if a == 0 or a > 3.0 * prev_area + 20 or a > cap:  # lost the lumen, or leaked into lung
            break
        out[k] = cur
        prev, prev_area = cur, max(a, 1)
    return out


def _split_lr(comp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split one component holding both lungs at the x column with least lung
    between the two halves (per slab of slices, so an oblique junction works)."""
    a = np.zeros_like(comp)
    b = np.zeros_like(comp)
    nx = comp.shape[2]
    prof_all = comp.sum(axis=(0, 1)).astype(float)
    xs = np.nonzero(prof_all)[0]
    centre = int((xs[0] + xs[-1]) / 2) if xs.size else nx // 2
    for k in range(comp.shape[0]):
        if not comp[k].any():
            continue
        prof = comp[k].sum(axis=0).astype(float)
        lo, hi = max(0, centre - nx // 6), min(nx, centre + nx // 6)
        cut = lo + int(np.argmin(ndi.uniform_filter1d(prof[lo:hi], 3))) if hi > lo else centre
        a[k, :, :cut] = comp[k, :, :cut]
        b[k, :, cut:] = comp[k, :, cut:]
    return a, b


def _mid_column(parts: list[np.ndarray]) -> float:
    cx = [ndi.center_of_mass(p)[2] for p in parts]
    return float(sum(cx) / 2.0)


def _fix_sides(out: np.ndarray, sides_x_mid: float) -> None:
    """Relabel, slice by slice, 2-D lung pieces lying wholly on the other side
    of the midline (e.g. an apex joined to the wrong lung through the
    mediastinum higher up). Pieces straddling the midline keep their label."""
    lab_right_low = None  # which label sits at small column index
    cols = np.arange(out.shape[2])
    m1 = (out == 1).sum(axis=(0, 1))
    m2 = (out == 2).sum(axis=(0, 1))
    if m1.sum() and m2.sum():
        lab_right_low = 1 if (m1 * cols).sum() / m1.sum() < (m2 * cols).sum() / m2.sum() else 2
    if lab_right_low is None:
        return
    lab_high = 3 - lab_right_low
    for k in range(out.shape[0]):
        if not out[k].any():
            continue
        lab, n = ndi.label(out[k] > 0)
        for i in range(1, n + 1):
            comp = lab == i
            xs = np.nonzero(comp.any(axis=0))[0]
            if xs[-1] < sides_x_mid:
                out[k][comp] = lab_right_low
            elif xs[0] > sides_x_mid:
                out[k][comp] = lab_high


#: on a clipped field of view, aerated lung is told from outside air by density
OUTSIDE_AIR_HU = -960.0
#: ... and only looked for when the air inside the body contour is below this (mL)
CLIPPED_MAX_INNER_ML = 2000.0



def _clipped_lung_air(hu: np.ndarray, body: np.ndarray, inner_air: np.ndarray, voxel_mm3: float) -> np.ndarray:
    """Lung cut open by a field of view narrower than the patient.

    When the reconstruction field clips the chest wall, the lung reaches the
    image edge, is no longer a hole of the body contour, and the fill above
    loses it (seen on ~10 % of synthetic patients; expected on large real
    patients). Outside air is pure air (about -1000 HU after the 2.5 mm block
    mean on synthetic scans), aerated lung is denser (-950 to -400 HU): so among the
    air outside the body contour that touches the left or right image edge,
    the part denser than :data:`OUTSIDE_AIR_HU`, eroded once to cut the
    partial-volume rim it shares with outside air, is lung when it is at
    least 50 mL and touches (over ≥ 2 mL) the air inside the body contour
    -- the same lung on the slices the field does not clip; air outside the
    skin never touches it. Only runs when the air inside the body is under
    :data:`CLIPPED_MAX_INNER_ML` (a partly clipped lung with more than that
    inside the field keeps only its unclipped part: a known limitation).
    """
    out = np.zeros(hu.shape, bool)
    # Only when the lungs found inside the body are implausibly small for an
    # adult chest CT: on the real A0001 scan outside air beside the arms reads
    # ~-880 HU and touches the body air, so density and contact alone would
    # add it to the lungs.
    if inner_air.sum() * voxel_mm3 >= CLIPPED_MAX_INNER_ML * 1000.0:
        return out
    outside = (hu < AIR_HU) & ~body
    lungish = outside & (ndi.uniform_filter(hu, (1, 3, 3)) > OUTSIDE_AIR_HU)
    lungish = ndi.binary_erosion(lungish, structure=np.ones((1, 3, 3), bool), border_value=1)
    lab, n = ndi.label(lungish)
    if n == 0:
        return out
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    edge = np.unique(np.concatenate([lab[:, :, 0].ravel(), lab[:, :, -1].ravel()]))
    # the same lung continues inside the body contour on the slices the field
    # does not clip: a clipped lung touches that air (across slices), air
    # outside the skin never does (the chest wall lies between)
    near_inner = ndi.binary_dilation(inner_air, structure=np.ones((3, 3, 3), bool), iterations=2)
    contact = np.bincount(lab[near_inner].ravel(), minlength=n + 1)
    for i in edge[edge > 0]:
        if sizes[i] * voxel_mm3 >= 50_000.0 and contact[i] * voxel_mm3 >= 2_000.0:
            out |= lab == i
    return ndi.binary_dilation(out, structure=np.ones((1, 3, 3), bool)) & outside


def _add_islands(out: np.ndarray, dense: np.ndarray, body: np.ndarray, voxel_mm3: float) -> None:
    """On a clipped scan, give dense islands inside a lung to that lung (in place).

    Where the field cuts the lung, the lung is open towards the field's edge,
    so the closing cannot enclose a nodule sitting there, and the nodule is
    not part of the body contour either (the chest wall beyond it was cut).
    Such an island -- dense tissue outside the body contour, under 200 mL,
    mostly bordered by one lung -- belongs to that lung.
    """
    lab, n = ndi.label(dense & ~body)
    if n == 0:
        return
    sizes = np.bincount(lab.ravel(), minlength=n + 1)
    for i, box in enumerate(ndi.find_objects(lab), start=1):
        if box is None or sizes[i] * voxel_mm3 >= 200_000.0:
            continue
        sl = tuple(slice(max(0, a.start - 2), a.stop + 2) for a in box)
        m = lab[sl] == i
        ring = ndi.binary_dilation(m, iterations=2) & ~m
        sides = out[sl][ring]
        if sides.size and (sides > 0).mean() >= 0.5:
            side = int(np.bincount(sides[sides > 0]).argmax())
            view = out[sl]
            view[m & (view == 0)] = np.uint8(side)


def _between_touching_lungs(parts: list[np.ndarray], px: float) -> np.ndarray:
    """Per slice, what the two lungs enclose together but neither encloses alone, when larger than a 3.6 cm disk.

    Where the lungs touch in front of (and behind) the heart, their union is a
    ring around the mediastinum on a slice; split at a column, each half's
    closing bridged its part of the ring and the hole filling took the heart
    and great vessels into the lung (synthetic patient 9002: a 61 mm false
    nodule there; the demo: a false nodule at the hilum). A nodule inside one
    lung is that lung's own hole and stays; a small one at the junction of
    the two (under :data:`MAX_BETWEEN_MM2`) too.
    """
    if len(parts) < 2:
        return np.zeros(parts[0].shape if parts else (0, 0, 0), bool)
    union = parts[0] | parts[1]
    holes = _fill_holes_2d(union) & ~union
    # only slices with a large hole of the union can hold one (most CTs: none, and the two
    # per-lung fillings below are skipped -- 0.18 s of the real CT's 0.9 s lung mask otherwise)
    ks = np.nonzero(_pieces_over(holes, px, MAX_BETWEEN_MM2).any(axis=(1, 2)))[0]
    out = np.zeros(union.shape, bool)
    if ks.size:
        own = (_fill_holes_2d(parts[0][ks]) & ~parts[0][ks]) | (_fill_holes_2d(parts[1][ks]) & ~parts[1][ks])
        out[ks] = _pieces_over(holes[ks] & ~own, px, MAX_BETWEEN_MM2)
    return out


def _pieces_over(mask: np.ndarray, px: float, max_mm2: float) -> np.ndarray:
    """The in-slice connected pieces of ``mask`` larger than ``max_mm2`` (pixels of ``px`` mm)."""
    lab, n = ndi.label(mask, structure=_SLICE_4)
    if n == 0:
        return np.zeros(mask.shape, bool)
    big = np.bincount(lab.ravel()) * px * px > max_mm2
    big[0] = False
    return big[lab]


def segment_lungs(volume: Volume) -> np.ndarray:
    """Right/left lung label map of a chest CT.

    Parameters
    ----------
    volume
        CT in HU, any orientation close to axial (direction from DICOM).

    Returns
    -------
    np.ndarray
        ``uint8`` ``(z, y, x)`` aligned with ``volume``: 1 = right lung,
        2 = left lung, 0 elsewhere. All zeros when no lung is visible (a
        phantom without air, a non-chest scan) -- never an exception.
    """
    arr = volume.array
    sz, sy, sx = (float(s) for s in volume.spacing)
    f = max(1, int(round(WORK_MM / max(min(sy, sx), 1e-3))))
    hu = _downsample(arr, f)
    px = min(sy, sx) * f
    # Keep the head at the end of the z axis for the airway seed search.
    lps_z_step = float(volume.voxel_to_lps([1, 0, 0])[2] - volume.voxel_to_lps([0, 0, 0])[2])
    flip = lps_z_step < 0
    if flip:
        hu = hu[::-1]

    dense = hu > AIR_HU
    body = largest_component(dense)
    body = _fill_holes_2d(body)
    air = (hu < AIR_HU) & body
    # Air touching the slice border is outside the patient even if the body
    # contour is open (arms, table) -- unless it is lung cut by the field of view.
    air[:, 0, :] = air[:, -1, :] = air[:, :, 0] = air[:, :, -1] = False
    clipped = _clipped_lung_air(hu, body, air, sz * px * px)
    air |= clipped

    airway = _airway(hu, air, px)
    if airway.any():
        airway = ndi.binary_dilation(airway, structure=np.ones((1, 3, 3), bool), iterations=1)
        air &= ~airway

    min_vox = 50_000.0 / (sz * px * px)  # 50 mL
    lab, n = ndi.label(air)
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    # air pockets under 15 mL are cavities (a cavitary nodule's centre) or a bleb: the closing below
    # may take them into the lung; larger air is the other lung, the airway or bowel gas, never added
    pocket = (sizes < 15_000.0 / (sz * px * px))[lab] & air
    order = np.argsort(sizes)[::-1]
    keep = [int(i) for i in order[:2] if sizes[i] >= min_vox]
    if len(keep) == 2 and sizes[keep[1]] < 0.15 * sizes[keep[0]]:
        keep = keep[:1]  # the runner-up is bowel gas or a bulla, not a lung
    parts: list[np.ndarray] = []
    if len(keep) == 1:
        parts = list(_split_lr(lab == keep[0]))
    elif len(keep) == 2:
        parts = [lab == keep[0], lab == keep[1]]

    # Side from LPS x of each part's centroid: patient right = smaller x.
    xs_lps = []
    for part in parts:
        cz, cy, cx = ndi.center_of_mass(part) if part.any() else (0.0, 0.0, 0.0)
        if flip:
            cz = hu.shape[0] - 1 - cz
        xs_lps.append(float(volume.voxel_to_lps([cz, cy * f, cx * f])[0]))
    if len(parts) == 2:
        sides = [1, 2] if xs_lps[0] < xs_lps[1] else [2, 1]
    elif len(parts) == 1:
        bz, by, bx = ndi.center_of_mass(body)
        if flip:
            bz = hu.shape[0] - 1 - bz
        sides = [1 if xs_lps[0] < float(volume.voxel_to_lps([bz, by * f, bx * f])[0]) else 2]
    else:
        sides = []

    out = np.zeros(hu.shape, np.uint8)
    r = max(1, int(round(CLOSING_MM / px)))
    pad = r + 1
    between = _between_touching_lungs(parts, px)
    for part, side in zip(parts, sides):
        if not part.any():
            continue
        zz, yy, xx = np.nonzero(part)
        y0, y1 = max(0, yy.min() - pad), min(hu.shape[1], yy.max() + pad + 1)
        x0, x1 = max(0, xx.min() - pad), min(hu.shape[2], xx.max() + pad + 1)
        sub = part[:, y0:y1, x0:x1]
        filled = np.zeros_like(sub)
        for k in np.unique(zz):
            s = np.pad(sub[k], pad)
            # closing by distance transforms: cost independent of the radius
            dil = ndi.distance_transform_edt(~s) <= r
            c = (ndi.distance_transform_edt(dil) > r)[pad:-pad, pad:-pad]
            filled[k] = ndi.binary_fill_holes(c | sub[k])
        # Only add tissue, never other air (the other lung, the airway).
        grow = filled & ~(air & ~pocket)[:, y0:y1, x0:x1] & body[:, y0:y1, x0:x1] & ~between[:, y0:y1, x0:x1]
        if airway.any():
            grow &= ~airway[:, y0:y1, x0:x1]
        # a piece added on one slice larger than a 6 cm disk is mediastinum, not a nodule or mass in
        # a concavity of the lung (synthetic patient 9002, lungs touching and split at a column: mask
        # outside the lungs 355 -> 269 mL with this cap alone; its 61 mm false nodule in the
        # mediastinum went only with `between` above, whose pieces are smaller than this cap)
        grow &= ~_pieces_over(grow & ~sub, px, MAX_ADD_MM2)
        full = sub | grow
        view = out[:, y0:y1, x0:x1]
        view[full & (view == 0)] = np.uint8(side)
    if clipped.any():
        _add_islands(out, hu > AIR_HU, body, sz * px * px)
    if len(parts) == 2:
        _fix_sides(out, sides_x_mid=_mid_column(parts))
    if flip:
        out = out[::-1]
    # Back to full resolution (nearest; lungs are smooth at this scale).
    if f > 1:
        out = np.repeat(np.repeat(out, f, axis=1), f, axis=2)
        full = np.zeros(arr.shape, np.uint8)
        full[:, : out.shape[1], : out.shape[2]] = out[:, : arr.shape[1], : arr.shape[2]]
        out = full
    return np.ascontiguousarray(out)


def aerated_lungs(hu: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The lung map to report: of :func:`segment_lungs`' map, the aerated lung on the CT's own pixels and
    what it encloses on its slice (vessels, nodules, a cavity).

    Why: that map is made on a :data:`WORK_MM` grid and closed with a 30 mm disk so that no nodule
    bulging into the lung from the pleura or mediastinum is cut out of the search. It thereby also takes
    in the hilum and strips of mediastinum and chest wall: against the phantoms' own lungs (validation
    patients 5000-5005) a median 274 mL of it lay outside the lungs, drawn as lung on the overlay and
    counted in the volumes and the emphysema denominator. Here, per lung and slice, air (below
    :data:`AIR_HU`) inside the map is kept with the holes it encloses; tissue open to the outside of the
    lung is not (benchmarks/RESULTS.md). The caller adds the nodules found back to their lung: a
    juxtapleural nodule or a mass against the mediastinum is not enclosed by air but is in its lung.
    One labelling per lung, with in-plane connectivity only, finds every slice's holes at once.
    """
    out = np.zeros(labels.shape, np.uint8)
    for side in (1, 2):
        box = ndi.find_objects((labels == side).view(np.uint8), max_label=1)[0]
        if box is None:
            continue
        region = labels[box] == side
        air = region & (hu[box] < AIR_HU)
        # what the air does not cover, per slice; pieces that touch the box's edge are outside the lung
        rest, n = ndi.label(~air, structure=_SLICE_4)
        outside = np.zeros(n + 1, bool)
        for edge in (rest[:, 0, :], rest[:, -1, :], rest[:, :, 0], rest[:, :, -1]):
            outside[np.unique(edge)] = True
        keep = region & (air | ~outside[rest])
        out[box][keep] = np.uint8(side)
    return out


def lung_volumes_ml(labels: np.ndarray, spacing: tuple[float, float, float]) -> tuple[float, float]:
    """(right, left) lung volumes in mL."""
    v = float(np.prod(spacing)) / 1000.0
    return float((labels == 1).sum() * v), float((labels == 2).sum() * v)


def emphysema_laa950(hu: np.ndarray, labels: np.ndarray) -> float:
    """%LAA-950: percentage of lung voxels below -950 HU (0 with no lung)."""
    lung = labels > 0
    n = int(lung.sum())
    return float(100.0 * np.count_nonzero(hu[lung] < -950) / n) if n else 0.0
