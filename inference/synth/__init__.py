"""Synthetic chest CT patients (Qt-free): phantoms with exact nodule ground
truth, follow-up scans, DICOM/NIfTI writers and the demo patient.

Heavy modules are imported lazily by their users; this package only names them.
"""

__all__ = ["phantom", "followup", "dicom_writer", "nifti_writer", "demo", "nodules", "anatomy", "acquisition", "raster"]
