"""Bundle a trained model for shipping: a weights folder (float16 by default) with sample inputs
and a model card, and a measure of what the conversion costs.

The source is a training checkpoint, a run directory or a weights folder (e.g. a run's moving
average), image or text. The bundled folder holds `config.json` and `model.safetensors` (its
`source` records where it came from: the file, its SHA-256, step and epoch), `samples/` (the
first images of `samples`, which `translate demo` converts) and `README.md`, a card to complete
(written only when the folder has none, so a card's text is never lost).

The check: the bundled model against the float32 network it came from, on the same inputs: the
worst PSNR over the images, on [0, 1] (image models: the first `n` images of a folder or of a
paired split, each at its own size; text2image: generated images from fixed prompts and noise).

    report = bundle_model("runs/maps/checkpoints/latest.pt", "weights/maps_aerial2map",
                          images="datasets/maps/valA", samples="datasets/maps/valA")
    report.checks[0].worst_psnr_db   # e.g. 95.0
"""

from __future__ import annotations

import logging
import math
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from translate.core.errors import InvalidCombinationError, InvalidValueError, check_choice
from translate.core.files import sha256_file
from translate.core.images import from_uint8, pil_to_tensor
from translate.core.torch_files import torch_load_safely
from translate.data import PairedDataset, PreprocessConfig
from translate.data.images import list_images, load_image
from translate.deploy.inference import translate_tensor
from translate.formats.weights import load_with_config, save_weights
from translate.models import config_from_dict
from translate.text.model import find_text_model, load_text_model, save_text_model

logger = logging.getLogger(__name__)

__all__ = ["DTYPES", "BundleReport", "PrecisionCheck", "bundle_model"]

DTYPES = ("float16", "float32")
CARD_NAME = "README.md"
SAMPLES_NAME = "samples"
# Fixed prompts for the text2image check: any caption exercises the generator and its encoder.
CHECK_PROMPTS = ("a large red circle on the left", "a small green square at the top", "blue triangle, center")


@dataclass(frozen=True)
class PrecisionCheck:
    """The bundled model's outputs against the float32 network's on `images` inputs (`what`)."""

    what: str
    images: int
    worst_psnr_db: float


@dataclass(frozen=True)
class BundleReport:
    """What `bundle_model` wrote: the folder, its model's size in bytes (config.json +
    model.safetensors), the stored dtype, the provenance recorded in config.json, the checks run,
    the sample files copied and whether a card was written (False: the folder had one)."""

    folder: Path
    size_bytes: int
    dtype: str
    kind: str
    source: dict[str, Any]
    checks: list[PrecisionCheck] = field(default_factory=list)
    samples: list[Path] = field(default_factory=list)
    card_written: bool = False


def _worst_psnr(pairs: Iterable[tuple[Tensor, Tensor]]) -> tuple[float, int]:
    """Worst PSNR (dB, on [0, 1]) over (reference, converted) pairs of `(B, C, H, W)` in [-1, 1]."""
    worst, count = math.inf, 0
    for reference, converted in pairs:
        mse = ((reference.float() - converted.float()) ** 2).flatten(1).mean(dim=1) / 4  # on [0, 1]
        worst = min(worst, float((10 * torch.log10(1 / mse.clamp_min(1e-20))).min()))
        count += reference.shape[0]
    return worst, count


def _image_inputs(images: Path | None, data: Path | None, phase: str, direction: str | None,
                  n: int) -> list[tuple[str, list[Tensor]]]:
    """The check's inputs: (description, `(1, C, H, W)` tensors in [-1, 1]) per source given."""
    sources = []
    if images is not None:
        paths = list_images(images)[:n]
        sources.append((f"{len(paths)} images of {images}", [pil_to_tensor(load_image(p)) for p in paths]))
    if data is not None:
        dataset = PairedDataset(data, phase=phase, preprocess=PreprocessConfig(preprocess="none", flip=False))
        side = "b" if direction == "BtoA" else "a"
        items = [dataset[i] for i in range(min(n, len(dataset)))]
        tensors = [from_uint8(item[side])[None] for item in items if "error" not in item]
        sources.append((f"{len(tensors)} {phase} pairs of {data}", tensors))
    return sources


def _image_source(checkpoint: Path, config: dict[str, Any]) -> dict[str, Any]:
    """config.json's `source` for a bundle of `checkpoint` (a weights folder keeps its own record)."""
    if checkpoint.is_dir() and (checkpoint / "model.safetensors").is_file():
        return {**(config.get("source") or {}), "weights_folder": checkpoint.name,
                "sha256": sha256_file(checkpoint / "model.safetensors")}
    if checkpoint.is_file():
        state = torch_load_safely(checkpoint, "a training checkpoint file")
        return {"checkpoint": checkpoint.name, "sha256": sha256_file(checkpoint),
                "step": int(state["step"]), "epoch": int(state["epoch"])}
    return {**(config.get("source") or {}), "run": str(checkpoint)}


def _bundle_image_model(checkpoint: Path, out: Path, *, direction: str | None, dtype: str,
                        input_resize: int | None, inputs: list[tuple[str, list[Tensor]]]
                        ) -> tuple[dict[str, Any], dict[str, Any], list[PrecisionCheck]]:
    network, config = load_with_config(checkpoint, direction=direction)
    source = _image_source(checkpoint, config)
    save_weights(network, out, config_from_dict("generator", config["architecture"]), task=config.get("task"),
                 direction=config.get("direction"), domains=config.get("domains"), source=source,
                 dtype=getattr(torch, dtype), input_resize=input_resize)
    bundled, bundled_config = load_with_config(out)
    multiple = int(config.get("size_multiple", 1))
    checks = []
    for what, tensors in inputs:
        worst, count = _worst_psnr((translate_tensor(network, x, multiple), translate_tensor(bundled, x, multiple))
                                   for x in tensors)
        checks.append(PrecisionCheck(what, count, worst))
    return bundled_config, source, checks


def _bundle_text_model(checkpoint: Path, out: Path, *, dtype: str
                       ) -> tuple[dict[str, Any], dict[str, Any], list[PrecisionCheck]]:
    model = load_text_model(checkpoint)
    config = model.config
    source = {**config.get("source", {}), "run": str(checkpoint)}
    save_text_model(model.generator, model.text_encoder, out, kind=config["kind"],
                    architecture=config["architecture"], text_encoder_config=config["text_encoder"],
                    domains=config.get("domains"), source=source, dtype=getattr(torch, dtype))
    bundled = load_text_model(out)
    checks = []
    if config["kind"] == "text2image":
        prompts = list(CHECK_PROMPTS)
        worst, count = _worst_psnr([(model.generate(prompts, n=4, seed=0), bundled.generate(prompts, n=4, seed=0))])
        checks.append(PrecisionCheck(f"{count} generated images", count, worst))
    return bundled.config, source, checks


def _copy_samples(samples: Path, out: Path, n_samples: int) -> list[Path]:
    """The first `n_samples` images of `samples` copied into out/samples/ (flat, names kept)."""
    paths = list_images(samples)[:n_samples]
    if not paths:
        raise FileNotFoundError(f"no images in {str(samples)!r} to copy as the bundle's samples")
    folder = out / SAMPLES_NAME
    folder.mkdir(exist_ok=True)
    return [Path(shutil.copy2(path, folder / path.name)) for path in paths]


def _card(out: Path, config: dict[str, Any], size_bytes: int, checks: list[PrecisionCheck],
          samples: list[Path]) -> str:
    """A model card to complete: what the folder holds and was measured, and the sections to write."""
    architecture = config["architecture"]
    domains = config.get("domains") or {}
    if config["kind"] == "generator":
        what = f"{config.get('task') or 'image'}, {domains.get('source', 'A')} → {domains.get('target', 'B')}"
    else:
        what = config["kind"] + (f", domains {', '.join(domains)}" if domains else "")
    settings = ", ".join(f"{key} {value}" for key, value in architecture.items() if key != "name")
    source = ", ".join(f"{key} {value}" for key, value in (config.get("source") or {}).items()) or "not recorded"
    lines = [f"# {out.name} — {what}", "",
             f"`{architecture['name']}` ({settings}), stored in {config.get('dtype', 'float32')}: "
             f"{size_bytes / 1e6:.1f} MB. Source: {source}.", "",
             "```bash", f"translate info {out}", "```", "",
             "## Data", "", "(The data set, its splits and sizes, and its licence.)", "",
             "## Training", "", "(The `translate train` command, the schedule and the hardware.)", "",
             "## Measured", ""]
    lines += [f"- {config.get('dtype')} vs float32 outputs on {c.what}: worst PSNR {c.worst_psnr_db:.1f} dB"
              for c in checks] or ["(The `translate eval` figures, with the command that gave them.)"]
    if samples:
        lines += ["", f"Sample inputs in `{SAMPLES_NAME}/`: {', '.join(p.name for p in samples)}."]
    lines += ["", "## Limits", "", "(What the model was not trained for.)", ""]
    return "\n".join(lines)


def bundle_model(checkpoint: str | os.PathLike[str], out: str | os.PathLike[str], *, direction: str | None = None,
                 dtype: str = "float16", images: str | os.PathLike[str] | None = None,
                 data: str | os.PathLike[str] | None = None, phase: str = "val", n: int = 20,
                 input_resize: int | None = None, samples: str | os.PathLike[str] | None = None,
                 n_samples: int = 5) -> BundleReport:
    """Write `checkpoint`'s generator (or text model) as a bundled weights folder `out`.

    Args:
        checkpoint: a training checkpoint file, a run directory or a weights folder.
        direction: the CycleGAN generator to take ("AtoB" | "BtoA"; None when there is one).
        dtype: "float16" (half the file) or "float32".
        images, data, phase, n: the check's inputs (image models): the first `n` images of the
            folder `images`, and / or of the paired split `data/phase` (the side the model reads).
        input_resize: the shorter side `convert` scales inputs to by default (for a model trained
            on small crops); None: full resolution.
        samples, n_samples: copy the first `n_samples` images of this folder to out/samples/.

    Raises:
        FileNotFoundError / ValueError: no model at `checkpoint`, no images, bad values.
    """
    check_choice("dtype", dtype, DTYPES)
    for parameter, value in (("n", n), ("n_samples", n_samples)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidValueError(parameter, value, "a positive number of images")
    checkpoint, out = Path(checkpoint), Path(out)
    text = find_text_model(checkpoint) is not None
    image_options = {name: value for name, value in (("images", images), ("data", data),
                                                      ("input_resize", input_resize)) if value is not None}
    if text and image_options:
        given = ", ".join(f"{name}={str(value)!r}" for name, value in image_options.items())
        raise InvalidCombinationError(
            f"{checkpoint} is a text model: {given} apply to image models only (a text2image model is "
            "checked on generated images); leave them out", *image_options)
    if text:
        config, source, checks = _bundle_text_model(checkpoint, out, dtype=dtype)
    else:
        inputs = _image_inputs(Path(images) if images else None, Path(data) if data else None, phase, direction, n)
        config, source, checks = _bundle_image_model(checkpoint, out, direction=direction, dtype=dtype,
                                                     input_resize=input_resize, inputs=inputs)
    copied = _copy_samples(Path(samples), out, n_samples) if samples is not None else []
    size = sum((out / name).stat().st_size for name in ("config.json", "model.safetensors"))
    card_written = not (out / CARD_NAME).exists()
    if card_written:
        (out / CARD_NAME).write_text(_card(out, config, size, checks, copied), encoding="utf-8")
    for check in checks:
        logger.info("%s vs float32 outputs on %s: worst PSNR %.1f dB", dtype, check.what, check.worst_psnr_db)
    logger.info("bundled %s into %s (%.2f MB, %s)", checkpoint, out, size / 1e6, dtype)
    return BundleReport(out, size, dtype, config["kind"], source, checks, copied, card_written)
