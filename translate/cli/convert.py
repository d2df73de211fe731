"""`translate convert`: translate every image of a folder."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from translate.cli.common import convert_progress, library_errors

# convert_folder's parameters whose flag is not `--name-with-dashes`.
FLAGS = {"input_dir": "INPUT_DIR", "output_dir": "OUTPUT_DIR", "fmt": "--format", "format": "--format"}


def convert(
    input_dir: Path = typer.Argument(..., help="Folder of images (searched recursively)."),
    output_dir: Path = typer.Argument(..., help="Where the translated images go (same relative paths); not inside INPUT_DIR."),
    model: Path = typer.Option(..., "--model", help="Weights folder, run directory, checkpoint, .onnx file or bundled model name."),
    direction: Optional[str] = typer.Option(None, "--direction", help="AtoB | BtoA (CycleGAN runs)."),
    backend: str = typer.Option("auto", "--backend", help="auto | onnxruntime | torch. auto: onnxruntime, or torch where the precision is bf16."),
    precision: str = typer.Option("auto", "--precision", help="auto | fp32 | fp16 | bf16 | int8. auto: fp16 on a GPU, bf16 on CPUs with native bf16, int8 (checked >= 35 dB) on CPUs with VNNI, else fp32."),
    provider: Optional[str] = typer.Option(None, "--provider", help="Force an ONNX Runtime provider: tensorrt | cuda | cpu (default: the best available)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | mps."),
    batch_size: int = typer.Option(4, "--batch-size", help="Images per model call (images of one size)."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Decode threads, and as many encode threads (default: CPU count, at most 32)."),
    fmt: str = typer.Option("png", "--format", help="png | jpg | webp."),
    quality: int = typer.Option(95, "--quality", help="jpg / webp quality (1-100)."),
    png_compression: int = typer.Option(1, "--png-compression", help="png zlib level 0-9 (1: fast, ~15% larger than 6)."),
    resize: Optional[str] = typer.Option(None, "--resize", help="N (shorter side to N, aspect kept), WxH or native; default: the model's input_resize if its card gives one, else full resolution."),
    tile: Optional[int] = typer.Option(None, "--tile", help="Run large images in SIZE x SIZE tiles with blended seams."),
    overlap: Optional[int] = typer.Option(None, "--overlap", help="Pixels shared by neighbouring tiles (default: tile / 8)."),
    max_pixels: int = typer.Option(100_000_000, "--max-pixels", help="Images with more pixels are reported as failed."),
    shard: Optional[str] = typer.Option(None, "--shard", help="I/N: convert shard I (from 0) of N; default RANK/WORLD_SIZE under torchrun."),
    report: Optional[Path] = typer.Option(None, "--report", help="JSON report path (default OUTPUT_DIR/convert_report.json)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Redo outputs that already exist."),
    prompt: Optional[str] = typer.Option(None, "--prompt", help="textcycle models: what to translate to (e.g. \"map\"); embedded once."),
) -> None:
    """Translate every image of a folder at full resolution: decoding, inference and encoding overlap.

    Exit status: 0 all converted (or already done), 1 some files failed (listed in the report), 2 bad arguments."""
    from translate.deploy.convert import convert_folder

    update, close = convert_progress()
    with library_errors(FLAGS):
        try:
            summary = convert_folder(input_dir, output_dir, model, direction=direction, backend=backend,
                                     precision=precision, device=device, provider=provider, batch_size=batch_size,
                                     workers=workers, fmt=fmt, quality=quality, png_compression=png_compression,
                                     overwrite=overwrite, resize=resize,
                                     tile=tile, overlap=overlap, max_pixels=max_pixels, shard=shard,
                                     report=report, on_progress=update, prompt=prompt)
        finally:
            close()  # before any message, so that it does not tangle with a live bar
    typer.echo(f"converted {len(summary.converted)}, skipped {len(summary.skipped)} (already done), "
               f"failed {len(summary.failed)} in {summary.seconds:.1f} s ({summary.images_per_s:.2f} images/s) "
               f"with {summary.backend}; output in {output_dir}")
    for path, reason in summary.failed:
        typer.secho(f"failed: {path}: {reason}", fg=typer.colors.YELLOW, err=True)
    if summary.failed:
        typer.echo(f"failures listed in {summary.report}")
        raise typer.Exit(code=1)
