"""Probe: which CPU inference path is fastest at >= 35 dB PSNR vs PyTorch eager float32 (issue 3, item 5).

Measures, side by side and interleaved in one process (the machine is shared, so only same-run
ratios mean anything): PyTorch eager float32, TorchScript freeze (+ oneDNN fusion), ONNX Runtime
float32 under several session options, and ONNX Runtime int8 (static QDQ / QOperator, dynamic).
Inputs are real aerial photos from ../shared/datasets/maps/val at 256x256; accuracy is PSNR on
[0, 1] against the eager float32 output, mean over the evaluation images.

    .venv/bin/python scripts/cpu_paths_probe.py                 # both models, ~5 minutes on 2 cores
    .venv/bin/python scripts/cpu_paths_probe.py --models bundled --rounds 3
"""

from __future__ import annotations

import argparse
import copy
import logging
import math
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_dynamic, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process
from PIL import Image
from torch import nn

import translate
from translate.models import GeneratorConfig, build_generator

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
MAPS_VAL = SHARED / "datasets" / "maps" / "val"
BUNDLED = REPO / "weights" / "maps_aerial2map"

# Forward pass: (B, 3, 256, 256) float32 in [-1, 1] -> (B, 3, 256, 256) float32 numpy.
RunFn = Callable[[np.ndarray], np.ndarray]


@dataclass
class Variant:
    """One inference path: its name, how to run it and what it measured."""

    name: str
    run: RunFn
    ms_per_image: list[float] = field(default_factory=list)
    psnr_db: float = float("nan")
    max_abs_error: float = float("nan")
    max_calls: int = 1_000_000
    max_eval: int = 1_000_000


# --- data ------------------------------------------------------------------------------------


def load_aerial(paths: list[Path], size: int) -> list[np.ndarray]:
    """The aerial half (left) of each A|B JPEG, resized: a list of `(1, 3, size, size)` float32 in [-1, 1]."""
    images = []
    for path in paths:
        with Image.open(path) as pair:
            pair = pair.convert("RGB")
            half = pair.width // 2
            aerial = pair.crop((0, 0, half, pair.height)).resize((size, size), Image.BICUBIC)
        array = np.asarray(aerial, dtype=np.float32).transpose(2, 0, 1) / 127.5 - 1.0
        images.append(array[None].copy())
    return images


def psnr_vs_reference(output: np.ndarray, reference: np.ndarray) -> float:
    """PSNR in dB of `(B, C, H, W)` outputs in [-1, 1], compared on the [0, 1] scale."""
    mse = float(np.mean(((output - reference) / 2.0) ** 2))
    return math.inf if mse == 0.0 else 10.0 * math.log10(1.0 / mse)


# --- models and exports ----------------------------------------------------------------------


def build_models(names: list[str]) -> dict[str, nn.Module]:
    """float32 eval generators by probe name: "bundled" (trained, ngf 32) and "ngf64" (random init)."""
    models: dict[str, nn.Module] = {}
    for name in names:
        if name == "bundled":
            models[name] = translate.load(BUNDLED).float().eval()
        elif name == "ngf64":
            torch.manual_seed(0)
            models[name] = build_generator(GeneratorConfig(name="resnet_9blocks", ngf=64)).float().eval()
        else:
            raise ValueError(f"unknown model {name!r}; expected 'bundled' or 'ngf64'")
    return models


def export_fp32(model: nn.Module, out_path: Path) -> None:
    """Plain float32 NCHW export, dynamic batch/height/width (the same graph `translate export` writes)."""
    example = torch.zeros(1, 3, 256, 256)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), str(out_path), dynamo=False, opset_version=20,
                          input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {0: "batch", 2: "height", 3: "width"},
                                        "output": {0: "batch", 2: "height", 3: "width"}})


def conv_node_names(onnx_path: Path) -> list[str]:
    """Names of the Conv / ConvTranspose nodes in graph order (the first is the stem, the last the head)."""
    graph = onnx.load(str(onnx_path)).graph
    return [node.name for node in graph.node if node.op_type in ("Conv", "ConvTranspose")]


class _Reader:
    """Calibration reader over `(1, 3, H, W)` float32 arrays."""

    def __init__(self, images: list[np.ndarray]) -> None:
        self._images = iter(images)

    def get_next(self) -> dict[str, np.ndarray] | None:
        image = next(self._images, None)
        return None if image is None else {"input": image}


def quantize(prepared: Path, out_path: Path, calib: list[np.ndarray], cache: Path, *, fmt: str,
             activation: str, exclude: list[str], skip_norm: bool) -> None:
    """Static int8 quantisation, per-channel int8 weights, MinMax calibration on `calib`."""
    # The tool logs a warning per rank-1 InstanceNormalization scale ("Axis 1 is out-of-range"): noise.
    logging.getLogger().setLevel(logging.ERROR)
    op_types = None
    if skip_norm:
        op_types = ["Conv", "ConvTranspose", "Relu", "Pad", "Add", "Mul", "Clip"]
    quantize_static(
        str(prepared), str(out_path), calibration_data_reader=_Reader(calib),
        quant_format=QuantFormat.QDQ if fmt == "qdq" else QuantFormat.QOperator,
        per_channel=True, reduce_range=False,
        activation_type=QuantType.QUInt8 if activation == "u8" else QuantType.QInt8,
        weight_type=QuantType.QInt8, nodes_to_exclude=exclude or None, op_types_to_quantize=op_types,
        calibrate_method=CalibrationMethod.MinMax, calibration_cache_path=str(cache),
    )


def ort_runner(onnx_path: Path, *, threads: int, spinning: bool, level: str = "all") -> RunFn:
    """A CPUExecutionProvider session, sequential execution, as a RunFn."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = {"all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
                                        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED}[level]
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    options.log_severity_level = 3
    session = ort.InferenceSession(str(onnx_path), sess_options=options, providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"input": x})[0]


def torch_runner(model: nn.Module) -> RunFn:
    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(x)).numpy()
    return run


def jit_runner(model: nn.Module, *, onednn: bool) -> RunFn:
    """torch.jit.freeze(torch.jit.trace(model)); oneDNN graph fusion toggled globally at call time."""
    example = torch.zeros(1, 3, 256, 256)
    with torch.no_grad():
        frozen = torch.jit.freeze(torch.jit.trace(model, example).eval())

    def run(x: np.ndarray) -> np.ndarray:
        torch.jit.enable_onednn_fusion(onednn)
        try:
            with torch.no_grad():
                return frozen(torch.from_numpy(x)).numpy()
        finally:
            torch.jit.enable_onednn_fusion(False)
    # The profiling executor specialises on the first calls: warm it before timing.
    for _ in range(3):
        run(example.numpy())
    return run


# --- the probe -------------------------------------------------------------------------------


def build_variants(model: nn.Module, work: Path, calib: list[np.ndarray], threads: int,
                   full: bool) -> list[Variant]:
    """All paths for one model. `full=False` keeps the fastest-looking subset (for the big model)."""
    fp32 = work / "fp32.onnx"
    export_fp32(model, fp32)
    prepared = work / "prep.onnx"
    quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
    convs = conv_node_names(prepared)
    first_last = [convs[0], convs[-1]]
    cache = work / "calib.json"

    # Measured once and dropped from the default list (no gain here): eager channels_last 0.94-0.97x,
    # plain jit.freeze 0.98-1.29x, QDQ with int8 activations (s8/s8) slower than u8/s8 at equal PSNR.
    variants = [Variant("torch eager fp32", torch_runner(model)),
                Variant("torch jit.freeze + oneDNN fusion", jit_runner(copy.deepcopy(model), onednn=True)),
                Variant("ORT fp32 spin=1", ort_runner(fp32, threads=threads, spinning=True)),
                Variant("ORT fp32 spin=0", ort_runner(fp32, threads=threads, spinning=False))]
    int8_recipes: list[tuple[str, dict]] = [
        ("ORT int8 QDQ u8/s8 pc", dict(fmt="qdq", activation="u8", exclude=[], skip_norm=False)),
        ("ORT int8 QDQ u8/s8 pc, fp32 IN+stem+head",
         dict(fmt="qdq", activation="u8", exclude=first_last, skip_norm=True)),
        ("ORT int8 QOperator u8/s8 pc", dict(fmt="qop", activation="u8", exclude=[], skip_norm=False)),
        ("ORT int8 QOperator u8/s8 pc, fp32 stem+head",
         dict(fmt="qop", activation="u8", exclude=first_last, skip_norm=False)),
    ]
    if not full:
        int8_recipes = [int8_recipes[0], int8_recipes[2]]
    for index, (name, recipe) in enumerate(int8_recipes):
        out = work / f"int8_{index}.onnx"
        quantize(prepared, out, calib, cache, **recipe)
        # Spinning threads help an idle machine and hurt a contended one: both, for the plain recipes.
        for spinning in (True,) if ("QDQ" in name and "stem" in name) else (True, False):
            variants.append(Variant(f"{name} spin={int(spinning)}",
                                    ort_runner(out, threads=threads, spinning=spinning)))
    if full:
        dynamic = work / "dynamic.onnx"
        quantize_dynamic(str(prepared), str(dynamic), per_channel=True)
        # 5-15x slower than eager: one timed call and two accuracy images are enough to rank it.
        variants.append(Variant("ORT int8 dynamic (ConvInteger)", ort_runner(dynamic, threads=threads,
                                                                              spinning=True), max_calls=1, max_eval=2))
    return variants


def measure(variants: list[Variant], evaluation: list[np.ndarray], timing: list[np.ndarray], *,
            rounds: int, iters: int) -> None:
    """Accuracy vs the first variant, then interleaved timing rounds (median ms/image per variant)."""
    reference = [variants[0].run(x) for x in evaluation]
    for variant in variants:
        outputs = [variant.run(x) for x in evaluation[:variant.max_eval]]
        variant.psnr_db = statistics.fmean(psnr_vs_reference(o, r) for o, r in zip(outputs, reference, strict=False))
        variant.max_abs_error = max(float(np.abs(o - r).max()) for o, r in zip(outputs, reference, strict=False))
    batch = timing[0].shape[0]
    # The accuracy pass above is the warm-up. Each call is timed on its own: under contention from
    # other users the per-call median is steadier than a mean over a block of calls.
    for round_index in range(rounds):
        # Rotate the start so no variant always runs right after the same neighbour.
        shift = round_index % len(variants)
        for variant in variants[shift:] + variants[:shift]:
            for i in range(iters):
                if len(variant.ms_per_image) >= variant.max_calls:
                    break
                start = time.perf_counter()
                variant.run(timing[(round_index * iters + i) % len(timing)])
                variant.ms_per_image.append((time.perf_counter() - start) * 1000.0 / batch)


def print_table(title: str, variants: list[Variant]) -> None:
    base = statistics.median(variants[0].ms_per_image)
    print(f"\n## {title}")
    best = min(variants[0].ms_per_image)
    print(f"| {'variant':<48} | ms/image | vs eager fp32 | min-vs-min | PSNR dB | max abs err |")
    print(f"|{'-' * 50}|---------:|--------------:|-----------:|--------:|------------:|")
    for v in variants:
        ms = statistics.median(v.ms_per_image)
        psnr = "inf" if math.isinf(v.psnr_db) else f"{v.psnr_db:.1f}"
        print(f"| {v.name:<48} | {ms:8.1f} | {base / ms:12.2f}x | {best / min(v.ms_per_image):9.2f}x "
              f"| {psnr:>7} | {v.max_abs_error:11.4f} |")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["bundled", "ngf64"], choices=["bundled", "ngf64"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iters", type=int, default=2, help="timed calls per variant per round")
    parser.add_argument("--calib", type=int, default=16, help="calibration images")
    parser.add_argument("--eval", type=int, default=8, help="accuracy images (disjoint from calibration)")
    parser.add_argument("--batch4", default="auto",
                        help="variant name to also time at batch 4 ('auto': the fastest at >= 35 dB; 'none')")
    args = parser.parse_args()

    if not MAPS_VAL.is_dir():
        raise SystemExit(f"maps val images not found at {MAPS_VAL}; the probe needs ../shared")
    torch.set_num_threads(args.threads)
    files = sorted(MAPS_VAL.glob("*.jpg"), key=lambda p: int(p.stem) if p.stem.isdigit() else p.stem)
    calib = load_aerial(files[:args.calib], 256)
    evaluation = load_aerial(files[args.calib:args.calib + args.eval], 256)
    print(f"torch {torch.__version__}, threads {args.threads}; calib {len(calib)} / eval {len(evaluation)} "
          f"real aerial images at 256x256; {args.rounds} rounds x {args.iters} calls, median")

    started = time.perf_counter()
    for model_name, model in build_models(args.models).items():
        with tempfile.TemporaryDirectory() as tmp:
            variants = build_variants(model, Path(tmp), calib, args.threads, full=(model_name == "bundled"))
            print(f"(setup {model_name}: {time.perf_counter() - started:.0f} s)")
            # The random-init big model only needs a few images for PSNR: it is there for speed.
            images = evaluation if model_name == "bundled" else evaluation[:2]
            measure(variants, images, images, rounds=args.rounds,
                    iters=args.iters if model_name == "bundled" else 1)
            print_table(f"{model_name} (resnet_9blocks), batch 1", variants)
            if args.batch4 != "none" and model_name == "bundled":
                good = [v for v in variants[1:] if v.psnr_db >= 35.0]
                chosen = (min(good, key=lambda v: statistics.median(v.ms_per_image)) if args.batch4 == "auto"
                          else next(v for v in variants if v.name == args.batch4))
                pair = [Variant(variants[0].name, variants[0].run), Variant(chosen.name, chosen.run)]
                batched = [np.concatenate(evaluation[i:i + 4]) for i in range(0, len(evaluation) - 3, 4)]
                measure(pair, batched, batched, rounds=args.rounds, iters=1)
                print_table(f"{model_name}, batch 4", pair)
        print(f"(elapsed {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
