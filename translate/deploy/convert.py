"""Folder conversion: decode, translate and encode a folder of any size at the speed of the hardware.

    summary = convert_folder("photos/", "out/", "weights/maps_aerial2map")

Three stages overlap: worker threads decode files (Pillow releases the GIL while decoding), the
calling thread batches images of equal size and runs the model, worker threads encode and write.
Both hand-overs are bounded (at most `prefetch` decoded images waiting, at most `prefetch`
outputs waiting to be written), so memory stays flat for a folder of any size.

Every output is written under a temporary name and renamed when complete: a killed run leaves no
partial file, and a rerun skips what is done, deletes the killed run's temporary files and
finishes the rest. Files that cannot be converted (unreadable, too many pixels, out of memory) are
recorded with the reason and the rest goes on; the summary lists them and a JSON report is
written beside the outputs.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from translate.core.errors import InvalidCombinationError
from translate.core.files import atomic_write_text
from translate.core.images import from_uint8, to_uint8
from translate.data.images import list_images
from translate.deploy.backends import Backend, make_backend
from translate.deploy.folder_io import Batcher as _Batcher
from translate.deploy.folder_io import Decoded as _Decoded
from translate.deploy.folder_io import decode as _decode
from translate.deploy.folder_io import encode as _encode
from translate.deploy.folder_io import in_shard, partial_path
from translate.deploy.inference import output_paths, translate_uint8
from translate.deploy.options import (
    DEFAULT_MAX_PIXELS,
    NATIVE,
    ConvertOptions,
    parse_resize,
    parse_shard,
    shard_from_environment,
)
from translate.deploy.tiling import check_tile, translate_tiled
from translate.formats.locator import locate

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_MAX_PIXELS", "ConvertOptions", "ConvertProgress", "ConvertSummary", "convert_folder",
           "in_shard", "parse_resize", "parse_shard", "shard_from_environment"]

CALIBRATION_IMAGES = 20  # int8 calibration + check images, spread over the folder


@dataclass
class ConvertProgress:
    """Reported after each written (or failed) image."""

    done: int
    total: int
    failed: int
    images_per_s: float


@dataclass
class ConvertSummary:
    converted: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)  # outputs that already existed
    failed: list[tuple[Path, str]] = field(default_factory=list)
    backend_description: str = ""  # what ran, e.g. "onnxruntime fp32 on CPUExecutionProvider"
    precision: str = ""
    seconds: float = 0.0  # converting, after the model is ready
    setup_seconds: float = 0.0  # loading the model (and exporting / quantising it the first time)
    report: Path | None = None
    prompt: str | None = None  # what a textcycle model translated to

    @property
    def images_per_s(self) -> float:
        return len(self.converted) / self.seconds if self.seconds > 0 else 0.0


class _Conversion:
    """One `convert_folder` call, one method per stage, called in order by `convert_folder`."""

    def __init__(self, input_dir: Path, output_dir: Path, model: str | Path, options: ConvertOptions,
                 on_progress: Callable[[ConvertProgress], None] | None) -> None:
        self.input_dir, self.output_dir, self.model, self.options = input_dir, output_dir, model, options
        self.on_progress = on_progress
        self.summary = ConvertSummary(prompt=options.prompt)
        self.lock = threading.Lock()
        # Both hand-overs are bounded: at most `prefetch` decoded images and `prefetch` outputs waiting.
        self.prefetch = max(2 * options.workers, 2 * options.batch_size)
        self.write_slots = threading.BoundedSemaphore(self.prefetch)
        self.started = time.perf_counter()
        self.todo: list[Path] = []

    def check_folders(self) -> None:
        if not self.input_dir.is_dir():
            raise FileNotFoundError(f"input folder {str(self.input_dir)!r} does not exist")
        if self.output_dir == self.input_dir or self.input_dir in self.output_dir.parents:
            raise InvalidCombinationError(f"output folder {str(self.output_dir)!r} is the input folder or inside it "
                                          f"({str(self.input_dir)!r}); choose a folder outside it",
                                          "output_dir", "input_dir")

    def list_sources(self) -> None:
        """The images of this shard, and the output path of every image of the folder."""
        self.all_sources = list_images(self.input_dir, recursive=True)
        if not self.all_sources:
            raise FileNotFoundError(f"no images found under {str(self.input_dir)!r}")
        # Named from the whole listing, so that every shard agrees on the names.
        self.targets = output_paths(self.all_sources, self.input_dir, self.output_dir, self.options.fmt,
                                    self.options.suffix)
        self.sources = [s for s in self.all_sources
                        if in_shard(s.relative_to(self.input_dir).as_posix(), self.options.shard)]

    def load_model(self) -> None:
        options = self.options
        # int8 calibration on images spread over the whole listing (representative of the folder, and
        # the same for every shard, so all shards quantise alike).
        step = max(1, len(self.all_sources) // CALIBRATION_IMAGES)
        # Located once here; everything below (export, int8 copy, session) takes the resolved source.
        self.backend: Backend = make_backend(
            locate(self.model), backend=options.backend, precision=options.precision, device=options.device,
            provider=options.provider, direction=options.direction,
            calibration=self.all_sources[::step][:CALIBRATION_IMAGES], prompt=options.prompt,
            capabilities=options.capabilities)
        if options.tile is not None:
            check_tile(options.tile, options.overlap, self.backend.size_multiple)
        # No resize asked for: the model's own input scale if its config names one, else native.
        model_resize = self.backend.config.get("input_resize")
        self.resize = (None if options.resize == NATIVE else options.resize if options.resize is not None
                       else int(model_resize) if model_resize else None)
        if options.resize is None and model_resize:
            logger.info("inputs scaled to a shorter side of %s px, the model's input_resize (resize='native' "
                        "keeps full resolution)", model_resize)
        self.summary.backend_description, self.summary.precision = self.backend.describe(), self.backend.precision

    def sort_out_done(self) -> None:
        """Skip finished outputs (unless overwrite) and delete a killed run's temporary files."""
        self.started = time.perf_counter()  # images/s counts the conversion, not the export / quantisation
        for source in self.sources:
            target = self.targets[source]
            partial_path(target).unlink(missing_ok=True)
            if not self.options.overwrite and target.is_file() and target.stat().st_size > 0:
                self.summary.skipped.append(source)
            else:
                self.todo.append(source)
        logger.info("converting %d images with %s (%d already done)", len(self.todo),
                    self.summary.backend_description, len(self.summary.skipped))

    def translate_all(self) -> None:
        """Decode ahead on worker threads, translate batches of equal size here, encode on workers."""
        options, channels = self.options, self.backend.input_channels
        batcher = _Batcher(options.batch_size, hold=4 * options.batch_size)
        with ThreadPoolExecutor(options.workers, thread_name_prefix="decode") as readers, \
                ThreadPoolExecutor(options.workers, thread_name_prefix="encode") as writers:
            pending: collections.deque[Future[_Decoded]] = collections.deque()
            queue = iter(self.todo)
            for source in queue:
                pending.append(readers.submit(_decode, source, channels, options.max_pixels, self.resize))
                if len(pending) >= self.prefetch:
                    break
            while pending:
                item = pending.popleft().result()
                next_source = next(queue, None)
                if next_source is not None:
                    pending.append(readers.submit(_decode, next_source, channels, options.max_pixels,
                                                  self.resize))
                if item.error is not None:
                    self._fail(item.source, item.error)
                    continue
                for batch in batcher.add(item):
                    self._run_batch(batch, writers)
            for batch in batcher.rest():
                self._run_batch(batch, writers)
        self.summary.seconds = time.perf_counter() - self.started

    def write_report(self) -> None:
        self.summary.report = _write_report(self.summary, self.output_dir, self.input_dir, self.model,
                                            self.options.shard, self.options.report)

    def _run_batch(self, batch: list[_Decoded], writers: ThreadPoolExecutor) -> None:
        options, backend = self.options, self.backend
        images = torch.stack([item.image for item in batch])  # (B, C, H, W) uint8
        try:
            if options.tile is not None:
                with torch.inference_mode():
                    out = translate_tiled(backend, from_uint8(images.to(backend.device)), tile=options.tile,
                                          overlap=options.overlap, multiple=backend.size_multiple,
                                          max_batch=options.batch_size)
                pixels = to_uint8(out).permute(0, 2, 3, 1).contiguous().cpu().numpy()
            else:
                pixels = translate_uint8(backend, images, backend.size_multiple, backend.device)
        except (RuntimeError, MemoryError) as error:  # out of memory on a large image, mostly
            height, width = images.shape[-2:]
            hint = "; try tile=512 or resize" if "memory" in str(error).lower() else ""
            for item in batch:
                self._fail(item.source, f"inference failed at {width}x{height}: {str(error).splitlines()[0]}{hint}")
            return
        for item, image in zip(batch, pixels, strict=True):
            self.write_slots.acquire()
            writers.submit(self._write, item, image)

    def _write(self, item: _Decoded, pixels: np.ndarray) -> None:
        target = self.targets[item.source]
        try:
            _encode(pixels, item.alpha, target, self.options.fmt, self.options.quality, self.options.png_compression)
            with self.lock:
                self.summary.converted.append(item.source)
                self._report_progress()
        except Exception as error:  # noqa: BLE001 - one unwritable file must not stop the folder
            self._fail(item.source, f"cannot write {target}: {error}")
        finally:
            self.write_slots.release()

    def _fail(self, source: Path, reason: str) -> None:
        logger.warning("cannot convert %s: %s", source, reason)
        with self.lock:
            self.summary.failed.append((source, reason))
            self._report_progress()

    def _report_progress(self) -> None:
        """Called with the lock held."""
        if self.on_progress is not None:
            summary, elapsed = self.summary, time.perf_counter() - self.started
            self.on_progress(ConvertProgress(len(summary.converted) + len(summary.failed), len(self.todo),
                                             len(summary.failed), len(summary.converted) / elapsed if elapsed > 0
                                             else 0.0))


def convert_folder(input_dir: str | Path, output_dir: str | Path, model: str | Path, *,
                   on_progress: Callable[[ConvertProgress], None] | None = None, **options: Any) -> ConvertSummary:
    """Translate every image under `input_dir` (recursively) into `output_dir`, same relative paths.

        convert_folder("photos/", "out/", "maps_aerial2map", precision="fp16", tile=512, fmt="jpg")

    Args:
        model: a weights folder, run directory, checkpoint, `.onnx` file or bundled model name.
        on_progress: called with a ConvertProgress after each image.
        options: the fields of `ConvertOptions` (translate.deploy.options, each declared with its
            help; `translate convert --help` lists them as flags): the model choices (direction,
            backend, precision, device, provider, prompt; auto picks the fastest path the hardware
            runs well and the summary says which one ran), the input (resize, tile, overlap,
            max_pixels), the output (fmt, quality, png_compression, overwrite, report) and the
            throughput (batch_size, workers, shard: "I/N" or (I, N), default RANK / WORLD_SIZE
            under torchrun).

    Raises:
        ParameterError / InvalidCombinationError / FileNotFoundError: bad arguments, a missing input
            folder, no images, or an output folder inside the input folder (checked before any work).
        TypeError: a keyword that is not an option.
    """
    setup_started = time.perf_counter()
    options = ConvertOptions.from_keywords(**options)
    job = _Conversion(Path(input_dir).resolve(), Path(output_dir).resolve(), model, options, on_progress)
    job.check_folders()
    job.list_sources()
    job.load_model()
    job.summary.setup_seconds = time.perf_counter() - setup_started
    job.sort_out_done()
    job.translate_all()
    job.write_report()
    return job.summary


def _write_report(summary: ConvertSummary, output_dir: Path, input_dir: Path, model: str | Path,
                  shard: tuple[int, int] | None, report: str | Path | None) -> Path:
    """The JSON report (default `output_dir/convert_report[.shardIofN].json`), written atomically."""
    name = "convert_report.json" if shard is None else f"convert_report.shard{shard[0]}of{shard[1]}.json"
    path = Path(report) if report is not None else output_dir / name
    content = {
        "input": str(input_dir), "output": str(output_dir), "model": str(model),
        "backend": summary.backend_description, "precision": summary.precision, "prompt": summary.prompt,
        "shard": None if shard is None else f"{shard[0]}/{shard[1]}",
        "converted": len(summary.converted), "skipped": len(summary.skipped), "failed": len(summary.failed),
        "setup_seconds": round(summary.setup_seconds, 3),
        "seconds": round(summary.seconds, 3), "images_per_s": round(summary.images_per_s, 3),
        "failures": [{"file": str(p), "reason": reason} for p, reason in summary.failed],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, json.dumps(content, indent=2) + "\n")
