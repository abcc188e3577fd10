"""Rule convert_dicom: one subject's DICOM folder into NIfTI + sidecars (dcm2niix)."""

import logging

from cmbflow.io.dicom import convert_subject
from cmbflow.io.nifti import InputError
from cmbflow.logs import setup_logging

setup_logging(snakemake.log[0])
try:
    convert_subject(snakemake.params.folder, snakemake.params.settings, dict(snakemake.output.items()))
except InputError as error:
    logging.getLogger("cmbflow").error("%s", error)
    raise SystemExit(f"cmbflow input error (details in {snakemake.log[0]}):\n{error}") from None
