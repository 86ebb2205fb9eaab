"""Measurements of one nodule from its binary mask, the HU volume and spacing.

Why these definitions:

* **Long/short axis, mean diameter** follow Lung-RADS v2022: measured on the
  axial slice where the nodule's area is largest, long axis = longest
  in-plane diameter, short axis = longest diameter *perpendicular* to it,
  mean diameter = their average, reported to 0.1 mm. Distances are taken
  between extreme pixel centres plus half a pixel (the mean inset of a
  digitised disc's edge pixels), so a disc of diameter d measures ≈ d.
* **Type** from HU composition (clinical-facts §9.1): voxels at or above
  ``SOLID_HU`` (−160 HU, the conventional solid-component threshold) are
  solid; a nodule whose core has a representative (median) HU ≥ 164 HU is
  calcified (Siegelman: no cancer above 147 HU), and so is one with a benign
  *pattern* of calcium (Lung-RADS v2022 category 1: central or popcorn;
  :func:`benign_calcification`) although most of it is soft tissue; mostly solid → solid; a
  measurable solid component inside mostly sub-solid tissue → part-solid
  (its size is reported as ``solid_component_mm``); otherwise ground-glass.
  A vessel crossing the nodule is not a solid component
  (:func:`_crossing_vessels`), and a core the slice blur brought below
  −160 HU still is when the centre is clearly denser than the rim
  (:func:`blurred_core_mm`).
  The core (mask eroded by one voxel in-plane) is used where it exists
  because partial volume makes every nodule's rim look like ground glass.
* **Spiculation** is not assessed (:data:`SPICULATION_SOURCE` says why);
  the reader calls it.
* **Juxtapleural**: a fifth or more of a 1.5 mm shell around the nodule lies
  outside the lung mask (pleura, chest wall or mediastinum).
* **Side and lobe**: side from the lung label under the nodule; lobe is an
  *estimate* (fissures are not segmented): "upper" when the centre lies above
  a plane tilted like the oblique fissure -- higher posteriorly, lower
  anteriorly -- through the lung's height and depth (:data:`UPPER_FRACTION`,
  :data:`UPPER_TILT`); below it, "lower" for the left lung and ``None`` for
  the right lung (middle and lower lobe are not distinguished).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage as ndi

from inference.pipeline.lungs import largest_component

__all__ = [
    "SOLID_HU",
    "CALCIFIED_HU",
    "benign_calcification",
    "SPICULATION_SOURCE",
    "UPPER_FRACTION",
    "axes_on_largest_slice",
    "axes_2d",
    "nodule_type",
    "ground_glass_share",
    "blurred_core_mm",
    "solid_component_outline_mm",
    "is_juxtapleural",
    "side_and_lobe",
    "lung_extents",
    "measure_nodule",
    "cut_attached_vessels",
    "equivalent_diameter_mm",
    "measurement_crop",
]

SOLID_HU = -160.0
GGN_HU = -300.0
CALCIFIED_HU = 164.0
#: calcium foci inside a nodule: voxels at or above this (HU), connected, of at least CALCIUM_FOCUS_MM3.
#: Why not 164: inside soft-tissue nodules on sharp kernels single specks reach ~200 HU (95th percentiles
#: up to 198 HU on validation 5000-5035); calcium foci of central and popcorn nodules reach 300 HU and
#: more even on 5 mm slices
CALCIUM_FOCUS_HU = 300.0
CALCIUM_FOCUS_MM3 = 2.0
#: ... a benign pattern needs at least this share of the nodule's volume in foci: central and popcorn
#: nodules of validation 5000-5035 had 1.45-30 %, the other kinds at most 0.39 % (noise and rib partial
#: volume; benchmarks/RESULTS.md)
CALCIUM_MIN_FRACTION = 0.01
#: ... and a single focus must lie within this share of the nodule's radius from its centre (central);
#: farther is *eccentric* calcification, which a cancer may hold (not benign: typed by its soft tissue).
#: Central ones on validation: 0.02-0.49
CALCIUM_CENTRAL_OFFSET = 0.6
#: the upper-lobe boundary per lung (1 right, 2 left): upper when the centre's depth from the apex, as a
#: share of the lung's height, is at most UPPER_FRACTION + UPPER_TILT * (its AP position - 0.5), the AP
#: position being 0 at the lung's front and 1 at its back. Why tilted: the oblique fissure runs from high
#: at the back to low at the front, and a flat cut (0.45 of the height, before 2026-12-03) got 12 of 98
#: held-out nodules' upper-lobe flag wrong -- a 1.9-fold Brock odds each. Fitted on the phantoms of
#: training patients 1000-1039 (158 nodules; scratch lobefit.py): right 0.922 -> 1.0, left 0.864 -> 0.938
UPPER_FRACTION: dict[int, float] = {1: 0.39, 2: 0.47}
UPPER_TILT = -0.37
#: juxtapleural: at least this share of a shell this thick (mm) around the nodule is outside the lung mask.
#: Why a share: the lung mask is made on a 2.5 mm grid, so a free nodule 2-3 mm from the pleura had a few
#: shell voxels outside it, and "any 3 voxels or 2 %" flagged 13 of 101 free nodules on validation
#: 5000-5035 (and 7 of 90 on held-out) -- Lung-RADS then files a solid one under 10 mm as category 2
#: (held-out 9006: a spiculated 9.5 mm nodule). Juxtapleural ones had at least 0.22 of the shell outside,
#: free ones at most 0.18 (benchmarks/RESULTS.md)
JUXTAPLEURAL_SHELL_MM = 1.5
JUXTAPLEURAL_MIN_SHARE = 0.2
SOLID_FRACTION = 0.8  # core fraction ≥ -160 HU above which a nodule is solid
#: part-solid needs a ground-glass *component*: at least this share of the nodule's voxels sub-solid (below
#: SOLID_HU, at or above GROUND_GLASS_FLOOR_HU) and farther than GROUND_GLASS_REACH_MM from the solid tissue, a slice counting as
#: one pixel step -- or, when the segmentation stopped at the solid core, ground glass just around it
#: (the lower quartile of a GROUND_GLASS_SHELL_MM shell outside the mask at or above GROUND_GLASS_AROUND_HU). Why: a small
#: solid nodule is mostly its own partial-volume rim (on 5 mm slices a 5-6 mm nodule has no core at all),
#: which the composition rule alone called part-solid -- 7 solid nodules of validation and tuning patients
#: (5.2-10.8 mm, two of them cavitary, their cavity counted), and 4 held-out ones of 6.2-8.0 mm: a
#: different Lung-RADS table, Brock term and Fleischner row. Those rims left at most 0.16 of the nodule that
#: far out and their shells' lower quartiles were -796 HU or below; part-solid nodules found whole had
#: 0.34-0.84, and the ones cut down to their core (7.7-13.1 mm) had -767 to -611 HU around them
#: (benchmarks/RESULTS.md).
GROUND_GLASS_REACH_MM = 1.5
GROUND_GLASS_MIN_SHARE = 0.25
GROUND_GLASS_AROUND_HU = -780.0
GROUND_GLASS_SHELL_MM = (0.8, 2.5)
#: below this a voxel inside a nodule is air (a cavity, a bronchus), not ground glass
GROUND_GLASS_FLOOR_HU = -750.0
#: a solid component of a sub-solid nodule that continues outside it, is this tube-like (PCA elongation:
#: 1 round, 0 a line) and thinner than this share of the nodule's mean diameter (in-plane inscribed
#: radius) is a crossing vessel, not a solid component (:func:`_crossing_vessels`)
VESSEL_MAX_ELONGATION = 0.6
VESSEL_MAX_RADIUS_SHARE = 0.12
#: ... or is no thicker (in-plane inscribed radius) than the solid tissue it continues into outside the nodule,
#: in the lung and farther than this (mm) from the mask: a vessel passing through keeps its calibre, a core is
#: thicker than the vessels that reach it (0.5 and 1.5 mm gave the same types on tuning crops, 2.0 mm one type
#: fewer and one Lung-RADS category more; benchmarks/RESULTS.md)
VESSEL_CALIBRE_FROM_MM = 1.0
#: a sub-solid nodule's centre this much denser (median HU) than its rim holds a blurred solid core
#: (:func:`blurred_core_mm`; between ground glass's 72 HU at most and blurred cores' 138 HU at least
#: on tuning patients, but for one 6.6 mm nodule's 67 HU)
CORE_EXCESS_HU = 110.0
#: how far (mm) beyond its -160 HU outline a solid component's half-contrast outline may reach
#: (:func:`solid_component_outline_mm`)
SOLID_OUTLINE_REACH_MM = 2.0
#: vessels are cut from a solid component by an opening with this share of its largest inscribed radius
#: (:func:`_detach_vessels`; 0.6-0.9 alike on tuning patients' mean error; 0.6 got one Lung-RADS category fewer
#: right there and two fewer on 9600-9623)
SOLID_OPEN_SHARE = 0.8
#: ... and the cut is kept only when what is left measures at least this share of the component's short axis
#: (without it one irregular core of 23 on 9600-9623 was cut to 4.1 mm from 9.5; 0.65 would have kept every
#: cut that moved a size more than 0.8 mm towards the truth on the crops, 0.8 keeps fewer of them and leaves a
#: wider margin; benchmarks/RESULTS.md)
SOLID_CUT_MIN_SHORT = 0.8
#: a solid finding's attached vessel stubs: what an opening with this share of the finding's largest inscribed
#: radius removes, reaching at least VESSEL_CUT_REACH_MM beyond what survives, is cut off
#: (:func:`cut_attached_vessels`), unless what is left is less than 1 - VESSEL_CUT_MAX_SHARE of the finding
#: (a ring broken up, or a nodule in pieces, not a stub). Chosen on product-path crops of validation 5000-5035
#: and tuning patients 9700-9723: a share of 0.6 and a 2.5 mm reach did worse (benchmarks/RESULTS.md)
VESSEL_CUT_SHARE = 0.5
VESSEL_CUT_REACH_MM = 1.5
VESSEL_CUT_MAX_SHARE = 0.4
#: ... in findings under this equivalent-sphere diameter (mm): masses are left as segmented
VESSEL_CUT_MAX_MM = 30.0
#: the settings above, as findings.json names them (``model.candidates.vessel_cut``)
VESSEL_CUT = {"findings": "solid", "share_of_inscribed_radius": VESSEL_CUT_SHARE, "min_reach_mm": VESSEL_CUT_REACH_MM,
              "max_share_of_finding": VESSEL_CUT_MAX_SHARE, "below_equivalent_diameter_mm": VESSEL_CUT_MAX_MM}
#: the solid component's level for that outline: this percentile of its HU (chosen on tuning patients, 50-95 alike)
SOLID_OUTLINE_CORE_PERCENTILE = 50.0


def axes_2d(mask2d: np.ndarray, spacing_yx: tuple[float, float]) -> tuple[float, float]:
    """Long axis and perpendicular short axis (mm) of a 2-D mask.

    The long axis is the largest distance between two pixels (+ one pixel
    extent along that direction); the short axis is the extent of the mask
    measured perpendicular to it (+ one pixel extent).
    """
    sy, sx = float(spacing_yx[0]), float(spacing_yx[1])
    if not mask2d.any():
        return 0.0, 0.0
    edge = mask2d & ~ndi.binary_erosion(mask2d)
    pts = np.argwhere(edge).astype(float) * [sy, sx]
    if len(pts) == 1:
        return min(sy, sx), min(sy, sx)
    d = pts[:, None, :] - pts[None, :, :]
    dist = np.sqrt((d**2).sum(-1))
    i, j = np.unravel_index(int(np.argmax(dist)), dist.shape)
    u = pts[j] - pts[i]
    n = np.linalg.norm(u)
    if n == 0:
        return min(sy, sx), min(sy, sx)
    u /= n
    v = np.array([-u[1], u[0]])
    # one pixel's extent along a direction (the pixel is a sy×sx rectangle)
    ext_u = float(np.hypot(u[0] * sy, u[1] * sx))
    ext_v = float(np.hypot(v[0] * sy, v[1] * sx))
    allp = np.argwhere(mask2d).astype(float) * [sy, sx]
    proj = allp @ v
    # half a pixel: the extreme pixel centres of a digitised disc lie about
    # half a pixel inside its edge on average (checked on analytic spheres)
    long_ax = float(dist[i, j] + 0.5 * ext_u)
    short_ax = float(proj.max() - proj.min() + 0.5 * ext_v)
    return long_ax, min(short_ax, long_ax)


def axes_on_largest_slice(mask: np.ndarray, spacing: tuple[float, float, float]) -> tuple[float, float, int]:
    """(long, short, z index) on the axial slice of largest area."""
    areas = mask.reshape(mask.shape[0], -1).sum(axis=1)
    k = int(np.argmax(areas))
    la, sa = axes_2d(mask[k], (spacing[1], spacing[2]))
    return la, sa, k


def _core(mask: np.ndarray) -> np.ndarray:
    core = ndi.binary_erosion(mask, structure=np.array([[[0, 0, 0], [0, 1, 0], [0, 0, 0]],
                                                        [[0, 1, 0], [1, 1, 1], [0, 1, 0]],
                                                        [[0, 0, 0], [0, 1, 0], [0, 0, 0]]], bool))
    return core if core.sum() >= max(4, 0.15 * mask.sum()) else mask


def benign_calcification(mask: np.ndarray, hu: np.ndarray, spacing: tuple[float, float, float]) -> bool:
    """True when the nodule's calcium foci form a benign pattern: central (one focus near its centre) or
    popcorn (several foci), holding at least :data:`CALCIUM_MIN_FRACTION` of its volume.

    Why: Lung-RADS v2022 puts nodules with central, popcorn, laminated or
    complete calcification in category 1 (clinical-facts §3). Typed by the
    median HU alone, 17 of the 29 calcified nodules found on validation
    patients 5000-5035 -- every central and popcorn one whose calcium is a
    minority of its volume -- were called *solid*, with a Lung-RADS 4A/4B and
    a Brock probability a benign nodule must not get. An eccentric focus
    stays out: it is not a benign pattern.
    """
    vox = float(np.prod(spacing))
    lab, n = ndi.label(mask & (hu >= CALCIUM_FOCUS_HU))
    if n == 0:
        return False
    sizes = np.bincount(lab.ravel())[1:] * vox
    foci = np.flatnonzero(sizes >= CALCIUM_FOCUS_MM3) + 1
    if foci.size == 0 or sizes[foci - 1].sum() < CALCIUM_MIN_FRACTION * mask.sum() * vox:
        return False
    if foci.size >= 2:
        return True
    sp = np.asarray(spacing, float)
    offset = np.linalg.norm((np.array(ndi.center_of_mass(lab == foci[0])) - np.array(ndi.center_of_mass(mask))) * sp)
    return bool(offset <= CALCIUM_CENTRAL_OFFSET * _equivalent_radius_mm(int(mask.sum()), spacing))


def _mean_diameter_mm(mask: np.ndarray, spacing: tuple[float, float, float]) -> float:
    """Lung-RADS mean diameter (mm, to 0.1) of ``mask``: long and short axis on its largest axial slice, averaged."""
    la, sa, _ = axes_on_largest_slice(mask, spacing)
    return round((la + sa) / 2, 1)


def _equivalent_radius_mm(n_voxels: int, spacing: tuple[float, float, float]) -> float:
    """Radius of the sphere with the volume of ``n_voxels`` voxels."""
    return (3.0 * n_voxels * float(np.prod(spacing)) / (4.0 * np.pi)) ** (1 / 3)


def measurement_crop(box: tuple[slice, ...], spacing: tuple[float, float, float],
                     shape: tuple[int, ...]) -> tuple[slice, ...]:
    """``box`` grown by the margin a finding is measured with: 4 mm (at least 2 voxels) a side, within ``shape``.

    The shell that tells 'juxtapleural' and the vessel cut's view of the
    lung around a finding both need it; one definition, so that the cut
    (:func:`inference.pipeline.detect._cut_vessel_stubs`) and the measurement see the same crop.
    """
    pad = [max(2, int(np.ceil(4.0 / s))) for s in spacing]
    return tuple(slice(max(0, b.start - q), min(n, b.stop + q)) for b, q, n in zip(box, pad, shape))


def equivalent_diameter_mm(n_voxels: int, spacing: tuple[float, float, float]) -> float:
    """Diameter of the sphere with the volume of ``n_voxels`` voxels (a size that needs no slice of largest area)."""
    return 2.0 * _equivalent_radius_mm(n_voxels, spacing)


def nodule_type(mask: np.ndarray, hu: np.ndarray, spacing: tuple[float, float, float],
                outside_lung: np.ndarray | None = None) -> tuple[str, float]:
    """(type, solid_component_mm) from HU composition; see module docstring.

    ``outside_lung`` (same shape; True where the lung map is not) keeps the chest wall and the mediastinum
    out of what a solid component is compared with (:func:`_crossing_vessels`).
    """
    core = _core(mask)
    vals = hu[core].astype(float)
    if vals.size == 0:
        return "solid", 0.0
    la, sa, _ = axes_on_largest_slice(mask, spacing)
    whole_mm = round((la + sa) / 2, 1)  # a solid or calcified nodule's "solid component" is all of it
    if float(np.median(vals)) >= CALCIFIED_HU or benign_calcification(mask, hu, spacing):
        return "calcified", whole_mm
    solid = mask & (hu >= SOLID_HU)
    frac = float(np.count_nonzero(hu[core] >= SOLID_HU)) / vals.size
    if frac >= SOLID_FRACTION:
        return "solid", whole_mm
    # largest connected solid component inside the nodule, vessels that cross it left out
    sol_mm = 0.0
    sol_report: float | None = None
    if solid.any():
        lab, n = ndi.label(solid)
        sizes = np.bincount(lab.ravel())
        sizes[0] = 0
        vessels = _crossing_vessels(mask, hu, spacing, lab, n, (la + sa) / 2, outside_lung)
        sizes[vessels] = 0
        if sizes.any():
            big = lab == int(np.argmax(sizes))
            sol_mm = _mean_diameter_mm(big, spacing)
            # what is reported is the component's half-contrast outline; the -160 HU one decides the type
            sol_report = solid_component_outline_mm(big, mask, hu, spacing)
    if float(np.median(vals)) >= GGN_HU and frac >= 0.5:
        # mostly dense but with a sub-solid rim: treat as solid
        return "solid", whole_mm
    if not (sol_mm >= 2.0 and frac >= 0.05):
        sol_mm = sol_report = blurred_core_mm(mask, hu, spacing)
    if sol_mm >= 2.0:
        if ground_glass_share(mask, hu, spacing) < GROUND_GLASS_MIN_SHARE and not _ground_glass_around(mask, hu, spacing):
            # the sub-solid voxels are the solid tissue's own rim (or a cavity), and lung lies around it
            return "solid", whole_mm
        return "part-solid", sol_mm if sol_report is None else sol_report
    return "ground-glass", 0.0


def solid_component_outline_mm(component: np.ndarray, mask: np.ndarray, hu: np.ndarray,
                               spacing: tuple[float, float, float]) -> float:
    """Mean diameter (mm) of a part-solid nodule's solid ``component`` at half contrast against its ground glass.

    Why: the component is found at -160 HU (:data:`SOLID_HU`), but its edge is
    blurred into the ground glass around it, and -160 HU lies inside that edge
    when the core is soft tissue (~0-40 HU) and the ground glass -700 to
    -500 HU: measured there, the solid components of part-solid nodules found on
    tuning patients came out a median 0.0-0.4 mm small with a mean absolute
    error of 0.8-1.8 mm (against their true cores measured with this module's
    ruler; first seen as "0.8 mm small" against the phantom's corner-to-corner
    records), and Lung-RADS draws its part-solid lines at 6 and 8 mm of solid
    component. This outline: median +0.05 to +0.3 mm, mean absolute error
    0.6-1.2 mm on the same crops (benchmarks/RESULTS.md).
    A reader sees the edge about half way between the two densities; so the
    outline is taken at the mean of the component's median HU
    (:data:`SOLID_OUTLINE_CORE_PERCENTILE`) and the median of the nodule's
    ground glass, grown only within :data:`SOLID_OUTLINE_REACH_MM` of the
    component and inside the nodule, after a vessel touching the core is cut
    off (:func:`_detach_vessels`). The type is still decided on the -160 HU
    component; only the reported size changes.
    """
    gg = hu[mask & ~component & (hu < SOLID_HU) & (hu >= GROUND_GLASS_FLOOR_HU)]
    vals = hu[component]
    cut = _detach_vessels(component, spacing)
    # cutting a vessel off shortens the long axis; it does not make the core much narrower than it is. A cut
    # that leaves less than SOLID_CUT_MIN_SHORT of the component's short axis broke an irregular core apart
    # (9614's 9.5 mm core, thin at -160 HU: 8.9 -> 4.1 mm, Lung-RADS 4B -> 3)
    if _mean_diameter_mm(cut, spacing) >= SOLID_CUT_MIN_SHORT * axes_on_largest_slice(component, spacing)[1]:
        component = cut
    if gg.size < 8 or vals.size < 2:
        return _mean_diameter_mm(component, spacing)
    half = (float(np.percentile(vals, SOLID_OUTLINE_CORE_PERCENTILE)) + float(np.median(gg))) / 2.0
    near = ndi.distance_transform_edt(~component, sampling=spacing) <= SOLID_OUTLINE_REACH_MM
    grown = mask & near & ((hu >= half) | component) if half < SOLID_HU else component & (hu >= half)
    lab, _ = ndi.label(grown)
    ids = np.unique(lab[component & grown])
    ids = ids[ids > 0]
    return _mean_diameter_mm(np.isin(lab, ids) if ids.size else component, spacing)


def _opened_by_share(mask: np.ndarray, spacing: tuple[float, float, float], share: float) -> np.ndarray | None:
    """``mask`` opened with a ball of ``share`` of its largest inscribed radius (mm, the grid's spacing).

    None when that ball would be under a pixel or nothing survives: too small to tell a stub from the body.
    """
    sp = np.asarray(spacing, float)
    edt = ndi.distance_transform_edt(np.pad(mask, 1), sampling=sp)[1:-1, 1:-1, 1:-1]
    r = share * float(edt.max())
    if r <= float(sp[1:].max()):
        return None
    body = edt > r
    if not body.any():
        return None
    return mask & (ndi.distance_transform_edt(~body, sampling=sp) <= r)


def _detach_vessels(component: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    """``component`` opened with a ball of :data:`SOLID_OPEN_SHARE` of its largest inscribed radius, largest piece kept.

    Why: a vessel that touches a solid core is one -160 HU component with it, and
    its length was measured as the core's (on tuning patients 13.8 mm for a
    7.9 mm core, 20.9 for 14.8). A vessel is thinner than the core and does not
    survive the opening; the core's own edge, trimmed at its tips, is restored
    by the half-contrast growth that follows (within SOLID_OUTLINE_REACH_MM).
    Unchanged when the ball would be under a pixel or nothing survives.
    """
    opened = _opened_by_share(component, spacing, SOLID_OPEN_SHARE)
    if opened is None:
        return component
    big = largest_component(opened)
    return big if big.any() else component


def cut_attached_vessels(mask: np.ndarray, spacing: tuple[float, float, float],
                         outside_lung: np.ndarray | None = None) -> np.ndarray:
    """``mask`` of a solid finding without the vessel stubs that its segmentation followed out of the nodule.

    Why: a juxtavascular nodule's contour runs a few millimetres along the
    vessel it touches, and the stub lengthens the axial long axis the
    Lung-RADS size is taken from (juxtavascular findings a median 1.1 mm
    large on validation 5000-5035, 0.7 mm held-out; 0.3 mm with the cut --
    benchmarks/RESULTS.md; the stubs of 6-7 mm nodules on thick slices are as
    thick as the ball and stay). A stub is thinner than the nodule: an
    opening with a ball of :data:`VESSEL_CUT_SHARE` of the finding's largest
    inscribed radius removes it, while the nodule's own body survives. What
    the opening removes is cut only where it reaches
    :data:`VESSEL_CUT_REACH_MM` or more beyond the surviving body -- the rim
    the opening merely rounds stays -- and not where it touches
    ``outside_lung`` (same shape; True where the lung map is not): that is
    the nodule's contact with the pleura or the mediastinum, what makes it
    juxtapleural, not a vessel in the lung. Of what is left, the largest
    piece -- unless it holds less than ``1 - VESSEL_CUT_MAX_SHARE`` of the
    finding (a cavitary wall broken up by the opening, not a stub). Returns
    ``mask`` itself (as a bool array) when nothing is cut.
    """
    m = np.asarray(mask, bool)
    sp = np.asarray(spacing, float)
    opened = _opened_by_share(m, spacing, VESSEL_CUT_SHARE)
    if opened is None:
        return m
    lab, n = ndi.label(m & ~opened)
    if n == 0:
        return m
    ids = np.arange(1, n + 1)
    far = np.asarray(ndi.maximum(ndi.distance_transform_edt(~opened, sampling=sp), lab, index=ids)) >= VESSEL_CUT_REACH_MM
    if outside_lung is not None:
        touches = ndi.binary_dilation(np.asarray(outside_lung, bool))
        far &= ~np.asarray(ndi.maximum(touches, lab, index=ids), bool)
    cut = np.isin(lab, ids[far])
    if not cut.any():
        return m
    keep = largest_component(m & ~cut)
    return keep if keep.any() and keep.sum() >= (1.0 - VESSEL_CUT_MAX_SHARE) * m.sum() else m


def blurred_core_mm(mask: np.ndarray, hu: np.ndarray, spacing: tuple[float, float, float]) -> float:
    """Mean diameter (mm) of a solid core the slice blur has brought below ``SOLID_HU``; 0.0 when there is none.

    Why: a part-solid nodule's small core, averaged over a 2-5 mm slice with
    the ground glass around it, often has no voxel at or above -160 HU, and
    the nodule was typed ground glass (11 of 58 part-solid nodules found on
    tuning and check patients). What still tells it from ground glass is a
    centre denser than its rim: the median HU within half the nodule's
    equivalent radius of its centre exceeds that of the rest by at least
    :data:`CORE_EXCESS_HU` (ground glass, uniform or textured: at most 72 HU
    on those patients; the cores typed ground glass: 138-301 HU but for one
    6.6 mm nodule's 67 HU). The core is then sized at half contrast between
    its densest voxels (the centre's 95th percentile) and the rim -- the
    full width at half maximum of a blurred object -- as the component of
    those voxels at the centre. On fresh patients (9600-9623) the rule was
    neutral: one part-solid nodule fixed, one ground-glass nodule with a
    dense centre typed part-solid (benchmarks/RESULTS.md).
    """
    sp = np.asarray(spacing, float)
    n = int(np.count_nonzero(mask))
    if n < 8:
        return 0.0
    idx = np.argwhere(mask)
    c = idx.mean(axis=0)
    r = _equivalent_radius_mm(n, spacing)
    dist = np.sqrt((((idx - c) * sp) ** 2).sum(axis=1))
    vals = hu[tuple(idx.T)].astype(float)
    centre, rim = vals[dist <= 0.5 * r], vals[dist > 0.5 * r]
    if centre.size < 4 or rim.size < 4:
        return 0.0
    rim_hu = float(np.median(rim))
    if float(np.median(centre)) - rim_hu < CORE_EXCESS_HU:
        return 0.0
    half = (float(np.percentile(centre, 95)) + rim_hu) / 2.0
    dense = mask & (hu >= half)
    lab, _ = ndi.label(dense)
    ids = np.unique(lab[tuple(idx[dist <= 0.5 * r].T)])
    ids = ids[ids > 0]
    if ids.size == 0:
        return 0.0
    sizes = np.bincount(lab.ravel())
    core = lab == int(ids[np.argmax(sizes[ids])])
    la, sa, _ = axes_on_largest_slice(core, spacing)
    return round((la + sa) / 2, 1)


def _inplane_radius(comp: np.ndarray, sp: np.ndarray) -> float:
    """Largest in-plane inscribed radius (mm) of ``comp`` over its slices."""
    return max((float(ndi.distance_transform_edt(np.pad(s, 1), sampling=sp[1:]).max()) for s in comp if s.any()),
               default=0.0)


def _crossing_vessels(mask: np.ndarray, hu: np.ndarray, spacing: tuple[float, float, float], lab: np.ndarray,
                      n: int, diameter_mm: float, outside_lung: np.ndarray | None = None) -> list[int]:
    """Ids of the solid components in ``lab`` that are vessels running through a sub-solid nodule.

    Why: a vessel crossing a ground-glass nodule is soft tissue inside it, and
    the composition rule took it for a solid component -- 5 of 28 ground-glass
    nodules found on tuning patients (9200-9211, 9400-9423), four of them
    18-31 mm, were typed *part-solid*, which moves Lung-RADS from category 2 to
    the part-solid table and Brock to its part-solid term. A vessel is a
    component that continues outside the nodule (solid tissue touches it in a
    2-voxel ring around the mask) and either is tube-shaped (PCA elongation below
    :data:`VESSEL_MAX_ELONGATION`) and thin for the nodule (in-plane
    inscribed radius below :data:`VESSEL_MAX_RADIUS_SHARE` of the nodule's
    mean diameter), or is no thicker than its own continuation outside the
    nodule (:data:`VESSEL_CALIBRE_FROM_MM`). A part-solid nodule's core is
    central, rounder and thicker than the vessels that reach it. Why the
    second test: a vessel too thick or too curved for the first -- 5-6 mm
    across in an 18-23 mm nodule, or a bend -- was still the "solid
    component" of ground glass (tuning patients 5200-5223: 7.4 and 9.2 mm,
    Lung-RADS 4A and 4B instead of 2); on fresh patients 9800-9823 it turned
    two such 4B calls into ground glass and changed no part-solid nodule's
    category (benchmarks/RESULTS.md).
    """
    if n == 0:
        return []
    ring = ndi.binary_dilation(mask, iterations=2) & ~mask & (hu >= SOLID_HU)
    if not ring.any():
        return []
    d = diameter_mm
    sp = np.asarray(spacing, float)
    # solid tissue outside the nodule (in the lung: the chest wall is not a vessel), labelled together with the
    # components inside that it touches; then only what lies farther than VESSEL_CALIBRE_FROM_MM is kept. Two
    # components joined by tissue outside share one continuation (and are compared with all of it)
    outside = ~mask & (hu >= SOLID_HU)
    if outside_lung is not None:
        outside &= ~np.asarray(outside_lung, bool)
    cont_lab, _ = ndi.label(outside | (lab > 0))
    cont_lab[(lab == 0) & ~(outside & (ndi.distance_transform_edt(~mask, sampling=sp) > VESSEL_CALIBRE_FROM_MM))] = 0
    out = []
    for i, box in enumerate(ndi.find_objects(lab, max_label=n), start=1):
        if box is None:
            continue
        grown = tuple(slice(max(0, b.start - 3), b.stop + 3) for b in box)
        comp = lab[grown] == i
        if not (ndi.binary_dilation(comp, iterations=3) & ring[grown]).any():
            continue
        pts = np.argwhere(comp) * sp
        if len(pts) < 4:
            continue
        r = _inplane_radius(comp, sp)
        ev = np.sort(np.linalg.eigvalsh(np.cov(pts.T)))
        if ev[2] > 0 and np.sqrt(max(ev[1], 0.0) / ev[2]) < VESSEL_MAX_ELONGATION and r < VESSEL_MAX_RADIUS_SHARE * d:
            out.append(i)
            continue
        ids = np.unique(cont_lab[lab == i])
        cont = np.isin(cont_lab, ids[ids > 0]) & (lab == 0)
        if cont.any() and _inplane_radius(cont, sp) >= r:
            out.append(i)
    return out


def _ground_glass_around(mask: np.ndarray, hu: np.ndarray, spacing: tuple[float, float, float]) -> bool:
    """Whether ground glass lies just outside the mask (a part-solid nodule segmented down to its core).

    Undecided (no shell inside the array) counts as ground glass: the composition rule's call then stands.
    """
    out = ndi.distance_transform_edt(~mask, sampling=spacing)
    near, far = GROUND_GLASS_SHELL_MM
    shell = hu[(out > near) & (out <= far)]
    return shell.size == 0 or float(np.percentile(shell, 25)) >= GROUND_GLASS_AROUND_HU


def ground_glass_share(mask: np.ndarray, hu: np.ndarray, spacing: tuple[float, float, float]) -> float:
    """Share of the nodule's voxels that are ground glass beyond the solid tissue's partial-volume rim.

    Sub-solid (below :data:`SOLID_HU`, not air) and farther than :data:`GROUND_GLASS_REACH_MM` from every
    solid voxel. The distance counts a slice as one in-plane pixel: on thick slices the partial-volume
    rim above and below a solid nodule is a whole slice, which is not a ground-glass component.
    """
    n = int(np.count_nonzero(mask))
    if n == 0:
        return 0.0
    sub = mask & (hu < SOLID_HU) & (hu >= GROUND_GLASS_FLOOR_HU)
    solid = mask & (hu >= SOLID_HU)
    if not solid.any():
        return float(np.count_nonzero(sub)) / n
    one_step = (float(spacing[1]), float(spacing[1]), float(spacing[2]))  # z step = an in-plane pixel
    dist = ndi.distance_transform_edt(~solid, sampling=one_step)
    return float(np.count_nonzero(sub & (dist > GROUND_GLASS_REACH_MM))) / n


#: what ``spiculated`` of an analysed finding rests on, said with the finding (findings.json
#: ``spiculated_source``). The analysis does not assess the margin: a shape heuristic on the AI mask (spikes
#: an opening removes) flagged none of 34 spiculated synthetic nodules that were found -- their spicules
#: are thin, and the candidate stage's tube cut takes them out of the segmentation -- but 4 of 187 other
#: nodules and 9 of 57 false-positive findings (benchmarks/RESULTS.md): every flag it raised was wrong, and
#: each raised a Brock odds 2.2-fold. So ``spiculated`` is false until the reader calls it (the viewer's
#: Spiculated button).
SPICULATION_SOURCE = ("not assessed by the analysis (its shape heuristic flagged none of 34 spiculated synthetic "
                      "nodules, and every flag it raised was wrong): check the margin on the image")


def is_juxtapleural(mask: np.ndarray, lung_labels: np.ndarray | None, spacing: tuple[float, float, float]) -> bool:
    """True when at least :data:`JUXTAPLEURAL_MIN_SHARE` of a :data:`JUXTAPLEURAL_SHELL_MM` shell around the
    nodule lies outside the lung mask (pleura, chest wall or mediastinum)."""
    if lung_labels is None or not mask.any():
        return False
    d = ndi.distance_transform_edt(~mask, sampling=spacing)
    shell = (d > 0) & (d <= JUXTAPLEURAL_SHELL_MM)
    if not shell.any():
        return False
    return bool(np.count_nonzero(lung_labels[shell] == 0) >= JUXTAPLEURAL_MIN_SHARE * shell.sum())


def lung_extents(lung_labels: np.ndarray) -> dict[int, tuple[int, int, int, int]]:
    """First and last slice (array z) and row (array y) of each lung label present (1 right, 2 left)."""
    out = {}
    for side in (1, 2):
        m = lung_labels == side
        zs = np.nonzero(m.any(axis=(1, 2)))[0]
        if zs.size:
            ys = np.nonzero(m.any(axis=(0, 2)))[0]
            out[side] = (int(zs.min()), int(zs.max()), int(ys.min()), int(ys.max()))
    return out


def side_and_lobe(
    center_zyx: np.ndarray,
    mask: np.ndarray,
    lung_labels: np.ndarray | None,
    z_up_sign: float = 1.0,
    *,
    y_back_sign: float = 1.0,
    box: tuple[slice, ...] | None = None,
    extents: dict[int, tuple[int, int, int, int]] | None = None,
) -> dict[str, Any]:
    """Side (right/left), estimated lobe and the upper-lobe flag.

    ``z_up_sign`` is +1 when increasing array z goes towards the head (LPS +z
    is superior), -1 otherwise; ``y_back_sign`` +1 when increasing array y
    goes towards the back (LPS +y is posterior). ``mask`` covers
    ``lung_labels[box]`` when a ``box`` is given (else the whole grid);
    ``extents`` is :func:`lung_extents` of ``lung_labels``. With both, a finding costs
    only its box, not three passes over the whole grid (with the lung fill in
    run_imaging made box-wise too, what follows detection went 1.7-2.0 ->
    0.8 s for 5 findings on a 300-slice CT, RESULTS.md).
    """
    if extents is None:
        extents = lung_extents(lung_labels) if lung_labels is not None else {}
    if lung_labels is None or not extents:
        return {"side": None, "lobe": None, "upper_lobe": None, "lobe_estimated": True}
    vals = (lung_labels if box is None else lung_labels[box])[mask]
    vals = vals[vals > 0]
    if vals.size:
        side = int(np.bincount(vals).argmax())
    else:  # outside the mask: nearest lung voxel
        dist, (iz, iy, ix) = ndi.distance_transform_edt(lung_labels == 0, return_indices=True)
        c = np.round(center_zyx).astype(int)
        c = np.clip(c, 0, np.array(lung_labels.shape) - 1)
        side = int(lung_labels[iz[tuple(c)], iy[tuple(c)], ix[tuple(c)]])
    z0, z1, y0, y1 = (float(v) for v in extents[side])
    # shares of the lung's height from the apex and of its depth from the front
    rel = (z1 - center_zyx[0]) / max(z1 - z0, 1.0) if z_up_sign > 0 else (center_zyx[0] - z0) / max(z1 - z0, 1.0)
    back = (center_zyx[1] - y0) / max(y1 - y0, 1.0) if y_back_sign > 0 else (y1 - center_zyx[1]) / max(y1 - y0, 1.0)
    upper = bool(rel <= UPPER_FRACTION[side] + UPPER_TILT * (back - 0.5))
    name = "right" if side == 1 else "left"
    lobe = "upper" if upper else ("lower" if side == 2 else None)
    return {"side": name, "lobe": lobe, "upper_lobe": upper, "lobe_estimated": True}


def measure_nodule(
    mask: np.ndarray,
    hu: np.ndarray,
    spacing: tuple[float, float, float],
    *,
    lung_labels: np.ndarray | None = None,
    z_up_sign: float = 1.0,
) -> dict[str, Any]:
    """All per-nodule measurements of the findings contract except ids,
    coordinates in LPS and probability (added by the caller who knows the
    geometry and the network output).

    Parameters
    ----------
    mask
        Boolean ``(z, y, x)`` mask of one nodule (full array or a crop).
    hu
        HU values, same shape.
    spacing
        ``(z, y, x)`` mm.
    lung_labels
        Lung label map, same shape (for juxtapleural, side and lobe).
    """
    mask = mask.astype(bool)
    n = int(mask.sum())
    vol = n * float(np.prod(spacing))
    la, sa, _ = axes_on_largest_slice(mask, spacing)
    typ, sol = nodule_type(mask, hu, spacing, None if lung_labels is None else np.asarray(lung_labels) == 0)
    c = np.array(ndi.center_of_mass(mask)) if n else np.zeros(3)
    zz, yy, xx = np.nonzero(mask)
    return {
        "center_voxel_zyx": [float(v) for v in c],
        "bbox_voxel_zyx": [[int(zz.min()), int(yy.min()), int(xx.min())], [int(zz.max()), int(yy.max()), int(xx.max())]]
        if n
        else [[0, 0, 0], [0, 0, 0]],
        "volume_mm3": round(vol, 1),
        "long_axis_mm": round(la, 1),
        "short_axis_mm": round(sa, 1),
        "mean_diameter_mm": round((la + sa) / 2, 1),
        "type": typ,
        "solid_component_mm": sol if typ == "part-solid" else (round((la + sa) / 2, 1) if typ in ("solid", "calcified") else 0.0),
        "mean_hu": round(float(hu[mask].mean()), 1) if n else 0.0,
        "spiculated": False,  # not assessed: SPICULATION_SOURCE
        "juxtapleural": is_juxtapleural(mask, lung_labels, spacing),
        "location": side_and_lobe(c, mask, lung_labels, z_up_sign),
    }
