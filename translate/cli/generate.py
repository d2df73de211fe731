"""`translate generate`: images from captions with a text2image model."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from translate.cli.common import library_errors
from translate.formats.locator import locate


def generate(
    model: Path = typer.Option(..., "--model", help="A text2image weights folder, run directory or exported .onnx file."),
    prompt: list[str] = typer.Option(..., "--prompt", help="What to draw; repeat for several prompts."),
    n: int = typer.Option(1, "-n", "--n", help="Images per prompt."),
    out: Path = typer.Option(Path("generated"), "--out", help="Folder for the PNG files."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Noise seed, for repeatable images."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | mps."),
) -> None:
    """Generate images from captions with a text2image model (PyTorch weights or its .onnx export)."""
    from translate.core.device import pick_device
    from translate.core.images import tensor_to_pil
    from translate.deploy.text_export import OnnxTextModel
    from translate.text.model import load_text2image

    with library_errors():
        source = locate(model)
        if source.is_onnx:
            t2i = OnnxTextModel(source.path)
        else:
            t2i = load_text2image(source.path, device=pick_device(device))
        images = t2i.generate(list(prompt), n=n, seed=seed)
    out.mkdir(parents=True, exist_ok=True)
    for index, image in enumerate(images):
        text = prompt[index // n]
        stem = "".join(ch if ch.isalnum() else "_" for ch in text.lower())[:60].strip("_") or "prompt"
        path = out / f"{index // n:03d}_{stem}_{index % n:02d}.png"
        tensor_to_pil(image.cpu()).save(path)
    typer.echo(f"wrote {len(images)} images to {out}")
