"""What comes from elsewhere: downloads, archives, the reference implementation's data sets and
pretrained generators, and the import of its checkpoints.

It sits above `translate.formats` (imported models are saved as weights folders). The modules it
re-exports (fetch, archive, datasets) need only the standard library (urllib, zipfile, tarfile) and
`translate.core.files`; `pretrained` and `reference` need torch. It owns:

- `fetch`: `download_file`, resumable (`DEST.part`) and checked against a SHA-256
  (`translate.core.files.sha256_file`); `DownloadError`.
- `archive`: `safe_extract` of zip / tar archives, refusing members that would escape the target.
- `datasets`: the reference's data sets by name (`DATASETS`, `download_dataset`).
- `pretrained`: the reference's pretrained generators by name (`download_pretrained`), installed
  as weights folders in `translate.core.paths.models_dir()`.
- `reference`: `import_reference` of a bare reference `state_dict` (`latest_net_G.pth`) into a
  weights folder, with a diagnosis of wrongly stated options.
"""

from translate.hub.archive import ArchiveError, UnsafeArchiveError, safe_extract
from translate.hub.datasets import DATASETS, DatasetInfo, download_dataset, get_dataset, list_datasets
from translate.hub.fetch import DownloadError, download_file

__all__ = [
    "DATASETS",
    "ArchiveError",
    "DatasetInfo",
    "DownloadError",
    "UnsafeArchiveError",
    "download_dataset",
    "download_file",
    "get_dataset",
    "list_datasets",
    "safe_extract",
]
