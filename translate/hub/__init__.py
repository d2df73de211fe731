"""Downloads: resumable, verified HTTP fetches, safe archive extraction and the reference data sets.

Standard library only (urllib, zipfile, tarfile). The command line is `translate data download`.
"""

from translate.hub.archive import ArchiveError, UnsafeArchiveError, safe_extract
from translate.hub.datasets import DATASETS, DatasetInfo, download_dataset, get_dataset, list_datasets
from translate.hub.fetch import DownloadError, download_file, file_sha256

__all__ = [
    "DATASETS",
    "ArchiveError",
    "DatasetInfo",
    "DownloadError",
    "UnsafeArchiveError",
    "download_dataset",
    "download_file",
    "file_sha256",
    "get_dataset",
    "list_datasets",
    "safe_extract",
]
