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
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from translate.data.images import ImageReadError, ImageTooLargeError, convert_channels, decode_image, list_images
from translate.deploy.backends import make_backend
from translate.deploy.inference import OUTPUT_FORMATS, output_paths, translate_tensor

logger = logging.getLogger(__name__)

DEFAULT_MAX_PIXELS = 100_000_000  # ~10000 x 10000; a 4-byte float copy of it is 1.2 GB
PARTIAL_SUFFIX = ".translate-partial"
_PIL_FORMATS = {"png": "PNG", "jpg": "JPEG", "webp": "WEBP"}


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


@dataclass
class _Decoded:
    source: Path
    image: Tensor | None = None  # (C, H, W) uint8
    alpha: np.ndarray | None = None  # (H, W) uint8, carried over to the output
    error: str | None = None


def parse_shard(text: str) -> tuple[int, int]:
    """"I/N" -> (I, N) with 0 <= I < N: this process converts shard I of N."""
    try:
        index_text, count_text = text.split("/")
        index, count = int(index_text), int(count_text)
    except ValueError:
        raise ValueError(f"--shard {text!r} is not I/N (e.g. 0/4 for the first of four shards)") from None
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"--shard {text!r}: need 0 <= I < N (shards are numbered from 0, like RANK)")
    return index, count


def shard_from_environment() -> tuple[int, int] | None:
    """(RANK, WORLD_SIZE) when launched by torchrun with more than one process, else None."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return (int(os.environ.get("RANK", "0")), world) if world > 1 else None


def in_shard(relative: str, shard: tuple[int, int] | None) -> bool:
    """Deterministic split by a hash of the relative path: every process (on any machine) agrees,
    and files added later do not move the others between shards."""
    if shard is None:
        return True
    digest = hashlib.sha1(relative.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % shard[1] == shard[0]


def parse_resize(text: str | None) -> tuple[int, int] | int | None:
    """"N" (shorter side to N, aspect kept) or "WxH" (exact size) -> N or (W, H)."""
    if text is None:
        return None
    try:
        if "x" in text.lower():
            width, height = (int(v) for v in text.lower().split("x"))
            if width > 0 and height > 0:
                return width, height
        elif int(text) > 0:
            return int(text)
    except ValueError:
        pass
    raise ValueError(f"--resize {text!r} is not N (shorter side, aspect kept) or WxH, e.g. 512 or 640x480")


def _resized(image: Image.Image, resize: tuple[int, int] | int) -> Image.Image:
    if isinstance(resize, tuple):
        size = resize
    else:
        scale = resize / min(image.size)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image if size == image.size else image.resize(size, Image.Resampling.BICUBIC)


def _decode(source: Path, channels: int, max_pixels: int, resize: tuple[int, int] | int | None) -> _Decoded:
    try:
        return _decode_checked(source, channels, max_pixels, resize)
    except Exception as error:  # noqa: BLE001 - an odd file must not stop the folder
        return _Decoded(source, error=f"{type(error).__name__}: {error}")


def _decode_checked(source: Path, channels: int, max_pixels: int, resize: tuple[int, int] | int | None
                    ) -> _Decoded:
    try:
        image = decode_image(source, max_pixels=max_pixels)
    except ImageTooLargeError as error:
        return _Decoded(source, error=f"{error.pixels} pixels, more than --max-pixels {error.limit}; "
                                      "raise --max-pixels, or use --resize / --tile")
    except ImageReadError as error:
        return _Decoded(source, error=error.reason)
    alpha = None
    if image.mode in ("LA", "RGBA") and channels != 4:
        alpha = image.getchannel("A")
    image = convert_channels(image, channels)
    if resize is not None:
        image = _resized(image, resize)
        alpha = _resized(alpha, resize) if alpha is not None else None
    array = np.asarray(image)
    array = array[:, :, None] if array.ndim == 2 else array
    return _Decoded(source, torch.from_numpy(array.copy()).permute(2, 0, 1),
                    np.asarray(alpha) if alpha is not None else None)


def _partial_path(target: Path) -> Path:
    return target.with_name(f".{target.name}{PARTIAL_SUFFIX}")


def _encode(pixels: np.ndarray, alpha: np.ndarray | None, target: Path, fmt: str, quality: int,
            png_compression: int = 1) -> None:
    """(H, W, C) uint8 [+ (H, W) alpha] -> file at `target`, written under a temporary name first."""
    channels = pixels.shape[2]
    if channels == 4 or channels not in (1, 3):
        image = Image.fromarray(pixels, "RGBA") if channels == 4 else None
        if image is None:
            raise ValueError(f"cannot save a {channels}-channel output as an image")
    else:
        image = Image.fromarray(pixels[:, :, 0] if channels == 1 else pixels, "L" if channels == 1 else "RGB")
    if alpha is not None and fmt != "jpg":
        image.putalpha(Image.fromarray(alpha, "L"))
    if fmt == "jpg" and image.mode in ("RGBA", "LA"):
        image = image.convert("RGB" if image.mode == "RGBA" else "L")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = _partial_path(target)
    try:
        options = {"compress_level": png_compression} if fmt == "png" else {"quality": quality}
        image.save(partial, format=_PIL_FORMATS[fmt], **options)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


class _Batcher:
    """Groups decoded images by size into batches; holds at most `hold` images in all."""

    def __init__(self, batch_size: int, hold: int) -> None:
        self.batch_size, self.hold = batch_size, hold
        self.groups: dict[tuple[int, ...], list[_Decoded]] = collections.defaultdict(list)
        self.held = 0

    def add(self, item: _Decoded) -> Iterator[list[_Decoded]]:
        key = tuple(item.image.shape)
        self.groups[key].append(item)
        self.held += 1
        if len(self.groups[key]) == self.batch_size:
            yield self._pop(key)
        elif self.held > self.hold:  # many sizes: flush the fullest group rather than grow
            yield self._pop(max(self.groups, key=lambda k: len(self.groups[k])))

    def rest(self) -> Iterator[list[_Decoded]]:
        while self.groups:
            yield self._pop(next(iter(self.groups)))

    def _pop(self, key: tuple[int, ...]) -> list[_Decoded]:
        batch = self.groups.pop(key)
        self.held -= len(batch)
        return batch


def _check_tile(tile: int, overlap: int, multiple: int) -> None:
    if tile < 1 or tile % multiple:
        nearest = max(multiple, round(tile / multiple) * multiple)
        raise ValueError(f"--tile {tile} must be a positive multiple of the model's size multiple {multiple}; "
                         f"use --tile {nearest}")
    if not 0 <= overlap < max(1, tile // 2):
        raise ValueError(f"--overlap {overlap} must be in 0..{max(0, tile // 2 - 1)} for --tile {tile}; "
                         f"e.g. --overlap {tile // 8}")


def _check_arguments(input_dir: Path, output_dir: Path, fmt: str, quality: int, png_compression: int,
                     batch_size: int, workers: int, max_pixels: int) -> None:
    if fmt not in OUTPUT_FORMATS:
        raise ValueError(f"--format {fmt!r} is not one of {', '.join(OUTPUT_FORMATS)}")
    if not 1 <= quality <= 100:
        raise ValueError(f"--quality must be in 1..100, got {quality}")
    if not 0 <= png_compression <= 9:
        raise ValueError(f"--png-compression must be in 0..9, got {png_compression}")
    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    if workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    if max_pixels < 1:
        raise ValueError(f"--max-pixels must be >= 1, got {max_pixels}")
    if not input_dir.is_dir():
        raise FileNotFoundError(f"input folder {str(input_dir)!r} does not exist")
    if output_dir == input_dir or input_dir in output_dir.parents:
        raise ValueError(f"output folder {str(output_dir)!r} is the input folder or inside it "
                         f"({str(input_dir)!r}); choose a folder outside it")


def convert_folder(input_dir: str | Path, output_dir: str | Path, model: str | Path, *,
                   direction: str | None = None, backend: str | None = "auto", precision: str = "auto",
                   device: str = "auto", provider: str | None = None, batch_size: int = 4,
                   workers: int | None = None, fmt: str = "png", quality: int = 95,
                   png_compression: int = 1, overwrite: bool = False,
                   resize: str | tuple[int, int] | int | None = None,
                   tile: int | None = None, overlap: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS,
                   shard: str | tuple[int, int] | None = None, report: str | Path | None = None,
                   on_progress: Callable[[ConvertProgress], None] | None = None,
                   prompt: str | None = None) -> ConvertSummary:
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
        resize: None (full resolution), N (shorter side to N, aspect kept) or (W, H) / "WxH".
        tile, overlap: run images in `tile` x `tile` pieces overlapping by `overlap` pixels (default
            tile // 8), blended across the overlap.
        max_pixels: larger images are reported as failed instead of exhausting memory.
        shard: "I/N" or (I, N): convert only shard I of N (default: RANK / WORLD_SIZE under torchrun).
        report: JSON report path (default: `output_dir/convert_report[.shardIofN].json`).
        on_progress: called with a ConvertProgress after each image.
        prompt: what a textcycle model translates to (required for one, refused for image models);
            embedded once and fed with every batch. Text models run in fp32.

    Raises:
        ValueError / FileNotFoundError: bad arguments, a missing input folder, no images, or an
            output folder inside the input folder (checked before any work).
    """
    started = time.perf_counter()
    input_dir, output_dir = Path(input_dir).resolve(), Path(output_dir).resolve()
    workers = workers if workers is not None else min(32, os.cpu_count() or 1)
    _check_arguments(input_dir, output_dir, fmt, quality, png_compression, batch_size, workers, max_pixels)
    resize_to = parse_resize(resize) if isinstance(resize, str) else resize
    shard_ix = parse_shard(shard) if isinstance(shard, str) else shard if shard is not None else shard_from_environment()
    if tile is not None:
        overlap = tile // 8 if overlap is None else overlap
        _check_tile(tile, overlap, 1)

    all_sources = list_images(input_dir, recursive=True)
    if not all_sources:
        raise FileNotFoundError(f"no images found under {str(input_dir)!r}")
    targets = output_paths(all_sources, input_dir, output_dir, fmt)  # whole listing: shards agree on names
    sources = [s for s in all_sources if in_shard(s.relative_to(input_dir).as_posix(), shard_ix)]
    # int8 calibration on images spread over the whole listing (representative of the folder, and
    # the same for every shard, so all shards quantise alike).
    step = max(1, len(all_sources) // 20)
    runner = make_backend(model, backend=backend, precision=precision, device=device, provider=provider,
                          direction=direction, calibration=all_sources[::step][:20], prompt=prompt)
    if tile is not None:
        _check_tile(tile, overlap, runner.size_multiple)

    summary = ConvertSummary(backend=runner.describe(), precision=runner.precision, prompt=prompt)
    setup_seconds = time.perf_counter() - started
    started = time.perf_counter()  # images/s counts the conversion, not the one-time export / quantisation
    todo: list[Path] = []
    for source in sources:
        target = targets[source]
        partial = _partial_path(target)
        if partial.exists():  # left by a killed run
            partial.unlink()
        if not overwrite and target.is_file() and target.stat().st_size > 0:
            summary.skipped.append(source)
        else:
            todo.append(source)
    logger.info("converting %d images with %s (%d already done)", len(todo), summary.backend,
                len(summary.skipped))

    lock = threading.Lock()
    prefetch = max(2 * workers, 2 * batch_size)
    write_slots = threading.BoundedSemaphore(prefetch)

    def report_progress() -> None:
        if on_progress is not None:
            done = len(summary.converted) + len(summary.failed)
            elapsed = time.perf_counter() - started
            on_progress(ConvertProgress(done, len(todo), len(summary.failed),
                                        len(summary.converted) / elapsed if elapsed > 0 else 0.0))

    def fail(source: Path, reason: str) -> None:
        logger.warning("cannot convert %s: %s", source, reason)
        with lock:
            summary.failed.append((source, reason))
            report_progress()

    def write(item: _Decoded, pixels: np.ndarray) -> None:
        try:
            _encode(pixels, item.alpha, targets[item.source], fmt, quality, png_compression)
            with lock:
                summary.converted.append(item.source)
                report_progress()
        except Exception as error:  # noqa: BLE001 - one unwritable file must not stop the folder
            fail(item.source, f"cannot write {targets[item.source]}: {error}")
        finally:
            write_slots.release()

    def run_batch(batch: list[_Decoded], writers: ThreadPoolExecutor) -> None:
        x = torch.stack([item.image for item in batch]).to(runner.device).float() / 127.5 - 1
        try:
            if tile is not None:
                from translate.deploy.tiling import translate_tiled

                with torch.inference_mode():
                    out = translate_tiled(runner, x, tile=tile, overlap=overlap,
                                          multiple=runner.size_multiple, max_batch=batch_size)
            else:
                out = translate_tensor(runner, x, runner.size_multiple)
        except (RuntimeError, MemoryError) as error:  # out of memory on a large image, mostly
            height, width = x.shape[-2:]
            hint = "; try --tile 512 or --resize" if "memory" in str(error).lower() else ""
            for item in batch:
                fail(item.source, f"inference failed at {width}x{height}: {str(error).splitlines()[0]}{hint}")
            return
        # Made contiguous on the device, so the writers get plain arrays (no strided copies).
        pixels = ((out.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1)
        pixels = pixels.contiguous().cpu().numpy()
        for item, image in zip(batch, pixels, strict=False):
            write_slots.acquire()
            writers.submit(write, item, image)

    channels = runner.input_channels
    batcher = _Batcher(batch_size, hold=4 * batch_size)
    with ThreadPoolExecutor(workers, thread_name_prefix="decode") as readers, \
            ThreadPoolExecutor(workers, thread_name_prefix="encode") as writers:
        pending: collections.deque[Future[_Decoded]] = collections.deque()
        queue = iter(todo)
        for source in queue:
            pending.append(readers.submit(_decode, source, channels, max_pixels, resize_to))
            if len(pending) >= prefetch:
                break
        while pending:
            item = pending.popleft().result()
            next_source = next(queue, None)
            if next_source is not None:
                pending.append(readers.submit(_decode, next_source, channels, max_pixels, resize_to))
            if item.error is not None:
                fail(item.source, item.error)
                continue
            for batch in batcher.add(item):
                run_batch(batch, writers)
        for batch in batcher.rest():
            run_batch(batch, writers)
    summary.seconds = time.perf_counter() - started
    summary.setup_seconds = setup_seconds
    summary.report = _write_report(summary, output_dir, input_dir, model, shard_ix, report)
    return summary


def _write_report(summary: ConvertSummary, output_dir: Path, input_dir: Path, model: str | Path,
                  shard: tuple[int, int] | None, report: str | Path | None) -> Path:
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
