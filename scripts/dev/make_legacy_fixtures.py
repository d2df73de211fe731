"""Write tiny models with a given checkout of translate, for tests that newer code still reads them.

Two fixtures were written this way, one per release, and tests/formats/test_legacy_formats.py runs
every check on both: tests/fixtures/legacy_7ce1752/ and tests/fixtures/legacy_f926d17/. For a
release `<commit>`:

    git worktree add /tmp/legacy_<commit> <commit>
    python -m scripts.dev.make_legacy_fixtures --checkout /tmp/legacy_<commit> --out tests/fixtures/legacy_<commit>
    git worktree remove /tmp/legacy_<commit> --force

then add `<commit>` to `RELEASES` in tests/helpers/legacy.py.

With `--checkout` the script runs itself again with that checkout first on the path (and as the
working directory), so every file below is written by the old code, through its command line
(`python -m translate train ...`, `... export ...`) and its Python API (the recorded outputs). The
folder it fills (about 1 MB):

- `cyclegan_run/`: a CycleGAN run directory (config.yaml, log.jsonl, checkpoints/latest.pt,
  weights/AtoB and weights/BtoA), 2 steps of resnet_6blocks with ngf 2; tensorboard/ and
  samples/ are dropped, and so is the per-epoch copy of the checkpoint.
- `cyclegan_data/`: its training images (2 per domain, 32 px), for resuming the run.
- `pix2pix_weights/`: the weights folder of a 2-step pix2pix run (unet_128, ngf 2, batch norm,
  one channel in and out).
- `cyclegan_AtoB_uint8.onnx`: the run's AtoB generator exported with `--io uint8`.
- `textcycle_weights/`, `text2image_weights/`: text model weights folders (byte encoder, dim 8).
- `expected.safetensors`: the old code's outputs on fixed inputs (keys in `manifest.json`), and
  `manifest.json`: the checkout's commit, the prompts and the seed used.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

PROMPTS = {"textcycle": "a map", "text2image": "a red circle"}
SEED = 0
COMMON = ["--max-steps", "2", "--batch-size", "1", "--workers", "0", "--device", "cpu", "--seed", "0",
          "--n-epochs", "1", "--n-epochs-decay", "1", "--save-epoch-freq", "1", "--sample-every", "1000",
          "--no-amp", "--ndf", "2", "--n-layers-D", "1"]


def _random_images(folder: Path, count: int, size: tuple[int, int], rng: np.random.Generator,
                   captions: list[str] | None = None) -> None:
    """`count` random RGB PNGs of `size` (width, height) in `folder`, each with a caption .txt if given."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i}.png")
        if captions:
            (folder / f"{i}.txt").write_text(captions[i % len(captions)] + "\n", encoding="utf-8")


def _make_data(root: Path, out: Path) -> dict[str, Path]:
    rng = np.random.default_rng(SEED)
    data = {"cyclegan": out / "cyclegan_data", "pix2pix": root / "pix2pix", "textcycle": root / "textcycle",
            "text2image": root / "text2image"}
    for domain in ("trainA", "trainB"):
        _random_images(data["cyclegan"] / domain, 2, (32, 32), rng)
    _random_images(data["pix2pix"] / "train", 2, (256, 128), rng)  # side by side: A | B
    for domain, prompts in (("aerial", "an aerial photo\nsatellite image\n"), ("map", "a map\na street map\n")):
        _random_images(data["textcycle"] / domain, 2, (32, 32), rng)
        (data["textcycle"] / domain / "prompts.txt").write_text(prompts, encoding="utf-8")
    _random_images(data["text2image"], 4, (32, 32), rng, captions=["a red circle", "a blue square"])
    return data


def _cli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "translate", *args], check=True)


def _train(root: Path, data: dict[str, Path]) -> dict[str, Path]:
    runs = {task: root / f"run_{task}" for task in data}
    size = ["--load-size", "32", "--crop-size", "32"]
    _cli("train", "cyclegan", "--data", str(data["cyclegan"]), "--out", str(runs["cyclegan"]), *COMMON, *size,
         "--netG", "resnet_6blocks", "--ngf", "2", "--netD", "n_layers", "--pool-size", "2")
    _cli("train", "pix2pix", "--data", str(data["pix2pix"]), "--out", str(runs["pix2pix"]), *COMMON,
         "--load-size", "128", "--crop-size", "128", "--netG", "unet_128", "--ngf", "2", "--netD", "n_layers",
         # One channel each side: a 128 px output (the least unet_128 takes) stays small to record.
         "--input-nc", "1", "--output-nc", "1")
    text = ["--text-encoder", "byte", "--text-dim", "8", "--ngf", "2", "--netD", "projection"]
    _cli("train", "textcycle", "--data", str(data["textcycle"]), "--out", str(runs["textcycle"]),
         *COMMON, *size, *text, "--netG", "text_resnet_6blocks", "--pool-size", "2")
    _cli("train", "text2image", "--data", str(data["text2image"]), "--out", str(runs["text2image"]),
         *COMMON, *size, *text, "--noise-dim", "8", "--pretrain-text-steps", "0", "--lambda-match", "0",
         "--match-bank", "0", "--lambda-ma-gp", "0", "--ema-decay", "0.5")
    return runs


def _copy_outputs(runs: dict[str, Path], out: Path) -> None:
    run = out / "cyclegan_run"
    run.mkdir()
    for name in ("config.yaml", "log.jsonl"):
        shutil.copy2(runs["cyclegan"] / name, run / name)
    (run / "checkpoints").mkdir()
    shutil.copy2(runs["cyclegan"] / "checkpoints" / "latest.pt", run / "checkpoints" / "latest.pt")
    shutil.copytree(runs["cyclegan"] / "weights", run / "weights")
    shutil.copytree(runs["pix2pix"] / "weights" / "AtoB", out / "pix2pix_weights")
    shutil.copytree(runs["textcycle"] / "weights" / "textcycle", out / "textcycle_weights")
    shutil.copytree(runs["text2image"] / "weights" / "text2image", out / "text2image_weights")
    _cli("export", str(run), str(out / "cyclegan_AtoB_uint8.onnx"), "--direction", "AtoB", "--io", "uint8")


def _record(out: Path) -> dict[str, str]:
    """The old code's outputs on fixed inputs: float tensors in [-1, 1], uint8 arrays for ONNX."""
    # Imported here, not at the top: `main` runs this in a process with the checkout on the path.
    import translate
    from translate.text.model import load_text_model

    # Inputs are stored as uint8 (a quarter of the size); x / 127.5 - 1 maps them to [-1, 1] exactly.
    generator = torch.Generator().manual_seed(SEED)
    uint8_32 = torch.randint(0, 256, (1, 3, 32, 32), generator=generator, dtype=torch.uint8)
    uint8_128 = torch.randint(0, 256, (1, 1, 128, 128), generator=generator, dtype=torch.uint8)
    image_32, image_128 = uint8_32.float() / 127.5 - 1, uint8_128.float() / 127.5 - 1
    uint8_nhwc_32 = uint8_32.permute(0, 2, 3, 1).contiguous()
    run = out / "cyclegan_run"
    with torch.no_grad():
        tensors = {
            "input_32": uint8_32, "input_128": uint8_128,
            "cyclegan_AtoB": translate.load(run / "weights" / "AtoB")(image_32),
            "cyclegan_BtoA": translate.load(run / "weights" / "BtoA")(image_32),
            "cyclegan_checkpoint_BtoA": translate.load(run / "checkpoints" / "latest.pt", direction="BtoA")(image_32),
            "pix2pix": translate.load(out / "pix2pix_weights")(image_128),
            "onnx_uint8": torch.from_numpy(translate.Translator(out / "cyclegan_AtoB_uint8.onnx", device="cpu")(
                uint8_nhwc_32.numpy())),
            "textcycle": load_text_model(out / "textcycle_weights").translate(image_32, PROMPTS["textcycle"]),
            "text2image": load_text_model(out / "text2image_weights").generate([PROMPTS["text2image"]], n=2,
                                                                             seed=SEED),
        }
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(out / "expected.safetensors"))
    return {
        "input_32": "(1, 3, 32, 32) uint8; x / 127.5 - 1 is the cyclegan and textcycle input, "
                    "x.permute(0, 2, 3, 1) the ONNX file's (NHWC uint8)",
        "input_128": "(1, 1, 128, 128) uint8; x / 127.5 - 1 is the pix2pix input",
        "cyclegan_AtoB": "translate.load(cyclegan_run/weights/AtoB)(input_32)",
        "cyclegan_BtoA": "translate.load(cyclegan_run/weights/BtoA)(input_32)",
        "cyclegan_checkpoint_BtoA": "translate.load(cyclegan_run/checkpoints/latest.pt, direction='BtoA')(input_32)",
        "pix2pix": "translate.load(pix2pix_weights)(input_128)",
        "onnx_uint8": "translate.Translator(cyclegan_AtoB_uint8.onnx)(input_32 as NHWC numpy), (1, 32, 32, 3) uint8",
        "textcycle": "load_text_model(textcycle_weights).translate(input_32, prompts['textcycle'])",
        "text2image": "load_text_model(text2image_weights).generate([prompts['text2image']], n=2, seed=seed)",
    }


def _commit(checkout: Path) -> str:
    try:
        return subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], check=True, capture_output=True,
                              text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def make_fixtures(out: Path) -> None:
    """Write the fixture folder `out` (it must not exist) with the `translate` importable now."""
    import translate  # the checkout's (see `_record`)

    checkout = Path(translate.__file__).resolve().parent.parent
    out.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="legacy_fixtures_") as tmp:
        root = Path(tmp)
        runs = _train(root, _make_data(root, out))
        _copy_outputs(runs, out)
    keys = _record(out)
    manifest = {"commit": _commit(checkout), "toolkit_version": translate.__version__, "seed": SEED,
                "prompts": PROMPTS, "expected": keys}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="Folder to create.")
    parser.add_argument("--checkout", type=Path, help="Run with the translate of this checkout.")
    args = parser.parse_args()
    out = args.out.resolve()
    if out.exists():
        parser.error(f"{out} exists; remove it first")
    if args.checkout is not None:
        checkout = args.checkout.resolve()
        env = {**os.environ, "PYTHONPATH": str(checkout), "OMP_NUM_THREADS": "1"}
        code = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--out", str(out)], cwd=checkout,
                              env=env, check=False).returncode
        sys.exit(code)
    make_fixtures(out)
    print(f"fixtures in {out}")


if __name__ == "__main__":
    main()
