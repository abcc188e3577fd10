"""Rule validate_dataset: enforce the input contract and write the dataset's manifest."""

import logging

from cmbflow.io.nifti import InputError
from cmbflow.io.validate import validate_dataset
from cmbflow.logs import setup_logging

setup_logging(snakemake.log[0], echo_warnings=True)  # input warnings on the console too
try:
    manifest = validate_dataset(snakemake.wildcards.dataset, snakemake.params.dataset, snakemake.params.tolerance_mm)
except InputError as error:
    logging.getLogger("cmbflow").error("%s", error)
    raise SystemExit(f"cmbflow input error (details in {snakemake.log[0]}):\n{error}") from None
manifest.to_csv(snakemake.output[0], sep="\t", index=False)
