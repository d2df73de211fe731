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
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from translate.core.device import Capabilities
from translate.core.errors import InvalidCombinationError, InvalidValueError, check_choice
from translate.core.images import from_uint8, to_uint8
from translate.data.images import list_images
from translate.deploy.backends import Backend, make_backend
from translate.deploy.folder_io import (
    NATIVE,
    PARTIAL_SUFFIX,
    in_shard,
    parse_resize,
    parse_shard,
    partial_path,
    shard_from_environment,
)
from translate.deploy.folder_io import Batcher as _Batcher
from translate.deploy.folder_io import Decoded as _Decoded
from translate.deploy.folder_io import decode as _decode
from translate.deploy.folder_io import encode as _encode
from translate.deploy.inference import OUTPUT_FORMATS, output_paths, translate_uint8
from translate.deploy.selection import check_choices
from translate.deploy.tiling import translate_tiled
from translate.formats.locator import DIRECTIONS

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_MAX_PIXELS", "ConvertOptions", "ConvertProgress", "ConvertSummary", "convert_folder",
           "in_shard", "parse_resize", "parse_shard", "shard_from_environment"]

DEFAULT_MAX_PIXELS = 100_000_000  # ~10000 x 10000; a 4-byte float copy of it is 1.2 GB
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
    backend: str = ""  # e.g. "onnxruntime fp32 on CPUExecutionProvider"
    precision: str = ""
    seconds: float = 0.0  # converting, after the model is ready
    setup_seconds: float = 0.0  # loading the model (and exporting / quantising it the first time)
    report: Path | None = None
    prompt: str | None = None  # what a textcycle model translated to

    @property
    def images_per_s(self) -> float:
        return len(self.converted) / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class ConvertOptions:
    """`convert_folder`'s keywords, checked, with resize and shard parsed and defaults filled in."""

    direction: str | None = None
    backend: str | None = "auto"
    precision: str = "auto"
    device: str = "auto"
    provider: str | None = None
    batch_size: int = 4
    workers: int = 1
    fmt: str = "png"
    quality: int = 95
    png_compression: int = 1
    overwrite: bool = False
    resize: tuple[int, int] | int | str | None = None
    tile: int | None = None
    overlap: int = 0
    max_pixels: int = DEFAULT_MAX_PIXELS
    shard: tuple[int, int] | None = None
    report: Path | None = None
    prompt: str | None = None
    capabilities: Capabilities | None = None

    @classmethod
    def from_keywords(cls, *, workers: int | None, resize: str | tuple[int, int] | int | None,
                      shard: str | tuple[int, int] | None, tile: int | None, overlap: int | None,
                      report: str | Path | None, **rest: object) -> ConvertOptions:
        """The options of `convert_folder(**keywords)`; raises what `check` raises."""
        options = cls(workers=workers if workers is not None else min(32, os.cpu_count() or 1),
                      resize=parse_resize(resize) if isinstance(resize, str) else resize,
                      shard=parse_shard(shard) if isinstance(shard, str) else
                      shard if shard is not None else shard_from_environment(),
                      tile=tile, overlap=(tile // 8 if tile is not None else 0) if overlap is None else overlap,
                      report=Path(report) if report is not None else None, **rest)  # type: ignore[arg-type]
        options.check()
        return options

    def check(self) -> None:
        """Raise `ParameterError` for a bad value, before any work (and on every machine alike)."""
        check_choices(backend=self.backend, precision=self.precision, provider=self.provider, device=self.device)
        check_choice("direction", self.direction, (None, *DIRECTIONS))
        check_choice("fmt", self.fmt, OUTPUT_FORMATS)
        for name, low, high in (("quality", 1, 100), ("png_compression", 0, 9)):
            if not low <= getattr(self, name) <= high:
                raise InvalidValueError(name, getattr(self, name), f"an integer in {low}..{high}")
        for name in ("batch_size", "workers", "max_pixels"):
            if getattr(self, name) < 1:
                raise InvalidValueError(name, getattr(self, name), "an integer >= 1")
        if self.tile is not None:
            check_tile(self.tile, self.overlap, 1)


def check_tile(tile: int, overlap: int, multiple: int) -> None:
    """Raise `InvalidValueError` unless `tile` is a positive multiple of `multiple` and
    0 <= `overlap` < tile / 2."""
    if tile < 1 or tile % multiple:
        nearest = max(multiple, round(tile / multiple) * multiple)
        expected = "a positive integer" if multiple == 1 else \
            f"a positive multiple of the model's size multiple {multiple}"
        raise InvalidValueError("tile", tile, expected, f"the nearest is {nearest}" if tile >= 1 else "")
    if not 0 <= overlap < max(1, tile // 2):
        raise InvalidValueError("overlap", overlap, f"an integer in 0..{max(0, tile // 2 - 1)} for tile={tile}",
                                f"e.g. {tile // 8}")


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
        self.targets = output_paths(self.all_sources, self.input_dir, self.output_dir, self.options.fmt)
        self.sources = [s for s in self.all_sources
                        if in_shard(s.relative_to(self.input_dir).as_posix(), self.options.shard)]

    def load_model(self) -> None:
        options = self.options
        # int8 calibration on images spread over the whole listing (representative of the folder, and
        # the same for every shard, so all shards quantise alike).
        step = max(1, len(self.all_sources) // CALIBRATION_IMAGES)
        self.runner: Backend = make_backend(
            self.model, backend=options.backend, precision=options.precision, device=options.device,
            provider=options.provider, direction=options.direction,
            calibration=self.all_sources[::step][:CALIBRATION_IMAGES], prompt=options.prompt,
            capabilities=options.capabilities)
        if options.tile is not None:
            check_tile(options.tile, options.overlap, self.runner.size_multiple)
        # No resize asked for: the model's own input scale if its config names one, else native.
        model_resize = self.runner.config.get("input_resize")
        self.resize = (None if options.resize == NATIVE else options.resize if options.resize is not None
                       else int(model_resize) if model_resize else None)
        if options.resize is None and model_resize:
            logger.info("inputs scaled to a shorter side of %s px, the model's input_resize (resize='native' "
                        "keeps full resolution)", model_resize)
        self.summary.backend, self.summary.precision = self.runner.describe(), self.runner.precision

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
        logger.info("converting %d images with %s (%d already done)", len(self.todo), self.summary.backend,
                    len(self.summary.skipped))

    def translate_all(self) -> None:
        """Decode ahead on worker threads, translate batches of equal size here, encode on workers."""
        options, channels = self.options, self.runner.input_channels
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
        options, runner = self.options, self.runner
        images = torch.stack([item.image for item in batch])  # (B, C, H, W) uint8
        try:
            if options.tile is not None:
                with torch.inference_mode():
                    out = translate_tiled(runner, from_uint8(images.to(runner.device)), tile=options.tile,
                                          overlap=options.overlap, multiple=runner.size_multiple,
                                          max_batch=options.batch_size)
                pixels = to_uint8(out).permute(0, 2, 3, 1).contiguous().cpu().numpy()
            else:
                pixels = translate_uint8(runner, images, runner.size_multiple, runner.device)
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
                   direction: str | None = None, backend: str | None = "auto", precision: str = "auto",
                   device: str = "auto", provider: str | None = None, batch_size: int = 4,
                   workers: int | None = None, fmt: str = "png", quality: int = 95,
                   png_compression: int = 1, overwrite: bool = False,
                   resize: str | tuple[int, int] | int | None = None,
                   tile: int | None = None, overlap: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS,
                   shard: str | tuple[int, int] | None = None, report: str | Path | None = None,
                   on_progress: Callable[[ConvertProgress], None] | None = None,
                   prompt: str | None = None, capabilities: Capabilities | None = None) -> ConvertSummary:
    """Translate every image under `input_dir` (recursively) into `output_dir`, same relative paths.

    Args:
        model: a weights folder, run directory, checkpoint, `.onnx` file or bundled model name.
        direction: AtoB | BtoA for models holding both CycleGAN generators.
        backend, precision, device, provider: see `translate.deploy.backends.make_backend` (auto picks the
            fastest path the hardware runs well; the summary says which one ran).
        batch_size: images per model call (images of equal size only).
        workers: decode threads, and as many encode threads (default: the CPU count, at most 32).
        fmt, quality: png | jpg | webp, and the jpg / webp quality.
        png_compression: zlib level 0-9 for png. 1 (the default, as OpenCV's) encodes ~4x faster
            than Pillow's default 6 for files ~15% larger; encoding is often the slowest stage.
        overwrite: redo outputs that already exist (otherwise they are skipped).
        resize: None (the model's `input_resize` if its config has one, else full resolution),
            "native" (full resolution), N (shorter side to N, aspect kept) or (W, H) / "WxH".
        tile, overlap: run images in `tile` x `tile` pieces overlapping by `overlap` pixels (default
            tile // 8), blended across the overlap.
        max_pixels: larger images are reported as failed instead of exhausting memory.
        shard: "I/N" or (I, N): convert only shard I of N (default: RANK / WORLD_SIZE under torchrun).
        report: JSON report path (default: `output_dir/convert_report[.shardIofN].json`).
        on_progress: called with a ConvertProgress after each image.
        prompt: what a textcycle model translates to (required for one, refused for image models);
            embedded once and fed with every batch. Text models run in fp32.
        capabilities: the machine's, for the auto choices (default: this machine's).

    Raises:
        ParameterError / InvalidCombinationError / FileNotFoundError: bad arguments, a missing input
            folder, no images, or an output folder inside the input folder (checked before any work).
    """
    setup_started = time.perf_counter()
    options = ConvertOptions.from_keywords(
        direction=direction, backend=backend, precision=precision, device=device, provider=provider,
        batch_size=batch_size, workers=workers, fmt=fmt, quality=quality, png_compression=png_compression,
        overwrite=overwrite, resize=resize, tile=tile, overlap=overlap, max_pixels=max_pixels, shard=shard,
        report=report, prompt=prompt, capabilities=capabilities)
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
        "backend": summary.backend, "precision": summary.precision, "prompt": summary.prompt,
        "shard": None if shard is None else f"{shard[0]}/{shard[1]}",
        "converted": len(summary.converted), "skipped": len(summary.skipped), "failed": len(summary.failed),
        "setup_seconds": round(summary.setup_seconds, 3),
        "seconds": round(summary.seconds, 3), "images_per_s": round(summary.images_per_s, 3),
        "failures": [{"file": str(p), "reason": reason} for p, reason in summary.failed],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}{PARTIAL_SUFFIX}")
    partial.write_text(json.dumps(content, indent=2) + "\n")
    os.replace(partial, path)
    return path
