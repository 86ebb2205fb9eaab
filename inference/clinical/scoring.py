"""Fill the guideline scores of findings.json: Brock per nodule, Lung-RADS per
nodule and exam, Fleischner for the exam.

Missing inputs -- the choices an oncologist would expect, and why:

* **Age unknown** (neither ``facts.age_years`` nor ``findings["patient"]["age_years"]``):
  Brock is **not computed** (``brock_probability: null`` with the reason). Age moves
  the logit by 0.0287/year, so a 45- vs 80-year-old differ by ~3x in odds; a
  number built on an invented age would be taken at face value.
* **Sex unknown or "O"**: the model has only male/female. We compute both and
  report the **higher (female)** value, naming the male value in the
  assumptions, so the uncertainty is visible and the conservative number is shown.
* **Family history unknown**: assumed absent (the calculator default), said so.
* **Emphysema unknown**: taken from the CT, ``lungs.emphysema_laa950_percent``
  >= 5 % means present. The 5 % LAA-950 cut-off is the one commonly used to
  define CT emphysema (e.g. COPDGene); the fact sheet marks the -950 HU
  threshold UNVERIFIED and we did not find a primary source tying PanCan's
  *visual* emphysema score to it, so this is reported as an assumption.
  Without either: assumed absent, said so.
* **Upper lobe unknown**: assumed not upper lobe, said so (that lowers the
  probability: the warning tells the reader).
* **Size**: the nodule's long axis (maximum diameter) is fed to Brock as the
  public calculators do; the fact sheet marks the PanCan measurement as
  UNVERIFIED (mean vs maximum diameter) and so does the ``source`` text.
* **Nodule count**: every non-rejected nodule on the scan.
* Part-solid without a solid-component size: Lung-RADS assumes the solid part
  equals the whole nodule (the more suspicious reading) and says so.

Rejected nodules (``review == "rejected"``) are skipped everywhere and get no
scores. Every warning is one line prefixed with the score it concerns.
"""

from __future__ import annotations

from typing import Any

from inference.clinical import brock as _brock
from inference.clinical import fleischner as _fl
from inference.clinical import lungrads as _lr
from inference.types import ClinicalFacts

__all__ = ["EMPHYSEMA_LAA950_THRESHOLD_PERCENT", "GROWTH_WINDOW_DAYS", "apply_guidelines", "active_nodules", "index_nodule",
           "rescore_reviewed"]

#: %LAA-950 at or above which CT emphysema counts as present (assumption, see module docstring).
EMPHYSEMA_LAA950_THRESHOLD_PERCENT = 5.0
#: Lung-RADS v2022 growth: > 1.5 mm mean diameter within 12 months (+ one month scheduling slack).
GROWTH_WINDOW_DAYS = 395
GROWTH_DIAMETER_MM = 1.5


def active_nodules(findings: dict[str, Any]) -> list[dict[str, Any]]:
    """Nodules not rejected by the reader (pending ones count: they are on the scan)."""
    return [n for n in findings.get("nodules", []) or [] if n.get("review") != "rejected"]


def _manageable(nodules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Nodules a management rule is about: not rejected, not calcified (benign), with a size."""
    return [
        n for n in nodules
        if n.get("review") != "rejected" and _kind(n) in ("solid", "part-solid", "ground-glass") and _mean_diameter(n)
    ]


def index_nodule(nodules: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The most suspicious nodule, the one Fleischner's recommendation and the deep risk model are about.

    Highest Lung-RADS category when one is set (it holds growth and the type-specific size thresholds),
    then the highest Brock probability when known, then the larger solid component, then the larger mean
    diameter; among nodules not rejected and not calcified. Why one function: the exam's follow-up and the
    patient-level model must name the same nodule, and Brock alone does not know growth -- before
    2026-12-04 the deep model took the largest long axis and Fleischner the highest Brock, and after the
    demo's review both were about its ground-glass nodule (Lung-RADS 2, Brock 22.2 %) rather than the
    growing solid one (Lung-RADS 4B, Brock 20.8 %).
    """
    cand = _manageable(nodules)
    if not cand:
        return None

    def key(n: dict[str, Any]) -> tuple[int, float, float, float]:
        cat = n.get("lung_rads")
        return (
            _lr.CATEGORY_ORDER.index(cat) if cat in _lr.CATEGORY_ORDER else -1,
            float(n.get("brock_probability") or 0.0),
            float(n.get("solid_component_mm") or (_mean_diameter(n) if _kind(n) == "solid" else 0.0)),
            float(_mean_diameter(n) or 0.0),
        )

    return max(cand, key=key)


def _kind(n: dict[str, Any]) -> str:
    if not n.get("type"):
        return "unknown"  # never default to solid silently: the caller says it was not categorised
    t = str(n["type"]).lower()
    if t == "calcified":
        return "calcified"
    try:
        return _brock.normalise_nodule_type(t)
    except ValueError:
        return "unknown"


def _mean_diameter(n: dict[str, Any]) -> float | None:
    if n.get("mean_diameter_mm") is not None:
        return float(n["mean_diameter_mm"])
    la, sa = n.get("long_axis_mm"), n.get("short_axis_mm")
    if la is not None and sa is not None:
        return (float(la) + float(sa)) / 2.0
    return None


def _emphysema(findings: dict[str, Any], facts: ClinicalFacts | None) -> tuple[bool, str | None]:
    if facts is not None and facts.emphysema is not None:
        return bool(facts.emphysema), None
    laa = (findings.get("lungs") or {}).get("emphysema_laa950_percent")
    if laa is not None:
        present = float(laa) >= EMPHYSEMA_LAA950_THRESHOLD_PERCENT
        return present, (
            f"emphysema {'present' if present else 'absent'} from CT: LAA-950 {float(laa):.1f} % "
            f"({'>=' if present else '<'} {EMPHYSEMA_LAA950_THRESHOLD_PERCENT:g} % threshold, an assumption)"
        )
    return False, "emphysema unknown (no clinical record, no CT %LAA-950), assumed absent"


def _status(n: dict[str, Any], prior_available: bool, warnings: list[str]) -> tuple[str, bool]:
    """Lung-RADS status from the nodule's ``growth`` block; second value: slow grower."""
    if not prior_available:
        return "baseline", False
    g = n.get("growth")
    if not g:
        warnings.append(f"Lung-RADS: nodule {n.get('id')}: prior study given but no growth data, coded as baseline")
        return "baseline", False
    st = g.get("status")
    if st == "new":
        return "new", False
    if st == "grown":
        days = g.get("days")
        if days is not None and float(days) > GROWTH_WINDOW_DAYS:
            warnings.append(
                f"Lung-RADS: nodule {n.get('id')}: grew over {float(days):.0f} days (> 12 months): "
                "coded as a slow grower (4B), v2022"
            )
            return "growing", True
        return "growing", False
    return "stable", False


def _brock_for(
    n: dict[str, Any],
    *,
    age: float | None,
    sex: str | None,
    family: bool | None,
    emph: bool,
    emph_note: str | None,
    count: int,
) -> tuple[dict[str, Any], list[str]]:
    nid = n.get("id")
    kind = _kind(n)
    assumptions: list[str] = []
    out: dict[str, Any] = {"probability": None, "source": _brock.BROCK_SOURCE, "assumptions": assumptions}
    if kind == "calcified":
        out["reason"] = "not computed: calcified nodule (not a PanCan model input; benign calcification)"
        return out, []
    if kind == "unknown":
        out["reason"] = f"not computed: nodule type {n.get('type')!r} unknown"
        return out, [f"Brock: nodule {nid}: type {n.get('type')!r} unknown, not computed"]
    if age is None:
        out["reason"] = "not computed: patient age unknown (the model needs it; no age is invented)"
        return out, ["Brock: not computed, patient age unknown (no age is invented)"]
    size = n.get("long_axis_mm")
    if size is None:
        size = _mean_diameter(n)
        if size is not None:
            assumptions.append("long axis missing: mean diameter used as size")
    if size is None or float(size) <= 0:
        out["reason"] = "not computed: nodule size unknown"
        return out, [f"Brock: nodule {nid}: not computed, size unknown"]
    if family is None:
        assumptions.append("family history unknown, assumed absent")
    if emph_note:
        assumptions.append(emph_note)
    loc = n.get("location") or {}
    upper = loc.get("upper_lobe")
    if upper is None:
        assumptions.append("lobe unknown, assumed not upper lobe")
    base = dict(
        age_years=float(age),
        family_history=bool(family),
        emphysema=emph,
        size_mm=float(size),
        nodule_type=kind,
        upper_lobe=bool(upper),
        nodule_count=max(count, 1),
        spiculated=bool(n.get("spiculated")),
    )
    if sex in ("F", "M"):
        res = _brock.brock_result(female=sex == "F", **base)
    else:
        res = _brock.brock_result(female=True, **base)
        male = _brock.brock_probability(female=False, **base)
        assumptions.append(
            f"sex {'unknown' if sex is None else 'other'}: female coefficient used (higher risk); "
            f"as male the probability would be {male:.1%}"
        )
    out["probability"] = round(res.probability, 6)
    out["logit_terms"] = {k: round(v, 4) for k, v in res.terms.items()}
    out["size_mm"] = round(float(size), 1)
    out["source"] = _brock.BROCK_SOURCE + "; size = long axis (PanCan measurement UNVERIFIED: max vs mean diameter)"
    per_nodule = ("lobe", "long axis")
    warns = [f"Brock: nodule {nid}: {a}" if a.startswith(per_nodule) else f"Brock: {a}" for a in assumptions]
    return out, warns


def _lung_rads_for(n: dict[str, Any], prior_available: bool, warnings: list[str]) -> str | None:
    """One nodule's Lung-RADS category (None: type or size unknown); assumptions go to ``warnings``."""
    kind = _kind(n)
    d = _mean_diameter(n)
    if kind == "unknown" or d is None:
        warnings.append(f"Lung-RADS: nodule {n.get('id')}: type or size unknown, not categorised")
        return None
    status, slow = _status(n, prior_available, warnings)
    solid = n.get("solid_component_mm")
    if kind == "part-solid" and solid is None:
        solid = d
        warnings.append(
            f"Lung-RADS: nodule {n.get('id')}: solid-component size missing, assumed equal to the whole nodule"
        )
    if kind == "calcified":
        # The analysis types a nodule calcified only when it is mostly calcified or its calcium is central or
        # popcorn (inference.pipeline.measure.benign_calcification); a reader's "calcified" is the reader's call.
        # Either way category 1 stands on the pattern, which the reader confirms on the image.
        warnings.append(
            f"Lung-RADS: nodule {n.get('id')}: calcified, filed as a benign pattern (category 1): "
            "confirm complete, central, popcorn or laminated (concentric) calcification on the image"
        )
    return _lr.nodule_category(
        _lr.LungRadsNodule(
            mean_diameter_mm=d,
            kind=kind,  # type: ignore[arg-type]
            status=status,  # type: ignore[arg-type]
            solid_component_mm=None if solid is None else float(solid),
            juxtapleural=bool(n.get("juxtapleural")),
            spiculated=bool(n.get("spiculated")),
            slow_growing=slow,
            prior_mean_diameter_mm=(n.get("growth") or {}).get("prior_mean_diameter_mm") if prior_available else None,
        )
    )


def rescore_reviewed(nodules: list[dict[str, Any]], changed: set[int], *, prior_available: bool) -> list[str]:
    """Brock and Lung-RADS of reviewed nodules, written into them; returns what could not be re-scored.

    Why: a reader's review changes what the scores were computed from --
    rejecting a nodule lowers every other nodule's Brock count, correcting a
    mask changes the nodule's size, and the margin may be called spiculated
    (the analysis does not assess the margin: benchmarks/RESULTS.md). The numbers on
    screen must follow at once; a number computed before the review and shown
    as current would be wrong by the reader's own correction.

    ``nodules``: every nodule with its current ``review``, its size (edited or
    not) and ``spiculated`` as reviewed; the rejected ones are left as they
    are. ``changed``: ids whose size or spiculation the reader changed -- their
    Lung-RADS category is recomputed (with the growth status the worker gave
    them) -- every nodule's Brock follows the count. Brock is re-scored from
    the nodule's own ``brock.logit_terms`` (:func:`inference.clinical.brock.rescore_terms`):
    the patient's terms stay as the worker computed them, so no clinical file
    is needed here. A nodule whose Brock has no terms (not computed, or an
    older analysis) keeps its number, named in the returned lines.
    """
    active = [n for n in nodules if n.get("review") != "rejected"]
    count = max(len(active), 1)
    notes: list[str] = []
    for n in active:
        nid = int(n["id"])
        if nid in changed:
            n["lung_rads"] = _lung_rads_for(n, prior_available or bool(n.get("growth")), [])
        b = n.get("brock") if isinstance(n.get("brock"), dict) else None
        if b is None or b.get("probability") is None:
            continue
        terms = b.get("logit_terms")
        size = n.get("long_axis_mm") if n.get("long_axis_mm") is not None else _mean_diameter(n)
        try:
            res = _brock.rescore_terms(dict(terms or {}), size_mm=float(size),  # type: ignore[arg-type]
                                       nodule_count=count, spiculated=bool(n.get("spiculated")))
        except (TypeError, ValueError):
            n["brock_stale"] = True
            notes.append(f"Brock of nodule #{nid} was computed before your review (no terms to re-score it)")
            continue
        n["brock"] = {
            **b,
            "probability": round(res.probability, 6),
            "logit_terms": {k: round(v, 4) for k, v in res.terms.items()},
            "size_mm": round(float(size), 1),  # type: ignore[arg-type]
            "source": str(b.get("source") or _brock.BROCK_SOURCE)
            + "; re-scored after review (size, nodule count, spiculation)",
            "rescored_after_review": True,
        }
        n["brock_probability"] = n["brock"]["probability"]
    return notes


def apply_guidelines(
    findings: dict[str, Any], facts: ClinicalFacts | None, *, prior_available: bool
) -> list[str]:
    """Compute Brock, Lung-RADS and Fleischner and write them into ``findings``.

    Parameters
    ----------
    findings : the findings.json dict (schema ``clinview.findings/1``); edited in place.
    facts : clinical context; ``None`` when nothing is known (everything is then
        taken from the findings' patient block or reported as assumed).
    prior_available : a prior CT was compared, so nodules carry ``growth`` and
        Lung-RADS uses follow-up rules (new / growing / stable).

    Returns
    -------
    list[str]
        One line per missing or assumed input, each naming the score.
    """
    warnings: list[str] = []
    patient = findings.get("patient") or {}
    f = facts or ClinicalFacts()
    age = f.age_years if f.age_years is not None else patient.get("age_years")
    sex = f.sex if f.sex is not None else patient.get("sex")
    if facts is None:
        warnings.append("Scores: no clinical data given; age and sex from the DICOM header, the rest assumed as stated")
    emph, emph_note = _emphysema(findings, facts)
    nodules = active_nodules(findings)
    count = len(nodules)

    # --- per nodule: Brock and Lung-RADS -----------------------------------
    brock_warned: set[str] = set()
    cats: list[str] = []
    uncategorised: list[Any] = []
    for n in nodules:
        b, bw = _brock_for(
            n, age=age, sex=sex, family=f.family_history_lung_cancer, emph=emph, emph_note=emph_note, count=count
        )
        n["brock"] = b
        n["brock_probability"] = b["probability"]
        for w in bw:  # patient-level assumptions are said once, not once per nodule
            if w not in brock_warned:
                brock_warned.add(w)
                warnings.append(w)

        cat = _lung_rads_for(n, prior_available, warnings)
        n["lung_rads"] = cat
        if cat is None:
            uncategorised.append(n.get("id"))
        else:
            cats.append(cat)

    exam = findings.get("exam") or {}  # build_findings leaves None until the scores exist
    findings["exam"] = exam
    ecat = _lr.exam_category(cats)
    exam["lung_rads"] = {
        "category": ecat,
        "management": _lr.management_text(ecat),
        "version": _lr.LUNG_RADS_VERSION,
        "source": _lr.LUNG_RADS_SOURCE
        + "; automated: categories 0, S, airway nodules and cysts need a reader; 4X is not assigned automatically",
    }
    if uncategorised:
        exam["lung_rads"]["uncategorised_nodules"] = uncategorised
        exam["lung_rads"]["note"] = (
            f"nodule(s) {', '.join(str(i) for i in uncategorised)} not categorised (type or size unknown): "
            "the exam category may be understated"
        )
        warnings.append(f"Lung-RADS: exam category ignores uncategorised nodule(s) {uncategorised}; may be understated")

    # --- Fleischner ----------------------------------------------------------
    applies, excl, unknowns = _fl.fleischner_applicability(
        age_years=None if age is None else float(age),
        screening=f.screening,
        known_cancer=f.known_cancer,
        immunocompromised=f.immunocompromised,
    )
    if not applies:
        exam["fleischner"] = _fl.FleischnerResult(
            applies=False, recommendation="", reason="does not apply: " + "; ".join(excl)
        ).as_dict()
    else:
        scored = _manageable(nodules)
        risk, risk_notes = _fl.fleischner_risk(
            smoking_status=f.smoking_status,
            pack_years=f.pack_years,
            family_history=f.family_history_lung_cancer,
            emphysema=emph,
        )
        dom: dict[str, Any] | None = None
        if not scored:
            rec = "No non-calcified nodule: no Fleischner follow-up indicated"
            reason = "no nodule to manage"
        else:
            dom = index_nodule(scored)
            assert dom is not None
            kind = _kind(dom)
            multiple = len(scored) > 1
            rec = _fl.fleischner_recommendation(
                kind=kind,
                mean_diameter_mm=float(_mean_diameter(dom)),  # type: ignore[arg-type]
                multiple=multiple,
                risk=risk,
                solid_component_mm=dom.get("solid_component_mm"),
            )
            reason = (
                f"{'multiple' if multiple else 'single'} {kind} nodule(s), dominant nodule {dom.get('id')} "
                f"{_fl.size_bin(float(_mean_diameter(dom)))} mm (mean diameter rounded); {risk_notes[0]}"  # type: ignore[arg-type]
            )
        if unknowns:
            reason += "; assumed: " + "; ".join(unknowns)
            warnings.append("Fleischner: " + "; ".join(unknowns))
        for note in risk_notes[1:]:
            warnings.append("Fleischner: " + note)
        exam["fleischner"] = _fl.FleischnerResult(applies=True, recommendation=rec, reason=reason).as_dict()
        # which nodule the recommendation is about, as data (the viewer shows it and whether it is reviewed)
        exam["fleischner"]["nodule_id"] = dom.get("id") if dom is not None else None
    return warnings
