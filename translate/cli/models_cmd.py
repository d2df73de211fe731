"""`translate models / import-reference`: the model registry and imports of the original implementation's checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from translate.cli.common import fail, library_errors


def models_command() -> None:
    """List the registered generators and discriminators."""
    from translate.models import list_models

    infos = list_models()
    width = max(len(info.name) for info in infos)
    typer.echo(f"{'name':<{width}}  {'kind':<13}  {'params':>7}  description")
    for info in infos:
        typer.echo(f"{info.name:<{width}}  {info.kind:<13}  {info.num_params / 1e6:6.2f}M  {info.description}")
    typer.echo("(parameter counts at the default config: 3 channels, ngf/ndf 64, instance norm)")


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
    from translate.hub.reference import import_reference
    from translate.models import DiscriminatorConfig, GeneratorConfig

    if (netG is None) == (netD is None):
        fail("pass exactly one of --netG (a generator) or --netD (a discriminator)")
    # The configs name the architecture `name` and the depth `n_layers`; the flags say which network.
    flags = {"name": "--netG" if netG is not None else "--netD", "n_layers": "--n-layers-D", "ckpt": "CKPT",
             "out_dir": "OUT_DIR"}
    with library_errors(flags, catch=(ValueError, TypeError, OSError)):
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
    typer.echo(f"wrote {written} ({architecture.name}); load it with translate.load({str(written)!r})")

