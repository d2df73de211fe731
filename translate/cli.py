"""The `translate` command line: a thin typer layer over the library's plain functions.

Only this module prints; the library reports through `logging`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import typer

from translate.cli_common import convert_progress, fail, progress_printer

app = typer.Typer(
    name="translate",
    help="Image-to-image translation: train CycleGAN / pix2pix, import reference checkpoints, convert folders.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


@app.callback()
def _main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages.")) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )


# --- models / import-reference (owner: models) -------------------------------------------------

@app.command("models")
def models_command() -> None:
    """List the registered generators and discriminators."""
    from translate.models import list_models

    infos = list_models()
    width = max(len(info.name) for info in infos)
    typer.echo(f"{'name':<{width}}  {'kind':<13}  {'params':>7}  description")
    for info in infos:
        typer.echo(f"{info.name:<{width}}  {info.kind:<13}  {info.num_params / 1e6:6.2f}M  {info.description}")
    typer.echo("(parameter counts at the default config: 3 channels, ngf/ndf 64, instance norm)")


@app.command("import-reference")
def import_reference_command(
    ckpt: Path = typer.Argument(..., help="Reference .pth state_dict, e.g. latest_net_G.pth."),
    out_dir: Path = typer.Argument(..., help="Weights folder to write (config.json + model.safetensors)."),
    netG: Optional[str] = typer.Option(None, "--netG", help="Generator: resnet_9blocks | resnet_6blocks | unet_256 | unet_128."),
    netD: Optional[str] = typer.Option(None, "--netD", help="Discriminator: basic | n_layers | pixel."),
    ngf: Optional[int] = typer.Option(None, "--ngf", help="Generator filters in the first layer [64]."),
    ndf: Optional[int] = typer.Option(None, "--ndf", help="Discriminator filters in the first layer [64]."),
    n_layers_D: Optional[int] = typer.Option(None, "--n-layers-D", help="Layers of --netD n_layers [3]."),
    norm: str = typer.Option("instance", "--norm", help="instance | batch | none."),
    dropout: Optional[bool] = typer.Option(None, "--dropout/--no-dropout", help="Generator trained with dropout (default: no)."),
    input_nc: int = typer.Option(3, "--input-nc", help="Input channels."),
    output_nc: Optional[int] = typer.Option(None, "--output-nc", help="Generator output channels [3]."),
    direction: Optional[str] = typer.Option(None, "--direction", help="AtoB | BtoA: which way the generator translates."),
) -> None:
    """Convert a checkpoint of the original CycleGAN/pix2pix code into a weights folder.

    State the options the checkpoint was trained with, as for the reference's test.py.
    """
    from translate.models import DiscriminatorConfig, GeneratorConfig
    from translate.reference import import_reference

    if (netG is None) == (netD is None):
        fail("pass exactly one of --netG (a generator) or --netD (a discriminator)")
    try:
        if netG is not None:
            if ndf is not None or n_layers_D is not None:
                fail("--ndf and --n-layers-D apply to discriminators; with --netG use --ngf")
            architecture = GeneratorConfig(
                name=netG, input_nc=input_nc, output_nc=3 if output_nc is None else output_nc,
                ngf=64 if ngf is None else ngf, norm=norm, dropout=bool(dropout))
        else:
            if ngf is not None or dropout is not None or output_nc is not None or direction is not None:
                fail("--ngf, --dropout, --output-nc and --direction apply to generators; "
                      "with --netD use --ndf and --n-layers-D")
            architecture = DiscriminatorConfig(
                name=netD, input_nc=input_nc, ndf=64 if ndf is None else ndf,
                n_layers=3 if n_layers_D is None else n_layers_D, norm=norm)
        written = import_reference(ckpt, out_dir, architecture, direction=direction)
    except (ValueError, TypeError, OSError) as err:
        fail(str(err))
    typer.echo(f"wrote {written} ({architecture.name}); load it with translate.load({str(written)!r})")


# --- train (owner: training) -------------------------------------------------------------------

@app.command()
def train(
    task: Optional[str] = typer.Argument(None, help="cyclegan | pix2pix | text2image | textcycle (omit with --resume)."),
    data: Optional[Path] = typer.Option(None, "--data", help="Data root (see docs/data.md)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Run directory to create."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue the run in this directory."),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML file of options; flags override it."),
    netG: Optional[str] = typer.Option(None, "--netG", help="resnet_9blocks | resnet_6blocks | unet_256 | unet_128 (textcycle: text_resnet_6blocks | text_resnet_9blocks | text_unet_128 | text_unet_256)."),
    netD: Optional[str] = typer.Option(None, "--netD", help="basic | n_layers | pixel (text2image, textcycle: projection)."),
    ngf: Optional[int] = typer.Option(None, "--ngf", help="Generator filters in the first layer [64]."),
    ndf: Optional[int] = typer.Option(None, "--ndf", help="Discriminator filters in the first layer [64]."),
    n_layers_D: Optional[int] = typer.Option(None, "--n-layers-D", help="Layers of netD n_layers [3]."),
    norm: Optional[str] = typer.Option(None, "--norm", help="instance | batch | none."),
    dropout: Optional[bool] = typer.Option(None, "--dropout/--no-dropout", help="Dropout in the generator."),
    init_type: Optional[str] = typer.Option(None, "--init-type", help="normal | xavier | kaiming | orthogonal."),
    init_gain: Optional[float] = typer.Option(None, "--init-gain"),
    input_nc: Optional[int] = typer.Option(None, "--input-nc", help="Channels of the source domain [3]."),
    output_nc: Optional[int] = typer.Option(None, "--output-nc", help="Channels of the target domain [3]."),
    direction: Optional[str] = typer.Option(None, "--direction", help="AtoB | BtoA."),
    preprocess: Optional[str] = typer.Option(
        None, "--preprocess", help="resize_and_crop | crop | scale_width | scale_width_and_crop | none."),
    load_size: Optional[int] = typer.Option(None, "--load-size", help="Resize to this first [286]."),
    crop_size: Optional[int] = typer.Option(None, "--crop-size", help="Then crop to this [256]."),
    flip: Optional[bool] = typer.Option(None, "--flip/--no-flip", help="Random horizontal flips [on]."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size"),
    workers: Optional[int] = typer.Option(None, "--workers", help="Data loading processes [2]."),
    name_a: Optional[str] = typer.Option(None, "--name-a", help="Display name of domain A."),
    name_b: Optional[str] = typer.Option(None, "--name-b", help="Display name of domain B."),
    gan_mode: Optional[str] = typer.Option(None, "--gan-mode", help="lsgan | vanilla | wgangp | hinge."),
    lambda_A: Optional[float] = typer.Option(None, "--lambda-A", help="Cycle loss weight A->B->A (textcycle: the cycle weight) [10]."),
    lambda_B: Optional[float] = typer.Option(None, "--lambda-B", help="Cycle loss weight B->A->B [10]."),
    lambda_identity: Optional[float] = typer.Option(None, "--lambda-identity", help="Identity loss weight [0.5]."),
    lambda_L1: Optional[float] = typer.Option(None, "--lambda-L1", help="pix2pix L1 weight [100]."),
    pool_size: Optional[int] = typer.Option(None, "--pool-size", help="Fake image history size [50; pix2pix 0]."),
    text_encoder: Optional[str] = typer.Option(None, "--text-encoder", help="text2image, textcycle: byte (trained with the GAN) | minilm | clip."),
    text_dim: Optional[int] = typer.Option(None, "--text-dim", help="text2image, textcycle: embedding size of the byte encoder [128]."),
    noise_dim: Optional[int] = typer.Option(None, "--noise-dim", help="text2image: noise vector size [100]."),
    pretrain_text_steps: Optional[int] = typer.Option(None, "--pretrain-text-steps", help="text2image: first steps train only an image-text matcher (and the byte encoder) on the real images [1000; 0: encoder trained with D]."),
    match_bank: Optional[int] = typer.Option(None, "--match-bank", help="text2image: the matching loss compares each image with its caption and the last N distinct captions [1024; 0: the batch only]."),
    lambda_match: Optional[float] = typer.Option(None, "--lambda-match", help="text2image: weight of the frozen matcher's loss on the generator's images [1.0]."),
    matcher_ndf: Optional[int] = typer.Option(None, "--matcher-ndf", help="text2image: width of the matcher's image encoder [--ndf]."),
    lambda_ma_gp: Optional[float] = typer.Option(None, "--lambda-ma-gp", help="text2image: weight of DF-GAN's matching-aware gradient penalty on D [2; 0: off]."),
    ema_decay: Optional[float] = typer.Option(None, "--ema-decay", help="text2image: save the generator as the moving average of its weights with this decay [0.999; 0: off]."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Adam learning rate [2e-4]."),
    beta1: Optional[float] = typer.Option(None, "--beta1", help="Adam beta1 [0.5]."),
    lr_policy: Optional[str] = typer.Option(None, "--lr-policy", help="linear | cosine | constant."),
    n_epochs: Optional[int] = typer.Option(None, "--n-epochs", help="Epochs at the initial LR [100]."),
    n_epochs_decay: Optional[int] = typer.Option(None, "--n-epochs-decay", help="Epochs of linear decay [100]."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Stop after this many steps in all."),
    seed: Optional[int] = typer.Option(None, "--seed"),
    device: Optional[str] = typer.Option(None, "--device", help="auto | cpu | cuda | mps."),
    amp: Optional[bool] = typer.Option(None, "--amp/--no-amp", help="Mixed precision (bf16, or fp16 with loss scaling)."),
    log_every: Optional[int] = typer.Option(None, "--log-every", help="Log losses every K steps [50]."),
    sample_every: Optional[int] = typer.Option(None, "--sample-every", help="Sample grid every K steps [500]."),
    save_epoch_freq: Optional[int] = typer.Option(None, "--save-epoch-freq", help="Keep a checkpoint every K epochs [5]."),
    eval_every: Optional[int] = typer.Option(None, "--eval-every", help="pix2pix, cyclegan: score the generators on held-out images every K epochs and at the end, logged with the losses [0: off]."),
    eval_phase: Optional[str] = typer.Option(None, "--eval-phase", help="Held-out folder for --eval-every [val for pix2pix, test for cyclegan]."),
    eval_limit: Optional[int] = typer.Option(None, "--eval-limit", help="First N held-out images per direction for --eval-every [200]."),
    eval_fid: Optional[bool] = typer.Option(None, "--eval-fid/--no-eval-fid", help="FID and KID in --eval-every (needs the Inception weights, see translate eval) [on]."),
) -> None:
    """Train a CycleGAN (unpaired), pix2pix (paired), text2image (captioned) or textcycle (domain folders with
    prompts) model, or --resume a run."""
    import os

    from translate.training import NonFiniteLossError, load_yaml_config, make_config, read_checkpoint
    from translate.training import train as run_training

    overrides = {k: v for k, v in locals().items()
                 if k not in {"task", "resume", "config", "os", "NonFiniteLossError", "load_yaml_config",
                              "make_config", "read_checkpoint", "run_training"}}
    overrides = {k: (str(v) if isinstance(v, Path) else v) for k, v in overrides.items()}
    try:
        resume_state = None
        if resume is not None:
            resume_state = read_checkpoint(resume)
            base = dict(resume_state["config"])
            if task is not None and task != base["task"]:
                fail(f"the run in {resume} trains {base['task']!r}, not {task!r}")
            overrides["out"] = str(resume)
            cfg = make_config(base["task"], base=base, overrides=overrides)
        else:
            if task is None:
                fail("name a task (cyclegan, pix2pix, text2image or textcycle), or pass --resume RUN_DIR")
            base = load_yaml_config(config) if config is not None else None
            cfg = make_config(task, base=base, overrides=overrides)
            if not cfg.data or not cfg.out:
                fail("--data DIR and --out RUN_DIR are required")
            if (Path(cfg.out) / "checkpoints" / "latest.pt").exists():
                fail(f"{cfg.out} already holds a run; continue it with --resume {cfg.out} or pick another --out")
    except (ValueError, FileNotFoundError) as error:
        fail(str(error))
    main_process = os.environ.get("RANK", "0") == "0"
    update, close = progress_printer() if main_process else (None, lambda: None)
    try:
        result = run_training(cfg, resume_state=resume_state, on_progress=update)
    except NonFiniteLossError as error:
        close()
        typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=3)
    except (ValueError, FileNotFoundError) as error:
        close()
        fail(str(error))
    close()
    if main_process:
        typer.echo(f"done: {result.step} steps, epoch {result.epoch}, {result.seconds:.1f} s; run in {result.run_dir}")
        if result.skipped_files:
            typer.echo(f"skipped {len(result.skipped_files)} unreadable file(s); see {result.run_dir / 'log.jsonl'}")
        for direction, path in result.weights.items():
            typer.echo(f"weights {direction}: {path}")
        if result.evaluations:
            key = next((k for k in result.evaluations[-1] if k.endswith("/fid")), None) or next(
                k for k in result.evaluations[-1] if k.endswith("/l1"))
            best = min(result.evaluations, key=lambda e: e[key])
            typer.echo(f"eval: best {key} {best[key]:.4g} at epoch {best['epoch']} (final {result.evaluations[-1][key]:.4g});"
                       f" every score in {result.run_dir / 'log.jsonl'} (event 'eval')")


# --- convert (owner: inference) ----------------------------------------------------------------

@app.command()
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
    resize: Optional[str] = typer.Option(None, "--resize", help="N (shorter side to N, aspect kept) or WxH; default: full resolution."),
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
    from translate.convert import convert_folder

    update, close = convert_progress()
    try:
        summary = convert_folder(input_dir, output_dir, model, direction=direction, backend=backend,
                                 precision=precision, device=device, provider=provider, batch_size=batch_size,
                                 workers=workers, fmt=fmt, quality=quality, png_compression=png_compression,
                                 overwrite=overwrite, resize=resize,
                                 tile=tile, overlap=overlap, max_pixels=max_pixels, shard=shard,
                                 report=report, on_progress=update, prompt=prompt)
    except (ValueError, FileNotFoundError) as error:
        close()
        fail(str(error))
    close()
    typer.echo(f"converted {len(summary.converted)}, skipped {len(summary.skipped)} (already done), "
               f"failed {len(summary.failed)} in {summary.seconds:.1f} s ({summary.images_per_s:.2f} images/s) "
               f"with {summary.backend}; output in {output_dir}")
    for path, reason in summary.failed:
        typer.secho(f"failed: {path}: {reason}", fg=typer.colors.YELLOW, err=True)
    if summary.failed:
        typer.echo(f"failures listed in {summary.report}")
        raise typer.Exit(code=1)


@app.command()
def generate(
    model: Path = typer.Option(..., "--model", help="A text2image weights folder, run directory or exported .onnx file."),
    prompt: list[str] = typer.Option(..., "--prompt", help="What to draw; repeat for several prompts."),
    n: int = typer.Option(1, "-n", "--n", help="Images per prompt."),
    out: Path = typer.Option(Path("generated"), "--out", help="Folder for the PNG files."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Noise seed, for repeatable images."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | mps."),
) -> None:
    """Generate images from captions with a text2image model (PyTorch weights or its .onnx export)."""
    from translate.inference import to_pil
    from translate.text.model import load_text2image
    from translate.training.distributed import pick_device

    try:
        if model.suffix.lower() == ".onnx":
            from translate.text.onnx import OnnxTextModel

            t2i = OnnxTextModel(model)
        else:
            t2i = load_text2image(model, device=pick_device(device))
        images = t2i.generate(list(prompt), n=n, seed=seed)
    except (ValueError, FileNotFoundError) as error:
        fail(str(error))
    out.mkdir(parents=True, exist_ok=True)
    for index, image in enumerate(images):
        text = prompt[index // n]
        stem = "".join(ch if ch.isalnum() else "_" for ch in text.lower())[:60].strip("_") or "prompt"
        path = out / f"{index // n:03d}_{stem}_{index % n:02d}.png"
        to_pil(image.cpu()).save(path)
    typer.echo(f"wrote {len(images)} images to {out}")


@app.command()
def demo(
    out_dir: Path = typer.Argument(Path("demo"), help="Where the demo writes its outputs."),
    train: bool = typer.Option(False, "--train", help="Instead: train a tiny pix2pix on generated data."),
    steps: int = typer.Option(300, "--steps", help="Training steps (with --train)."),
) -> None:
    """Export the bundled model to ONNX, convert its sample images, write a contact sheet
    (with --train: generate data, train a tiny pix2pix, convert its test images)."""
    from translate.demo import DEFAULT_BUNDLED_MODEL, run_bundled_demo, run_demo
    from translate.translator import BUNDLED_DIR

    if not train and not (BUNDLED_DIR / DEFAULT_BUNDLED_MODEL / "config.json").is_file():
        typer.echo(f"no bundled model {DEFAULT_BUNDLED_MODEL!r} in {BUNDLED_DIR}; running the training demo")
        train = True
    if train:
        update, close = progress_printer()
        try:
            paths = run_demo(out_dir, steps=steps, on_progress=update)
        finally:
            close()
        typer.echo(f"run: {paths['run']}")
    else:
        try:
            paths = run_bundled_demo(out_dir)
        except (ValueError, FileNotFoundError) as error:
            fail(str(error))
        typer.echo(f"onnx model: {paths['onnx']}")
    typer.echo(f"converted images: {paths['converted']}\ncontact sheet (input | output): {paths['contact_sheet']}")


# --- export / info (owner: export) -------------------------------------------------------------

@app.command("export")
def export_command(
    model: Path = typer.Argument(..., help="Weights folder, run directory, checkpoint, or a bundled or installed (translate pretrained) model name."),
    out: Path = typer.Argument(..., help="The .onnx file to write."),
    direction: Optional[str] = typer.Option(None, "--direction", help="AtoB | BtoA (CycleGAN runs)."),
    half: bool = typer.Option(False, "--half", help="float16 weights and compute (io stays as --io)."),
    io: str = typer.Option("float", "--io", help="float: NCHW float32 in [-1, 1] | uint8: NHWC uint8 images."),
    opset: Optional[int] = typer.Option(None, "--opset", help="ONNX opset, 17-20 [20]."),
    text_input: Optional[str] = typer.Option(None, "--text-input", help="Text models: ids (byte encoder in the graph) [default] | embedding (embeddings in; a byte encoder goes to OUT.text_encoder.onnx)."),
    bake_prompts: Optional[list[str]] = typer.Option(None, "--bake-prompts", help="Text models: store this prompt's embedding; input prompt_index. Repeat for several."),
    bake_from_domains: bool = typer.Option(False, "--bake-prompts-from-domains", help="Text models: bake every prompt of the model's domains."),
) -> None:
    """Export one generator (or a text model with its text encoder) to ONNX, then check it against PyTorch."""
    from translate.export import DEFAULT_OPSET, ExportParityError, export_onnx
    from translate.text.onnx import TextExportReport, TextParityCase
    from translate.translator import resolve_model

    def case_text(case) -> str:
        if not isinstance(case, TextParityCase):
            return f"batch {case.batch} {case.height}x{case.width}"
        where = "text encoder " if case.part == "text_encoder" else ""
        size = f" {case.height}x{case.width}" if case.height else ""
        return f"{where}batch {case.batch}{size}{f' length {case.length}' if case.length else ''}"

    try:
        report = export_onnx(resolve_model(str(model)), out, direction=direction, half=half, io=io,
                             opset=DEFAULT_OPSET if opset is None else opset, text_input=text_input,
                             bake_prompts=bake_prompts or None, bake_domain_prompts=bake_from_domains)
    except ExportParityError as error:
        for case in error.report.cases:
            typer.echo(f"{case_text(case)}: max abs error {case.max_abs_error:.3g}")
        typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1)
    except (ValueError, FileNotFoundError) as error:
        fail(str(error))
    unit = " levels" if report.io == "uint8" else ""
    for case in report.cases:
        in_levels = not isinstance(case, TextParityCase) or case.part == "model"
        typer.echo(f"{case_text(case)}: max abs error {case.max_abs_error:.3g}{unit if in_levels else ''}")
    typer.echo(f"wrote {report.path} ({report.precision}, io {report.io}, opset {report.opset}); "
               f"max abs error {report.max_abs_error:.3g}{unit} (bound {report.tolerance:g}{unit})")
    if isinstance(report, TextExportReport) and report.text_encoder_path is not None:
        typer.echo(f"wrote the text encoder (ids, mask -> embedding) to {report.text_encoder_path}")
    if isinstance(report, TextExportReport) and report.text_input == "baked":
        typer.echo(f"baked prompts, in prompt_index order: {report.metadata['baked_prompts']}")


@app.command("info")
def info_command(
    model: Path = typer.Argument(..., help="Weights folder, run directory, checkpoint or .onnx file."),
    direction: Optional[str] = typer.Option(None, "--direction", help="AtoB | BtoA (CycleGAN runs)."),
) -> None:
    """Print the configuration / metadata of any model form."""
    import json

    from translate.export import read_onnx_metadata
    from translate.weights import read_model_config

    from translate.text.model import find_text_model

    try:
        text_folder = find_text_model(model)
        if model.suffix.lower() == ".onnx":
            info = read_onnx_metadata(model)
        elif text_folder is not None:
            info = json.loads((text_folder / "config.json").read_text())
        else:
            info = read_model_config(model, direction=direction)
    except (ValueError, FileNotFoundError) as error:
        fail(str(error))
    width = max((len(key) for key in info), default=0)
    for key, value in info.items():
        text = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
        typer.echo(f"{key:<{width}}  {text}")


# --- eval (translate/cli_eval.py; registered here so that `translate eval` sits beside the rest) ---
from translate.cli_eval import eval_command  # noqa: E402

app.command("eval")(eval_command)

# --- data (translate/cli_data.py: download the reference implementation's data sets) ---
from translate.cli_data import data_app  # noqa: E402

app.add_typer(data_app, name="data")

# --- pretrained (translate/cli_pretrained.py: the reference's published generators by name) ---
from translate.cli_pretrained import pretrained_command  # noqa: E402

app.command("pretrained")(pretrained_command)


if __name__ == "__main__":
    app()
