"""The training set decoded once into memory (``--cache-data``), and a loader that batches from it.

:func:`cache_dataset` runs the dataset's CPU work (decode, channel conversion, resize to
``load_size``) once per file, with a pool of threads (Pillow releases the GIL), into uint8 tensors
of shape ``(N, C, H, W)``. :class:`CachedLoader` then takes the place of the ``DataLoader``: it
walks the same sampler and builds each batch by indexing the cache, with the same keys and values
as :func:`translate.data.collate_images` would give; for a CUDA device each batch is gathered into
page-locked (pinned) memory, so its copy to the device can be asynchronous. The random crop and
flip stay where they were, on the device (:func:`translate.data.augment_batch`).

Only the batches are pinned, not the cache: every batch is a gathered copy anyway, and the DMA
reads that copy. Pinning the cache itself would lock its whole size in RAM for no gain, rounded up
to a power of two per tensor by PyTorch's pinned-memory allocator (horse2zebra's 327 MB of B
images would lock 537 MB).

For horse2zebra (2,401 images at 286 x 286 x 3) the cache takes about 590 MB.

What can be cached:

- :class:`UnpairedDataset`: each file of ``paths_a`` and ``paths_b`` is decoded once; item ``i``
  is ``(A[i % nA], B[dataset.b_index(i)])``, with the B draw of the dataset's current epoch
  (``set_epoch`` goes to the dataset), exactly what ``dataset[i]`` returns.
- :class:`PairedDataset` and any other dataset whose items never change: each item is computed
  once by ``dataset[i]``; its tensors are stacked per key, other values (paths) kept as lists.
  Datasets with ``set_epoch`` (other than UnpairedDataset) are refused: their items change from
  epoch to epoch.

The cache holds every image of a key at one size, known before decoding: a dataset whose
``preprocess`` is a :class:`PreprocessConfig` must use ``resize_and_crop`` (the default; every
image resized to ``load_size`` x ``load_size``); the size-keeping modes (``crop``, ``scale_width``,
``scale_width_and_crop``, ``none``) are refused before any decoding. Other datasets give their
size with their first readable item, and any other size is refused. Unreadable files are
remembered with their reason and reported in the batches' ``"skipped"`` as collate reports them.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset, Sampler

# The module itself, not its names: load_image and prepare_image are looked up at call time, so
# the cache runs exactly what UnpairedDataset.__getitem__ runs (and what a test patches there).
from translate.data import datasets as _datasets
from translate.data.datasets import PairedDataset, UnpairedDataset
from translate.data.images import ImageReadError
from translate.data.transforms import PreprocessConfig

logger = logging.getLogger(__name__)

__all__ = ["CacheTooLargeError", "CachedDataset", "CachedLoader", "available_memory", "cache_dataset"]

# A column's row: (shape, dtype) of a tensor column, or None for values kept in a Python list.
_Spec = tuple[torch.Size, torch.dtype] | None
_NO_CACHE = "train without the cache (cache_data=False)"


class CacheTooLargeError(MemoryError):
    """The decoded training set would take more memory than :func:`cache_dataset` may use.

    Attributes:
        nbytes: what the cache would take; limit: the bytes allowed.
    """

    def __init__(self, message: str, nbytes: int, limit: int) -> None:
        self.nbytes, self.limit = nbytes, limit
        super().__init__(message)

    def __reduce__(self):
        return (type(self), (str(self), self.nbytes, self.limit))


def _megabytes(nbytes: int) -> str:
    return f"{nbytes / 1e6:,.2f} MB"


def available_memory() -> int | None:
    """Bytes of memory available to new allocations: ``MemAvailable`` of /proc/meminfo, else
    psutil's figure when psutil is installed, else None (unknown). Inside a container both give the
    host's figure, not a cgroup limit."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # the figure is in kB
    except (OSError, ValueError, IndexError):
        pass
    try:
        import psutil
    except ImportError:
        return None
    return int(psutil.virtual_memory().available)


@dataclass
class _Table:
    """One block of the cache: ``length`` rows, row ``j`` filled from ``item(j)`` (a dataset-style
    item dict, or ``{"error": path, "reason": why}``); ``row(i)`` maps dataset index ``i`` to its row.

    ``schema`` (key -> :data:`_Spec`) is known before decoding, or learnt from the first readable
    item (kept in ``probed``, so it is not decoded twice). ``columns`` hold ``(length, *shape)``
    tensors or lists once allocated; ``errors`` map rows to ``(path, reason)``.
    """

    name: str
    length: int
    item: Callable[[int], dict[str, Any]]
    row: Callable[[int], int]
    schema: dict[str, _Spec] | None = None
    probed: dict[int, dict[str, Any]] = field(default_factory=dict)
    columns: dict[str, torch.Tensor | list[Any]] = field(default_factory=dict)
    errors: dict[int, tuple[str, str]] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        """Bytes of the tensor columns (planned from the schema; lists are not counted)."""
        return sum(self.length * math.prod(spec[0]) * spec[1].itemsize
                   for spec in (self.schema or {}).values() if spec is not None)


def _identity(index: int) -> int:
    return index


def _check_cacheable(dataset: Dataset) -> None:
    """Refuse, before decoding, items that change per epoch (``set_epoch``, UnpairedDataset's B draw
    excepted) and a PreprocessConfig whose CPU step keeps each image's own size."""
    if hasattr(dataset, "set_epoch") and not isinstance(dataset, UnpairedDataset):
        raise TypeError(
            f"cannot cache {type(dataset).__name__}: it has set_epoch, so its items change from epoch to "
            "epoch (other draws, captions or orders), and a cache decoded once would replay the first "
            f"epoch's forever. Only UnpairedDataset's per-epoch draw is supported; {_NO_CACHE}."
        )
    cfg = getattr(dataset, "preprocess", None)
    if isinstance(cfg, PreprocessConfig) and cfg.preprocess != "resize_and_crop":
        raise ValueError(
            f"cannot cache {type(dataset).__name__} with preprocess={cfg.preprocess!r}: that mode keeps (part of) "
            "each image's own size, and the cache holds every image at one size. Use "
            f"preprocess='resize_and_crop' (every image resized to load_size x load_size), or {_NO_CACHE}."
        )


def _planned(cfg: PreprocessConfig, channels: dict[str, int], list_keys: tuple[str, ...]) -> dict[str, _Spec]:
    """The schema resize_and_crop gives: ``(C, load_size, load_size)`` uint8 per image key, lists
    for ``list_keys``."""
    size = cfg.load_size
    schema: dict[str, _Spec] = {key: (torch.Size((c, size, size)), torch.uint8) for key, c in channels.items()}
    return schema | dict.fromkeys(list_keys)


def _file_item(path: Path, channels: int, cfg: PreprocessConfig, side: str) -> dict[str, Any]:
    """One file of an UnpairedDataset, decoded as its ``__getitem__`` does: ``{side: (C, H, W)
    uint8, "path_" + side: str}``, or the error item it would return."""
    try:
        image = _datasets.prepare_image(_datasets.load_image(path, channels), cfg)
    except ImageReadError as error:
        logger.warning("skipping %s: %s", error.path, error.reason)
        return {"error": error.path, "reason": error.reason}
    return {side: image, f"path_{side}": str(path)}


def _unpaired_tables(dataset: UnpairedDataset) -> list[_Table]:
    """Two tables, one per folder, decoded file by file; B rows follow the dataset's epoch."""
    cfg = dataset.preprocess
    n_a = len(dataset.paths_a)

    def a_item(row: int) -> dict[str, Any]:
        return _file_item(dataset.paths_a[row], dataset.channels_a, cfg, "a")

    def b_item(row: int) -> dict[str, Any]:
        return _file_item(dataset.paths_b[row], dataset.channels_b, cfg, "b")

    return [
        _Table(str(dataset.dir_a), n_a, a_item, lambda index: index % n_a,
               _planned(cfg, {"a": dataset.channels_a}, ("path_a",))),
        # b_index reads dataset.epoch when called, so set_epoch on the dataset is all it takes.
        _Table(str(dataset.dir_b), len(dataset.paths_b), b_item, dataset.b_index,
               _planned(cfg, {"b": dataset.channels_b}, ("path_b",))),
    ]


def _item_tables(dataset: Dataset) -> list[_Table]:
    """One table of whole items, ``dataset[i]`` each (they must not change from epoch to epoch)."""
    schema = None
    if isinstance(dataset, PairedDataset):
        schema = _planned(dataset.preprocess, {"a": dataset.channels_a, "b": dataset.channels_b}, ("path_a", "path_b"))
    name = dataset.describe() if hasattr(dataset, "describe") else type(dataset).__name__
    return [_Table(name, len(dataset), dataset.__getitem__, _identity, schema)]


def _probe(table: _Table) -> None:
    """Learn the schema from the first readable item (kept for the fill, not decoded again)."""
    for row in range(table.length):
        item = table.item(row)
        table.probed[row] = item
        if "error" not in item:
            table.schema = {key: (value.shape, value.dtype) if isinstance(value, torch.Tensor) else None
                            for key, value in item.items()}
            return
    table.schema = {}  # nothing readable: every item is skipped


def _mismatch(table: _Table, row: int, item: dict[str, Any], key: str, spec: _Spec) -> ValueError:
    value = item[key]
    got = f"shape {tuple(value.shape)} {value.dtype}" if isinstance(value, torch.Tensor) else type(value).__name__
    want = f"shape {tuple(spec[0])} {spec[1]}" if spec is not None else "a non-tensor value"
    paths = ", ".join(str(v) for k, v in item.items() if k.startswith("path"))
    return ValueError(
        f"cannot cache {table.name}: item {row} ({paths or 'no path'}) has {key!r} of {got}, but the first "
        f"readable item has {want}; the cache holds one tensor per key, so every image needs the same "
        f"size. Make the dataset return one size (e.g. preprocess='resize_and_crop'), or {_NO_CACHE}."
    )


def _store(table: _Table, row: int, item: dict[str, Any]) -> None:
    """Write one decoded item into its row (any thread: rows are disjoint)."""
    if "error" in item:
        table.errors[row] = (item["error"], item["reason"])
        return
    schema = table.schema or {}
    if item.keys() != schema.keys():
        raise ValueError(
            f"cannot cache {table.name}: item {row} has the keys {sorted(item)}, the first readable item "
            f"{sorted(schema)}; the cache needs items of one structure; {_NO_CACHE}"
        )
    for key, spec in schema.items():
        value, column = item[key], table.columns[key]
        if spec is None and not isinstance(value, torch.Tensor):
            column[row] = value
        elif spec is not None and isinstance(value, torch.Tensor) and (value.shape, value.dtype) == spec:
            column[row].copy_(value)
        else:
            raise _mismatch(table, row, item, key, spec)


def _fill(table: _Table, workers: int) -> None:
    """Allocate the table's columns and decode every row not decoded yet, ``workers`` at a time."""
    table.columns = {
        key: [None] * table.length if spec is None
        else torch.empty((table.length, *spec[0]), dtype=spec[1])
        for key, spec in (table.schema or {}).items()
    }
    todo = [row for row in range(table.length) if row not in table.probed]
    for row, item in table.probed.items():
        _store(table, row, item)
    table.probed.clear()

    def decode(row: int) -> None:
        _store(table, row, table.item(row))

    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="cache-decode") as pool:
        futures = [pool.submit(decode, row) for row in todo]
        try:
            for future in futures:
                future.result()
        except BaseException:
            for future in futures:  # a size mismatch (or Ctrl-C) stops the rest at once
                future.cancel()
            raise


def _want_pin(pin_memory: bool) -> bool:
    if pin_memory and not torch.cuda.is_available():
        logger.info("cache: pin_memory asked for, but CUDA is not available; batches stay in pageable memory")
        return False
    return pin_memory


def cache_dataset(
    dataset: Dataset, *, workers: int = 2, pin_memory: bool = False, max_bytes: int | None = None
) -> CachedDataset:
    """Decode every image of ``dataset`` once into uint8 tensors in memory (see the module docstring).

    Args:
        dataset: an :class:`UnpairedDataset`, a :class:`PairedDataset`, or any map-style dataset
            whose items are the same every epoch (dicts of tensors and other values).
        workers: decoding threads (at least 1 is used).
        pin_memory: gather the batches into page-locked memory, so that ``.to(device,
            non_blocking=True)`` copies them asynchronously; ignored (with a log line) without
            CUDA. The cache itself stays pageable (see the module docstring).
        max_bytes: refuse a cache larger than this; None: half of :func:`available_memory`
            (no limit when that is unknown).

    Returns:
        The :class:`CachedDataset`; its tensors are ``(N, C, H, W)`` uint8 per image key.

    Raises:
        CacheTooLargeError: the cache would exceed ``max_bytes`` (checked before decoding all).
        ValueError: a preprocess mode other than resize_and_crop (before decoding), or items of
            differing sizes or keys (a dataset of another type).
        TypeError: a dataset with ``set_epoch`` other than UnpairedDataset.
    """
    _check_cacheable(dataset)
    tables = _unpaired_tables(dataset) if isinstance(dataset, UnpairedDataset) else _item_tables(dataset)
    for table in tables:
        if table.schema is None:
            _probe(table)
    nbytes = sum(table.nbytes for table in tables)
    limit = max_bytes
    if limit is None:
        available = available_memory()
        limit = available // 2 if available is not None else None
    if limit is not None and nbytes > limit:
        raise CacheTooLargeError(
            f"caching the training set ({len(dataset)} items; {', '.join(t.name for t in tables)}) needs "
            f"{_megabytes(nbytes)}, more than the limit of {_megabytes(limit)} "
            f"({'max_bytes' if max_bytes is not None else 'half of the available memory'}); {_NO_CACHE}, "
            "or lower load_size", nbytes, limit)
    pin = _want_pin(pin_memory)
    logger.info("cache: decoding %d items into %s of memory with %d threads%s", len(dataset),
                _megabytes(nbytes), max(1, workers), "; batches in pinned memory" if pin else "")
    start = time.perf_counter()
    for table in tables:
        _fill(table, workers)
    skipped = sum(len(table.errors) for table in tables)
    logger.info("cache: %s decoded in %.1f s (%d unreadable files)", _megabytes(nbytes),
                time.perf_counter() - start, skipped)
    keys = ("a", "b", "path_a", "path_b") if isinstance(dataset, UnpairedDataset) else tuple(tables[0].schema or {})
    return CachedDataset(dataset, tables, keys, nbytes, pin)


def _gather(column: torch.Tensor | list[Any], rows: list[int], pin: bool) -> torch.Tensor | list[Any]:
    """``column[rows]``: a ``(len(rows), ...)`` tensor (in pinned memory with ``pin``), or a list."""
    if isinstance(column, list):
        return [column[row] for row in rows]
    index = torch.tensor(rows, dtype=torch.long)
    if not pin:
        return column.index_select(0, index)
    return torch.index_select(column, 0, index, out=_pinned_buffer((len(rows), *column.shape[1:]), column.dtype))


def _pinned_buffer(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    # A fresh buffer per batch: PyTorch's pinned allocator caches the blocks and reuses one only
    # after the copies that read it have finished, so a batch in flight is never overwritten.
    return torch.empty(shape, dtype=dtype, pin_memory=True)


class CachedDataset(Dataset):
    """A dataset's items held in memory; made by :func:`cache_dataset`.

    ``cached[i]`` equals ``dataset[i]`` (its tensors are views of the cache: do not modify them);
    :meth:`collate` builds a whole batch, as ``collate_images([dataset[i] for i in indices])`` would.

    Attributes:
        dataset: the dataset cached (its ``preprocess`` and ``set_epoch`` are passed through).
        nbytes: bytes of the cached tensors (``(N, C, H, W)`` uint8 per image key).
        pin_memory: whether :meth:`collate` gathers batches into page-locked memory.
    """

    def __init__(self, dataset: Dataset, tables: list[_Table], keys: tuple[str, ...], nbytes: int,
                 pin_memory: bool) -> None:
        self.dataset = dataset
        self.nbytes = nbytes
        self.pin_memory = pin_memory
        self._tables = tables
        # Output key -> the table that holds it, in the order the dataset's items have them.
        self._where = {key: position for key in keys
                       for position, table in enumerate(tables) if key in (table.schema or {})}

    @property
    def preprocess(self) -> Any:
        """The dataset's PreprocessConfig (None when it has none)."""
        return getattr(self.dataset, "preprocess", None)

    def set_epoch(self, epoch: int) -> None:
        """Pass the epoch to the dataset (UnpairedDataset's B draw depends on it)."""
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def _locate(self, index: int) -> tuple[list[int], tuple[str, str] | None]:
        """Rows of item ``index`` in each table, and its ``(path, reason)`` if a file is unreadable."""
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} items")
        rows: list[int] = []
        for table in self._tables:  # in __getitem__'s order: A's error wins over B's
            rows.append(table.row(index))
            if rows[-1] in table.errors:
                return rows, table.errors[rows[-1]]
        return rows, None

    def __getitem__(self, index: int) -> dict[str, Any]:
        rows, error = self._locate(index)
        if error is not None:
            return {"error": error[0], "reason": error[1]}
        return {key: self._tables[t].columns[key][rows[t]] for key, t in self._where.items()}

    def collate(self, indices: Sequence[int]) -> dict[str, Any]:
        """The batch of items ``indices``, as :func:`collate_images` gives it.

        Returns:
            Tensors as ``(B, C, H, W)`` uint8 (B = readable items), other values as lists, and
            ``"skipped"``: ``(path, reason)`` of the unreadable ones; only ``{"skipped": [...]}``
            when none is readable.
        """
        skipped: list[tuple[str, str]] = []
        good: list[list[int]] = []
        for index in indices:
            rows, error = self._locate(index)
            if error is None:
                good.append(rows)
            else:
                skipped.append(error)
        if not good:
            return {"skipped": skipped}
        out: dict[str, Any] = {
            key: _gather(self._tables[t].columns[key], [rows[t] for rows in good], self.pin_memory)
            for key, t in self._where.items()
        }
        out["skipped"] = skipped
        return out

    def describe(self) -> str:
        """One line for logs."""
        inner = self.dataset.describe() if hasattr(self.dataset, "describe") else type(self.dataset).__name__
        return f"cached ({_megabytes(self.nbytes)}{', pinned batches' if self.pin_memory else ''}) {inner}"


class CachedLoader:
    """Batches from a :class:`CachedDataset`, in place of ``DataLoader(dataset, batch_size,
    sampler=sampler, collate_fn=collate_images)`` (``drop_last=False``).

    Each ``iter()`` walks ``iter(sampler)`` (so ``set_epoch`` / ``set_start`` of a
    ``ResumableSampler`` apply as with the DataLoader) in chunks of ``batch_size``, the last one
    possibly smaller, and yields :meth:`CachedDataset.collate` of each: ``(B, C, H, W)`` uint8
    tensors (pinned with ``cached.pin_memory``, for ``.to(device, non_blocking=True)``), path lists and
    ``"skipped"``.

    Raises:
        ValueError: ``batch_size`` < 1.
    """

    def __init__(self, cached: CachedDataset, sampler: Sampler[int], batch_size: int) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.dataset = cached
        self.sampler = sampler
        self.batch_size = batch_size

    def __iter__(self) -> Iterator[dict[str, Any]]:
        order = iter(self.sampler)
        while chunk := list(itertools.islice(order, self.batch_size)):
            yield self.dataset.collate(chunk)

    def __len__(self) -> int:
        return math.ceil(len(self.sampler) / self.batch_size)
