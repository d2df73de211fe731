"""int8 ONNX models for CPUs with VNNI: static quantisation calibrated on real images, checked.

    path, psnr = int8_copy(locate("weights/maps_aerial2map"), direction=None,
                           images=sorted(Path("photos").glob("*.jpg")), channels=3)

Recipe (measured on the CPU, docs/benchmarks.md "Where int8 comes from"): ONNX Runtime's static
quantisation in QOperator form, int8 weights per output channel, uint8 activations, MinMax ranges
from up to 16 images; the first and the last convolution (the 7x7 stem that reads pixels and the
head that writes them) stay float32, because their error shows directly in the output. Instance
normalisation has no int8 kernel and stays float32. On a 2-core Xeon with AVX-512 VNNI this runs
the bundled resnet_9blocks 2.1x faster than PyTorch float32 at 56 dB PSNR.

Quantisation can fail badly on some models (a random-init ngf 64 resnet gave 24 dB), so every int8
copy is checked against the float32 model on held-out images and refused below MIN_PSNR_DB.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process
from PIL import Image

from translate.core.files import atomic_write
from translate.core.images import pil_to_tensor
from translate.core.paths import cache_dir
from translate.data.images import ImageReadError, load_image
from translate.deploy.onnx_cache import onnx_copy
from translate.deploy.sessions import ort_session
from translate.formats.locator import ModelSource

logger = logging.getLogger(__name__)

MIN_PSNR_DB = 35.0
CALIBRATION_IMAGES = 16
CHECK_IMAGES = 4
CALIBRATION_SIZE = 256


class Int8AccuracyError(ValueError):
    """The int8 copy differs from float32 by more than MIN_PSNR_DB allows."""


def calibration_arrays(images: Sequence[Path], channels: int, size: int = CALIBRATION_SIZE) -> list[np.ndarray]:
    """Images -> `(1, C, size, size)` float32 in [-1, 1]: shorter side scaled to `size`, center crop.
    Unreadable files are skipped."""
    arrays = []
    for path in images:
        try:
            image = load_image(path, channels)
        except ImageReadError:
            continue
        scale = size / min(image.size)
        width, height = max(size, round(image.width * scale)), max(size, round(image.height * scale))
        image = image.resize((width, height), Image.Resampling.BICUBIC)
        left, top = (width - size) // 2, (height - size) // 2
        arrays.append(pil_to_tensor(image.crop((left, top, left + size, top + size))).numpy())
    return arrays


class _Reader:
    def __init__(self, arrays: list[np.ndarray], input_name: str) -> None:
        self._arrays, self._input_name = iter(arrays), input_name

    def get_next(self) -> dict[str, np.ndarray] | None:
        array = next(self._arrays, None)
        return None if array is None else {self._input_name: array}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two arrays in [-1, 1], on the [0, 1] scale."""
    mse = float(np.mean(((a - b) / 2) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


def quantize_int8(fp32_path: Path, out_path: Path, calibration: list[np.ndarray]) -> None:
    """Write the int8 copy of a float32 ONNX generator, with its metadata (precision "int8")."""
    if not calibration:
        raise ValueError("int8 quantisation needs calibration images; none could be read")
    work = out_path.with_name(out_path.name + ".work")
    work.mkdir(parents=True, exist_ok=True)
    prepared = work / "prepared.onnx"
    quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
    model = onnx.load(str(prepared))
    convs = [node.name for node in model.graph.node if node.op_type in ("Conv", "ConvTranspose")]
    quantised = work / "int8.onnx"
    # The tool logs a warning per rank-1 normalisation scale; they are expected here.
    quiet = logging.getLogger("root"), logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)
    try:
        quantize_static(str(prepared), str(quantised),
                        calibration_data_reader=_Reader(calibration, model.graph.input[0].name),
                        quant_format=QuantFormat.QOperator, per_channel=True, reduce_range=False,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        nodes_to_exclude=[convs[0], convs[-1]] if len(convs) > 2 else None,
                        calibrate_method=CalibrationMethod.MinMax)
    finally:
        logging.getLogger().setLevel(quiet[1])
    result = onnx.load(str(quantised))
    source = onnx.load(str(fp32_path), load_external_data=False)
    del result.metadata_props[:]
    for prop in source.metadata_props:
        result.metadata_props.add(key=prop.key, value="int8" if prop.key == "precision" else prop.value)
    atomic_write(out_path, lambda tmp: onnx.save(result, str(tmp)))
    for path in work.iterdir():
        path.unlink()
    work.rmdir()


def check_int8(fp32_path: Path, int8_path: Path, arrays: list[np.ndarray]) -> float:
    """Worst PSNR (dB) of the int8 model's outputs against the float32 model's on `arrays`."""
    reference, candidate = ort_session(fp32_path), ort_session(int8_path)
    name = reference.get_inputs()[0].name
    return min(psnr(reference.run(None, {name: x})[0], candidate.run(None, {name: x})[0]) for x in arrays)


def int8_copy(source: ModelSource, *, direction: str | None, images: Sequence[Path],
              channels: int) -> tuple[Path, float]:
    """The checked int8 ONNX copy of `source` (a located model), calibrated on the first
    CALIBRATION_IMAGES of `images` and checked on the next CHECK_IMAGES (or on the calibration
    images when there are no more).

    Cached beside the float32 copy, keyed by the weights and the calibration files, with the
    check's figure (NAME.psnr.json), so a reused copy is neither re-quantised nor re-checked.

    Raises:
        Int8AccuracyError: worst PSNR below MIN_PSNR_DB (the copy is not kept).
        ValueError: no readable calibration image.
    """
    fp32_path = onnx_copy(source, direction=direction, precision="fp32")
    chosen = list(images)[: CALIBRATION_IMAGES + CHECK_IMAGES]
    key = hashlib.sha256()
    for path in chosen:
        stat = Path(path).stat()
        key.update(f"{Path(path).name}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    out_path = cache_dir() / "onnx" / f"{fp32_path.stem}-int8-{key.hexdigest()[:12]}.onnx"
    checked = out_path.with_suffix(".psnr.json")  # the check's figure: a reused copy is not re-checked
    if out_path.is_file() and checked.is_file():
        worst = float(json.loads(checked.read_text())["worst_psnr_db"])
        held_out_count = int(json.loads(checked.read_text())["images"])
    else:
        calibration = calibration_arrays(chosen[:CALIBRATION_IMAGES], channels)
        held_out = calibration_arrays(chosen[CALIBRATION_IMAGES:], channels) or calibration[:CHECK_IMAGES]
        logger.info("quantising %s to int8 on %d images (once; later runs reuse it)", source.requested,
                    len(calibration))
        quantize_int8(fp32_path, out_path, calibration)
        worst, held_out_count = check_int8(fp32_path, out_path, held_out), len(held_out)
        checked.write_text(json.dumps({"worst_psnr_db": worst, "images": held_out_count}) + "\n")
    if worst < MIN_PSNR_DB:
        out_path.unlink()
        checked.unlink()
        raise Int8AccuracyError(f"int8 changes this model's outputs too much: worst PSNR {worst:.1f} dB against "
                                f"float32 on {held_out_count} images (need >= {MIN_PSNR_DB:.0f} dB); "
                                'use precision="fp32"')
    logger.info("int8 copy %s: worst PSNR %.1f dB against float32", out_path.name, worst)
    return out_path, worst
