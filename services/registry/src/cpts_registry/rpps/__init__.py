"""Import of the public RPPS extract (`PS_LibreAcces_Personne_activite`) and a generator of demo extracts."""

from cpts_registry.rpps.extract import (
    RejectedLine,
    RppsExtract,
    RppsFormatError,
    RppsRow,
    SkippedLine,
    read_extract,
)
from cpts_registry.rpps.importer import ImportResult, ImportSummary, import_rpps, write_rejected_report

__all__ = [
    "ImportResult",
    "ImportSummary",
    "RejectedLine",
    "RppsExtract",
    "RppsFormatError",
    "RppsRow",
    "SkippedLine",
    "import_rpps",
    "read_extract",
    "write_rejected_report",
]
