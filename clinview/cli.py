"""``clinview`` console script: the viewer, the demo, ``info`` and ``analyze``.

This module is the only place besides :mod:`viewer.app` that turns errors into
something a user sees: one line on stderr and a non-zero exit code, never a
traceback. Headless subcommands never import Qt, so they run on a server
without a display; GUI subcommands import :mod:`viewer` lazily.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Sequence

from inference.errors import ClinviewError

__all__ = ["main", "build_parser"]

EXIT_OK = 0
EXIT_UNUSABLE = 2
EXIT_INTERNAL = 3


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="clinview",
        description="clinview: chest CT viewer with nodule AI, risk, genomics and labs. "
        "Decision support only: verify against current guidelines.",
    )
    sub = p.add_subparsers(dest="command")

    v = sub.add_parser("view", help="open the viewer (default when a PATH or nothing is given)")
    v.add_argument("path", nargs="?", help="DICOM folder, DICOMDIR or .zip to open")
    v.add_argument("--screenshot", metavar="PNG", help="render the window offscreen to PNG and exit")

    d = sub.add_parser("demo", help="open the bundled synthetic patient, analysed")
    d.add_argument("--screenshot", metavar="PNG", help="render the window offscreen to PNG and exit")
    d.add_argument("--layout", choices=["single", "mpr", "2x2"], default=None, help="layout for the screenshot")
    d.add_argument("--headless", action="store_true", help="no window: analyse the demo patient and print the findings path")

    i = sub.add_parser("info", help="what is in a folder or clinical file")
    i.add_argument("path")
    i.add_argument("--json", action="store_true", help="machine-readable output")

    a = sub.add_parser("analyze", help="headless pipeline: findings.json + label maps")
    a.add_argument("study")
    a.add_argument("--out", required=True, metavar="DIR")
    a.add_argument("--series", metavar="UID")
    a.add_argument("--genomics", action="append", default=[], metavar="FILE")
    a.add_argument("--labs", action="append", default=[], metavar="FILE")
    a.add_argument("--clinical", metavar="FILE")
    a.add_argument("--prior", metavar="STUDY")
    a.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    a.add_argument("--review", metavar="FILE",
                   help="a reader's saved review of this series (the viewer's review.json): rejected nodules and "
                        "spiculation calls are applied before the scores")
    a.add_argument(
        "--confirm-identity",
        action="store_true",
        help="combine inputs whose patient identity differs from the CT's (after checking they are the same person)",
    )
    return p


def _normalise_argv(argv: list[str]) -> list[str]:
    """``clinview`` and ``clinview PATH`` mean ``clinview view [PATH]``."""
    commands = {"view", "demo", "info", "analyze", "-h", "--help"}
    if not argv or argv[0] not in commands:
        return ["view", *argv]
    return argv


def _cmd_info(args: argparse.Namespace) -> int:
    from inference import api
    from inference.io.report import format_scan, scan_to_json

    path = Path(args.path)
    if not path.exists():
        raise ClinviewError("no such file or folder", where=str(path))
    if path.is_file() and path.suffix.lower() not in {".zip", ".dcm", ""} and path.name.upper() != "DICOMDIR":
        lines, usable = api.describe_file(path)
        if args.json:
            print(json.dumps({"path": str(path), "lines": lines, "usable": usable}, indent=2))
        else:
            print("\n".join(lines))
        return EXIT_OK if usable else EXIT_UNUSABLE
    result = api.scan(path)
    if args.json:
        print(json.dumps(scan_to_json(result), indent=2))
    else:
        print(format_scan(result))
    return EXIT_OK if result.series else EXIT_UNUSABLE


def _cmd_analyze(args: argparse.Namespace) -> int:
    from inference import api

    def progress(p: object) -> None:
        frac = getattr(p, "fraction", 0.0)
        msg = getattr(p, "message", "")
        print(f"[{frac * 100:5.1f} %] {msg}", file=sys.stderr)

    findings = api.analyze(
        args.study,
        args.out,
        series_uid=args.series,
        genomics=args.genomics,
        labs=args.labs,
        clinical=args.clinical,
        prior=args.prior,
        device=args.device,
        confirm_identity=args.confirm_identity,
        review=args.review,
        progress=progress,
    )
    n = len(findings.get("nodules", []))
    print(f"{Path(args.out) / 'findings.json'}: {n} nodule(s); decision support only, verify against current guidelines")
    for w in findings.get("warnings", []):
        print(f"warning: {w}", file=sys.stderr)
    return EXIT_OK


def _cmd_gui(args: argparse.Namespace) -> int:
    from viewer.app import run_viewer

    if args.command == "demo":
        if getattr(args, "headless", False) or (not _has_display() and not args.screenshot):
            return _demo_headless()
        return run_viewer(demo=True, screenshot=args.screenshot, layout=args.layout)
    if not _has_display() and not args.screenshot:
        print(
            "clinview: no display found; use `clinview analyze STUDY --out DIR` for headless work, "
            "or --screenshot PNG to render offscreen",
            file=sys.stderr,
        )
        return EXIT_UNUSABLE
    return run_viewer(path=args.path, screenshot=args.screenshot)


def _demo_headless() -> int:
    from inference import api
    from inference.synth.demo import ensure_demo_patient

    demo = ensure_demo_patient()
    out = demo.root / "analysis"
    print(f"no display: analysing the demo patient headless into {out}", file=sys.stderr)
    findings = api.analyze(
        demo.followup_dir,
        out,
        genomics=[demo.vcf],
        labs=[demo.labs_fhir],
        clinical=demo.clinical_fhir,
        prior=demo.baseline_dir,
    )
    print(json.dumps({k: findings.get(k) for k in ("patient", "exam", "risk", "suggestions")}, indent=2, default=str))
    print(f"{out / 'findings.json'}: {len(findings.get('nodules', []))} nodule(s)")
    return EXIT_OK


def _has_display() -> bool:
    if os.environ.get("QT_QPA_PLATFORM", "") == "offscreen":
        return True
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point. Returns the exit code; never lets a traceback reach the user
    unless ``CLINVIEW_DEBUG=1`` is set."""
    argv = _normalise_argv(list(sys.argv[1:] if argv is None else argv))
    args = build_parser().parse_args(argv)
    try:
        if args.command == "info":
            return _cmd_info(args)
        if args.command == "analyze":
            from inference.process import prepare_analysis_process

            prepare_analysis_process()  # a one-analysis process, like the viewer's worker
            return _cmd_analyze(args)
        return _cmd_gui(args)
    except ClinviewError as e:
        print(f"clinview: {e.one_line()}", file=sys.stderr)
        return EXIT_UNUSABLE
    except KeyboardInterrupt:
        print("clinview: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - the one place that turns any error into one line
        if os.environ.get("CLINVIEW_DEBUG"):
            raise
        print(f"clinview: internal error: {type(e).__name__}: {e} (set CLINVIEW_DEBUG=1 for details)", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
