"""Typed errors that carry fields and say how to fix the problem.

Only :mod:`viewer.app` (the one error dialog) and :mod:`clinview.cli` (one line
on stderr) turn these into UI. Every error has a ``one_line()`` that names
*what* and *where*.
"""

from __future__ import annotations

__all__ = [
    "ClinviewError",
    "InputError",
    "DicomError",
    "NoUsableSeriesError",
    "SeriesLoadError",
    "ModelIntegrityError",
    "IdentityConflictError",
    "CancelledError",
    "NotBuiltError",
]


class ClinviewError(Exception):
    """Base class. ``what`` is the problem, ``where`` the file or object, ``fix``
    a hint the user can act on."""

    def __init__(self, what: str, *, where: str | None = None, fix: str | None = None) -> None:
        self.what = what
        self.where = where
        self.fix = fix
        super().__init__(self.one_line())

    def one_line(self) -> str:
        s = f"{self.where}: {self.what}" if self.where else self.what
        if self.fix:
            s += f" ({self.fix})"
        return s.replace("\n", " ")


class InputError(ClinviewError):
    """An input file is unusable as a whole (a malformed line is an Issue instead)."""


class DicomError(InputError):
    """A DICOM file or series cannot be used."""


class NoUsableSeriesError(DicomError):
    """A folder or archive holds no loadable image series."""


class SeriesLoadError(DicomError):
    """A series was found but cannot be turned into a consistent volume."""


class ModelIntegrityError(ClinviewError):
    """Model weights are missing, unknown or fail their sha256 check."""


class IdentityConflictError(ClinviewError):
    """Inputs belong to different patients and the user has not confirmed."""


class CancelledError(ClinviewError):
    """The user cancelled a long job."""

    def __init__(self, what: str = "cancelled by the user", **kw: str) -> None:
        super().__init__(what, **kw)


class NotBuiltError(ClinviewError):
    """A command or feature whose issue has not landed yet."""
