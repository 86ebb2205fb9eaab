"""A fresh analysis process runs numpy without transparent huge pages, unless the user chose."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

# numpy's own record of the advice it gives (numpy >= 2: numpy._core, 1.26: numpy.core)
PROBE = ("from inference.process import prepare_analysis_process as p; applied = p(); import numpy; "
         "m = getattr(numpy, '_core', None) or numpy.core; print(applied, m.multiarray._get_madvise_hugepage())")


@pytest.mark.parametrize(("env", "expected"), [({}, "True False"), ({"NUMPY_MADVISE_HUGEPAGE": "1"}, "False True")])
def test_an_analysis_process_turns_huge_pages_off_unless_the_user_set_them(env: dict[str, str], expected: str) -> None:
    base = {k: v for k, v in os.environ.items() if k != "NUMPY_MADVISE_HUGEPAGE"}
    out = subprocess.run([sys.executable, "-c", PROBE], env={**base, **env}, capture_output=True, text=True, check=True)
    assert out.stdout.split() == expected.split()


def test_too_late_once_numpy_is_imported() -> None:
    probe = "import numpy; from inference.process import prepare_analysis_process as p; print(p())"
    base = {k: v for k, v in os.environ.items() if k != "NUMPY_MADVISE_HUGEPAGE"}
    out = subprocess.run([sys.executable, "-c", probe], env=base, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_worker_and_the_cli_import_no_numpy_before_they_prepare() -> None:
    probe = "import sys, clinview.cli, inference.worker; print('numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
