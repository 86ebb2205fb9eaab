"""Settings for a fresh analysis process, applied before numpy is first imported.

Why: the viewer runs every analysis in a new ``python -m inference.worker``
process, so each one touches its working memory for the first time (peak
resident 1.3 GB for the 64-slice real CT, ``/usr/bin/time``). numpy asks the kernel for transparent huge pages on its large
arrays (``madvise``); where the kernel must compact memory to find them --
measured on the 2-core virtual machine this project's CI runs on, THP
``madvise`` with ``defrag=madvise`` -- those first-touch faults cost seconds:
the candidate stage of the real CT took 7.3-9.1 s with huge pages and
5.8-7.1 s without, in fresh worker processes side by side, and the whole
analysis 13.7 against 12.4 s (median wall; ``benchmarks/bench_worker.py``,
benchmarks/RESULTS.md). A process that runs one analysis has no later,
warm phase for huge pages to pay back in. An explicit ``NUMPY_MADVISE_HUGEPAGE`` in the
environment is left as the user set it.
"""

from __future__ import annotations

import os
import sys

__all__ = ["prepare_analysis_process"]


def prepare_analysis_process() -> bool:
    """Turn numpy's huge-page advice off for this process unless the user chose; True when applied.

    Has no effect once numpy is imported (numpy reads the variable at import),
    so entry points call it first.
    """
    if "numpy" in sys.modules or "NUMPY_MADVISE_HUGEPAGE" in os.environ:
        return False
    os.environ["NUMPY_MADVISE_HUGEPAGE"] = "0"
    return True
