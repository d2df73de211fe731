"""A self-contained demo: generate a small paired data set, train pix2pix on it, convert a folder.

The mapping to learn is a fixed colour transform (channels rotated and inverted) of images made of
random smooth blobs, so a few hundred CPU steps visibly learn it. Used by the README's first
command.
"""

from __future__ import annotations

import logging
import math
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from translate.deploy.convert import convert_folder
from translate.deploy.export import export_onnx
from translate.formats.locator import locate
from translate.training import make_config, train

logger = logging.getLogger(__name__)

DEMO_PAIRS = 32  # training pairs the demo generates


def blob_image(rng: np.random.Generator, size: int) -> np.ndarray:
    """An `(size, size, 3)` uint8 image of a few soft coloured blobs on a coloured background."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    image = np.ones((size, size, 3), np.float32) * rng.uniform(0, 1, 3)
    for _ in range(int(rng.integers(2, 6))):
        cy, cx = rng.uniform(0, 1, 2)
        radius = rng.uniform(0.08, 0.3)
        weight = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * radius**2))[..., None]
        image = image * (1 - weight) + weight * rng.uniform(0, 1, 3)
    return (image.clip(0, 1) * 255).round().astype(np.uint8)


def color_mapping(image: np.ndarray) -> np.ndarray:
    """The demo's ground-truth translation: rotate the RGB channels and invert the new red."""
    out = np.roll(image, 1, axis=2).copy()
    out[..., 0] = 255 - out[..., 0]
    return out


def make_paired_dataset(root: str | Path, n_train: int = 32, n_test: int = 8, size: int = 64,
                        seed: int = 0) -> Path:
    """Write `root/train/*.png` and `root/test/*.png`, each an A|B side-by-side pair."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    for phase, count in (("train", n_train), ("test", n_test)):
        (root / phase).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            a = blob_image(rng, size)
            Image.fromarray(np.concatenate([a, color_mapping(a)], axis=1)).save(root / phase / f"{i:04d}.png")
    return root


def make_unpaired_dataset(root: str | Path, n: int = 16, size: int = 64, seed: int = 0) -> Path:
    """Write `root/trainA`, `root/trainB` (unaligned: B comes from other source images)."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    for folder in ("trainA", "trainB", "testA", "testB"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(blob_image(rng, size)).save(root / "trainA" / f"a{i:04d}.png")
        Image.fromarray(color_mapping(blob_image(rng, size))).save(root / "trainB" / f"b{i:04d}.png")
    for i in range(max(2, n // 4)):
        Image.fromarray(blob_image(rng, size)).save(root / "testA" / f"a{i:04d}.png")
        Image.fromarray(color_mapping(blob_image(rng, size))).save(root / "testB" / f"b{i:04d}.png")
    return root


def contact_sheet(pairs: list[tuple[Path, Path]], out: Path, height: int = 128) -> Path:
    """One row per (input, output) pair, side by side, scaled to `height` pixels."""
    rows = []
    for source, result in pairs:
        images = [Image.open(p).convert("RGB") for p in (source, result)]
        images = [im.resize((max(1, im.width * height // im.height), height), Image.BICUBIC) for im in images]
        row = Image.new("RGB", (sum(im.width for im in images) + 4, height), "white")
        row.paste(images[0], (0, 0))
        row.paste(images[1], (images[0].width + 4, 0))
        rows.append(row)
    sheet = Image.new("RGB", (max(r.width for r in rows), len(rows) * (height + 4) - 4), "white")
    for i, row in enumerate(rows):
        sheet.paste(row, (0, i * (height + 4)))
    sheet.save(out)
    return out


def run_demo(out_dir: str | Path, steps: int = 300, size: int = 48, seed: int = 0,
             on_progress=None) -> dict[str, Path]:
    """Generate data, train a tiny pix2pix for `steps` steps, convert the test inputs.

    Returns the paths of the run, the converted folder and the contact sheet.
    """
    out_dir = Path(out_dir)
    if (out_dir / "run").exists():  # a previous demo: start it afresh
        shutil.rmtree(out_dir / "run")
    data = make_paired_dataset(out_dir / "data", n_train=DEMO_PAIRS, size=size, seed=seed)
    inputs = out_dir / "inputs"
    inputs.mkdir(parents=True, exist_ok=True)
    for path in sorted((data / "test").glob("*.png")):
        pair = Image.open(path)
        pair.crop((0, 0, pair.width // 2, pair.height)).save(inputs / path.name)
    config = make_config("pix2pix", overrides={
        "data": str(data), "out": str(out_dir / "run"), "netG": "resnet_6blocks", "norm": "batch",
        "gan_mode": "lsgan",
        "dropout": False, "ngf": 16, "ndf": 16, "preprocess": "none", "load_size": size,
        "crop_size": size, "batch_size": 4, "workers": 0, "n_epochs": math.ceil(steps / math.ceil(DEMO_PAIRS / 4)), "n_epochs_decay": 0,
        "max_steps": steps, "seed": seed, "device": "cpu", "sample_every": steps, "log_every": 50,
        "lr": 1e-3, "name_a": "blobs", "name_b": "recoloured"})
    result = train(config, on_progress=on_progress)
    converted = out_dir / "converted"
    convert_folder(inputs, converted, result.run_dir, backend="torch", precision="fp32", device="cpu",
                   overwrite=True)
    sources = sorted(inputs.glob("*.png"))
    sheet = contact_sheet([(s, converted / s.name) for s in sources], out_dir / "contact_sheet.png")
    logger.info("demo done: contact sheet %s", sheet)
    return {"run": result.run_dir, "converted": converted, "contact_sheet": sheet}


# The bundled image models the main job shows, in the contact sheet's order; those missing are skipped.
DEFAULT_BUNDLED_MODELS = ("maps_aerial2map", "horse2zebra_cut_ema")


def bundled_demo_models() -> list[str]:
    """The default bundled image models that this checkout has (with their samples/)."""
    names = []
    for name in DEFAULT_BUNDLED_MODELS:
        try:
            source = locate(name)
        except (FileNotFoundError, ValueError):
            continue
        if source.form == "weights" and not source.is_text and (source.path / "samples").is_dir():
            names.append(name)
    return names


def run_bundled_demo(out_dir: str | Path, models: list[str] | None = None) -> dict[str, Path]:
    """The deployment path on bundled models: export each to ONNX (parity-checked), convert its
    sample inputs on ONNX Runtime at full resolution, and write one input | output contact sheet.

    Args:
        models: names or paths of image weights folders with a samples/ folder (default: those of
            DEFAULT_BUNDLED_MODELS this checkout has).

    Returns the paths of the first .onnx file ("onnx"), every .onnx file ("onnx_files", a folder
    listing), the converted folder (one subfolder per model) and the contact sheet.
    """
    models = bundled_demo_models() if models is None else list(models)
    if not models:
        raise FileNotFoundError(f"none of the bundled models {', '.join(DEFAULT_BUNDLED_MODELS)} is here; "
                                "run the training demo instead (translate demo --train)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_files, pairs = [], []
    for model in models:
        onnx_path, model_pairs = _demo_one_model(model, out_dir)
        onnx_files.append(onnx_path)
        pairs += model_pairs
    sheet = contact_sheet(pairs, out_dir / "contact_sheet.png", height=256)
    return {"onnx": onnx_files[0], "onnx_files": onnx_files, "converted": out_dir / "converted",
            "contact_sheet": sheet}


def _demo_one_model(model: str, out_dir: Path) -> tuple[Path, list[tuple[Path, Path]]]:
    """Export `model` to out_dir/<name>.onnx and convert its samples into out_dir/converted/<name>/;
    returns the .onnx path and the (sample, converted) pairs."""
    folder = locate(model).path
    samples = folder / "samples"
    if not samples.is_dir():
        raise FileNotFoundError(f"bundled model {model!r} has no samples/ folder at {samples}")
    report = export_onnx(folder, out_dir / f"{folder.name}.onnx")
    logger.info("exported %s (max abs error vs PyTorch %.2g)", report.path, report.max_abs_error)
    converted = out_dir / "converted" / folder.name
    convert_folder(samples, converted, report.path, overwrite=True)
    sources = sorted(p for p in samples.iterdir() if p.is_file())
    return report.path, [(s, converted / (s.stem + ".png")) for s in sources]
