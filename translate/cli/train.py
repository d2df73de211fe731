"""`translate train`: train a model, or resume a run."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from translate.cli.common import fail, progress_printer

# --- train (owner: training) -------------------------------------------------------------------

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
