"""Follow-up scans of a synthetic patient: known growth, one resolved, one new,
and a repositioned patient.

Why: nodule matching, growth (VDT) and the Lung-RADS "new"/"growing" rules
need a pair of scans whose truth is exact. The follow-up reuses the
baseline's anatomy (same vessels, same lungs), moves the patient by a small
rigid transform so that registration is exercised, grows each nodule by its
volume doubling time (V2 = V1 * 2^(dt / VDT), clinical-facts.md §5), removes
one (resolved inflammation) and adds one.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from inference.synth.nodules import NoduleSpec, make_spec
from inference.synth.phantom import Acquisition, Phantom, render_phantom

__all__ = ["FollowupInfo", "make_followup", "rotation_matrix"]


@dataclass(frozen=True)
class FollowupInfo:
    """What changed between a baseline and its follow-up (the truth to check against)."""

    interval_days: int
    matches: dict[int, int]  # baseline id -> follow-up id
    vdt_days: dict[int, float | None]  # baseline id -> VDT used (None = stable)
    resolved: tuple[int, ...]  # baseline ids absent at follow-up
    new: tuple[int, ...]  # follow-up ids absent at baseline
    baseline_to_followup_lps: np.ndarray = field(repr=False)  # 4x4: baseline LPS -> follow-up LPS
    rotation_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)
    shift_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (string keys)."""
        return {
            "interval_days": self.interval_days,
            "matches": {str(k): v for k, v in self.matches.items()},
            "vdt_days": {str(k): (None if v is None else round(float(v), 1)) for k, v in self.vdt_days.items()},
            "resolved": list(self.resolved),
            "new": list(self.new),
            "baseline_to_followup_lps": np.round(self.baseline_to_followup_lps, 6).tolist(),
            "rotation_deg": list(self.rotation_deg),
            "shift_mm": list(self.shift_mm),
        }


def rotation_matrix(rx: float, ry: float, rz: float) -> np.ndarray:
    """Rotation (degrees) about x, then y, then z: ``Rz @ Ry @ Rx``."""
    a, b, c = np.radians([rx, ry, rz])
    Rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    Ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    Rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return Rz @ Ry @ Rx


def default_vdt(spec: NoduleSpec, rng: np.random.Generator) -> float | None:
    """A plausible VDT by appearance: calcified and tiny smooth nodules stay
    stable, suspicious solid ones grow fast (< 400 d), subsolid ones slowly."""
    if spec.type == "calcified" or spec.kind == "perifissural":
        return None
    if spec.type == "ground-glass":
        return float(rng.uniform(600, 1000))
    if spec.type == "part-solid":
        return float(rng.uniform(400, 700))
    if spec.kind in ("spiculated", "mass") or spec.features.get("spiculated"):
        return float(rng.uniform(150, 330))
    if spec.radius_mm * 2 < 6:
        return None
    return float(rng.uniform(300, 900))


def make_followup(
    phantom: Phantom,
    seed: int,
    *,
    months: float = 12,
    vdt_days: dict[int, float | None] | None = None,
    resolve: int | None | bool = True,
    new_kind: str | None = "solid",
    new_diameter_mm: float | None = None,
    new_lobe: int | None = None,
    rotation_deg: tuple[float, float, float] | None = None,
    shift_mm: tuple[float, float, float] | None = None,
    acquisition: Acquisition | None = None,
) -> Phantom:
    """Scan the same patient again ``months`` later.

    Parameters
    ----------
    phantom
        The baseline (its anatomy and nodule designs are reused).
    seed
        Drives the noise, the repositioning and the default choices.
    months
        Interval; days = round(months * 30.44).
    vdt_days
        Volume doubling time per baseline nodule id (``None`` = stable);
        missing ids get :func:`default_vdt`.
    resolve
        Baseline id to remove; ``True`` picks a non-calcified, non-growing one
        (an inflammatory nodule); ``False``/``None`` removes none.
    new_kind, new_diameter_mm, new_lobe
        The new nodule (``new_kind=None``: none).
    rotation_deg, shift_mm
        The patient's repositioning; drawn (up to 3° and 10 mm) when omitted.
    acquisition
        Scanner settings; the baseline's when omitted.

    Returns
    -------
    Phantom
        With ``followup`` (:class:`FollowupInfo`) set.
    """
    an = phantom.anatomy
    if an is None:
        raise ValueError("the baseline phantom carries no anatomy (made by an old version?)")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 7919]))
    days = int(round(months * 30.44))
    vdts: dict[int, float | None] = {}
    specs: list[NoduleSpec] = []
    for sp in phantom.specs:
        v = vdt_days[sp.id] if vdt_days is not None and sp.id in vdt_days else default_vdt(sp, rng)
        vdts[sp.id] = v
    # which one resolves: an inflammatory-looking one, never the suspicious grower
    resolved: list[int] = []
    if resolve is True:
        cands = [sp.id for sp in phantom.specs if sp.type == "solid" and vdts[sp.id] is None and sp.kind not in ("perifissural",)]
        cands = cands or [sp.id for sp in phantom.specs if sp.type == "solid" and sp.kind not in ("spiculated", "mass")]
        if len(phantom.specs) > 1 and cands:
            resolved = [int(cands[int(rng.integers(len(cands)))])]
    elif isinstance(resolve, int) and not isinstance(resolve, bool):
        resolved = [int(resolve)]
    for sp in phantom.specs:
        if sp.id in resolved:
            continue
        g = copy.deepcopy(sp)
        v = vdts[sp.id]
        g.vdt_days = v
        if v is not None:
            scale = 2.0 ** (days / v / 3.0)
            g.radius_mm = sp.radius_mm * scale
            if g.type == "part-solid":
                # the solid component grows faster than the ground glass around it
                g.core_frac = min(0.85, sp.core_frac * scale**0.5)
        specs.append(g)
    new: list[int] = []
    if new_kind:
        nid = max([sp.id for sp in phantom.specs], default=0) + 1
        d = new_diameter_mm if new_diameter_mm is not None else float(rng.uniform(4.0, 7.0))
        sp = make_spec(rng, an, nid, new_kind, d, lobe=new_lobe, avoid=specs)
        if sp is not None:
            specs.append(sp)
            new.append(nid)
    rdeg = rotation_deg if rotation_deg is not None else tuple(float(v) for v in rng.uniform([-2, -1.5, -3], [2, 1.5, 3]))
    sh = shift_mm if shift_mm is not None else tuple(float(v) for v in rng.uniform([-8, -5, -10], [8, 5, 10]))
    R = rotation_matrix(*rdeg)
    t_bl = phantom.shift
    t_fu = t_bl + np.asarray(sh, float)
    # follow-up LPS = R (baseline LPS - t_bl) + t_fu
    T = np.eye(4)
    T[:3, :3] = R @ phantom.rotation.T
    T[:3, 3] = t_fu - T[:3, :3] @ t_bl
    fu = render_phantom(
        an,
        specs,
        acquisition or phantom.acquisition,
        R,
        t_fu,
        np.random.default_rng(np.random.SeedSequence([int(seed), 104729])),
        seed=int(seed),
        options={**phantom.options, "followup_of": phantom.seed},
    )
    present = {r.id for r in fu.records}
    fu.followup = FollowupInfo(
        interval_days=days,
        matches={sp.id: sp.id for sp in specs if sp.id not in new and sp.id in present},
        vdt_days=vdts,
        resolved=tuple(resolved),
        new=tuple(n for n in new if n in present),
        baseline_to_followup_lps=T,
        rotation_deg=tuple(float(v) for v in rdeg),  # type: ignore[arg-type]
        shift_mm=tuple(float(v) for v in sh),  # type: ignore[arg-type]
    )
    return fu
