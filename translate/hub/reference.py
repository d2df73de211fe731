"""Import checkpoints published by the original CycleGAN / pix2pix implementation.

Those are bare `state_dict`s (`latest_net_G.pth`): they do not record the options the network was
built with, so the caller states them (`GeneratorConfig(name="resnet_9blocks", ngf=64, ...)`),
exactly as the reference's `--netG --ngf --norm --no_dropout` flags did. When the stated options
are wrong the keys or shapes disagree; `ReferenceMismatchError` then names the option that most
likely differs, diagnosed from the checkpoint's keys.

    import_reference("horse2zebra.pth", "weights/horse2zebra", GeneratorConfig(), direction="AtoB")
    g = translate.load("weights/horse2zebra")
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from translate.core.files import sha256_file
from translate.formats.weights import StateDictDiff, build_model, save_weights, state_dict_diff, torch_load_safely
from translate.models import DiscriminatorConfig, GeneratorConfig, generator_names

logger = logging.getLogger(__name__)

__all__ = ["ReferenceMismatchError", "read_reference_state_dict", "diagnose_mismatch", "reference_network",
           "import_reference"]

Architecture = GeneratorConfig | DiscriminatorConfig

_STALE_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")
_BLOCK_KEY = re.compile(r"^model\.(\d+)\.conv_block\.(\d+)\.weight$")
_TOP_KEY = re.compile(r"^model\.(\d+)\.weight$")


class ReferenceMismatchError(ValueError):
    """A reference checkpoint does not fit the stated architecture.

    `diff` holds the missing / unexpected keys and shape mismatches, `hints` the likely causes.
    """

    def __init__(self, message: str, diff: StateDictDiff, hints: list[str]) -> None:
        super().__init__(message)
        self.diff = diff
        self.hints = hints


def read_reference_state_dict(path: str | Path) -> dict[str, Tensor]:
    """The tensors of a reference `.pth`, keys without DataParallel's `module.` prefix.

    Loads with `weights_only=True`: a file that needs arbitrary unpickling is refused. A dict
    wrapped as `{"state_dict": {...}}` is unwrapped.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no reference checkpoint at {str(path)!r}: expected a .pth state_dict "
                                f"such as latest_net_G.pth")
    obj = torch_load_safely(path, "a reference .pth state_dict")
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if isinstance(obj, dict) and obj.get("format") == "translate.checkpoint":
        raise ValueError(f"{str(path)!r} is a translate training checkpoint, not a reference one; "
                         f"load it directly with translate.load()")
    if not isinstance(obj, dict) or not obj:
        raise ValueError(f"{str(path)!r} holds a {type(obj).__name__}, expected a non-empty state_dict "
                         f"(parameter name -> tensor)")
    not_tensors = [str(k) for k, v in obj.items() if not isinstance(v, Tensor)]
    if not_tensors:
        raise ValueError(f"{str(path)!r} is not a plain state_dict: {len(not_tensors)} entries are not "
                         f"tensors ({', '.join(not_tensors[:5])})")

    state: dict[str, Tensor] = {}
    for key, tensor in obj.items():
        name = key
        while name.startswith("module."):  # saved from (possibly nested) DataParallel
            name = name[len("module."):]
        if name in state:
            raise ValueError(f"{str(path)!r} holds {name!r} both with and without a 'module.' prefix")
        state[name] = tensor
    return state


# --- diagnosis ------------------------------------------------------------------------------


def _family(state: Mapping[str, Tensor]) -> str | None:
    """Which reference network a state dict comes from, judged by its key layout."""
    keys = list(state)
    if any(k.startswith("net.") for k in keys):
        return "pixel"
    if any(k.startswith("model.model.") for k in keys):
        return "unet"
    if any(".conv_block." in k for k in keys):
        return "resnet"
    first = state.get("model.0.weight")
    if first is not None and first.dim() == 4:
        return "nlayers"
    first = state.get("model.1.weight")
    if first is not None and first.dim() == 4 and first.shape[-1] == 7:
        return "resnet"
    return None


def _architecture_family(architecture: Architecture) -> str:
    if architecture.name.startswith("resnet"):
        return "resnet"
    if architecture.name.startswith("unet"):
        return "unet"
    return "pixel" if architecture.name == "pixel" else "nlayers"


def _resnet_blocks(state: Mapping[str, Tensor]) -> dict[int, set[int]]:
    """Block index -> conv_block positions that hold 4-D (convolution) weights."""
    blocks: dict[int, set[int]] = {}
    for key, tensor in state.items():
        match = _BLOCK_KEY.match(key)
        if match and tensor.dim() == 4:
            blocks.setdefault(int(match[1]), set()).add(int(match[2]))
    return blocks


def _unet_depth(state: Mapping[str, Tensor]) -> int:
    # Level k (outermost 0) keys start with "model." repeated k + 2 times.
    return max(key.count("model.") for key in state) - 1


def _conv_layers(state: Mapping[str, Tensor]) -> int:
    return sum(1 for tensor in state.values() if tensor.dim() == 4)


def _norm_of(state: Mapping[str, Tensor]) -> str:
    """"batch" if BatchNorm statistics with affine weights are present; else "instance" if every
    convolution has a bias (the reference's rule), else "none"."""
    for key in state:
        if key.endswith(".running_mean"):
            prefix = key[: -len("running_mean")]
            weight = state.get(prefix + "weight")
            # Stale InstanceNorm statistics (old checkpoints) come without an affine weight.
            if weight is not None and weight.dim() == 1:
                return "batch"
    convs = [key[: -len("weight")] for key, t in state.items() if key.endswith(".weight") and t.dim() == 4]
    return "instance" if all(prefix + "bias" in state for prefix in convs) else "none"


def _first_conv(state: Mapping[str, Tensor], family: str) -> Tensor | None:
    key = {"resnet": "model.1.weight", "unet": "model.model.0.weight", "nlayers": "model.0.weight",
           "pixel": "net.0.weight"}[family]
    return state.get(key)


def _output_channels(state: Mapping[str, Tensor], family: str) -> int | None:
    if family == "unet":
        head = state.get("model.model.3.weight")  # ConvTranspose2d weight: (in, out, k, k)
        return int(head.shape[1]) if head is not None and head.dim() == 4 else None
    if family == "resnet":
        heads = [(int(m[1]), t) for k, t in state.items() if (m := _TOP_KEY.match(k)) and t.dim() == 4]
        return int(max(heads, key=lambda item: item[0])[1].shape[0]) if heads else None
    return None


def _netg_hint(family: str, state: Mapping[str, Tensor]) -> str:
    if family == "resnet":
        n = len(_resnet_blocks(state))
        name = f"resnet_{n}blocks"
        what = f"a ResNet generator with {n} residual blocks"
    else:
        n = _unet_depth(state)
        name = f"unet_{2 ** n}"
        what = f"a U-Net generator with {n} downsamplings"
    if name not in generator_names():
        return f"the checkpoint is {what}, which no registered generator matches"
    return f"the checkpoint is {what}; pass --netG {name} (name={name!r})"


def _netd_hint(family: str, state: Mapping[str, Tensor]) -> str:
    if family == "pixel":
        return "the checkpoint is a 1x1 PixelGAN discriminator; pass --netD pixel (name='pixel')"
    n_layers = _conv_layers(state) - 2
    if n_layers == 3:
        return "the checkpoint is a 70x70 PatchGAN discriminator (n_layers 3); pass --netD basic (name='basic')"
    return (f"the checkpoint is a PatchGAN discriminator with {n_layers} layers; pass --netD n_layers "
            f"--n-layers-D {n_layers} (name='n_layers', n_layers={n_layers})")


def diagnose_mismatch(state: Mapping[str, Tensor], architecture: Architecture) -> list[str]:
    """Likely causes, most likely first, of `state` (a reference state dict) not fitting `architecture`.

    Each hint names the differing option and the flag / config field that fixes it.
    """
    family = _family(state)
    if family is None:
        return []
    hints: list[str] = []
    is_generator = family in ("resnet", "unet")
    wanted_family = _architecture_family(architecture)
    if family != wanted_family:
        hints.append(_netg_hint(family, state) if is_generator else _netd_hint(family, state))
    elif family == "resnet":
        n_blocks = len(_resnet_blocks(state))
        if f"resnet_{n_blocks}blocks" != architecture.name:
            hints.append(_netg_hint(family, state))
    elif family == "unet":
        if f"unet_{2 ** _unet_depth(state)}" != architecture.name:
            hints.append(_netg_hint(family, state))
    elif family == "nlayers":
        wanted_layers = 3 if architecture.name == "basic" else architecture.n_layers
        if _conv_layers(state) - 2 != wanted_layers:
            hints.append(_netd_hint(family, state))

    same_kind = is_generator == isinstance(architecture, GeneratorConfig)
    if family == "resnet" and isinstance(architecture, GeneratorConfig):
        # The second conv of a block sits at conv_block.5, or at .6 when Dropout takes index 4.
        second_convs = {max(p) for p in _resnet_blocks(state).values() if len(p) == 2}
        if second_convs == {6} and not architecture.dropout:
            hints.append("the checkpoint was trained with dropout (block convs at conv_block.6); "
                         "pass --dropout (dropout=True)")
        elif second_convs == {5} and architecture.dropout:
            hints.append("the checkpoint was trained without dropout (block convs at conv_block.5); "
                         "pass --no-dropout (dropout=False)")

    first = _first_conv(state, family)
    if same_kind and first is not None and first.dim() == 4:
        width_name = "ngf" if is_generator else "ndf"
        width = int(first.shape[0])
        expected_width = architecture.ngf if isinstance(architecture, GeneratorConfig) else architecture.ndf
        if width != expected_width:
            hints.append(f"the checkpoint has {width_name} {width} (first convolution's output channels); "
                         f"pass --{width_name} {width} ({width_name}={width})")
        channels = int(first.shape[1])
        if channels != architecture.input_nc:
            hints.append(f"the checkpoint takes {channels} input channel(s); pass --input-nc {channels} "
                         f"(input_nc={channels})")
    output_nc = _output_channels(state, family)
    if isinstance(architecture, GeneratorConfig) and output_nc is not None and output_nc != architecture.output_nc:
        hints.append(f"the checkpoint produces {output_nc} output channel(s); pass --output-nc {output_nc} "
                     f"(output_nc={output_nc})")

    norm = _norm_of(state)
    if norm != architecture.norm:
        evidence = {
            "batch": "it has BatchNorm running statistics",
            "instance": "no BatchNorm statistics and every convolution has a bias",
            "none": "no BatchNorm statistics and convolutions without bias",
        }[norm]
        hints.append(f"the checkpoint uses norm {norm!r} ({evidence}); pass --norm {norm} (norm={norm!r})")
    return hints


# --- import ---------------------------------------------------------------------------------


def _adapt_legacy_keys(state: dict[str, Tensor], model: nn.Module) -> dict[str, Tensor]:
    """Drop stale InstanceNorm statistics and fill BatchNorm counters that old PyTorch did not save."""
    modules = dict(model.named_modules())
    expected = model.state_dict()
    adapted: dict[str, Tensor] = {}
    dropped = 0
    for key, tensor in state.items():
        prefix, _, suffix = key.rpartition(".")
        # PyTorch < 0.4 InstanceNorm tracked running statistics by default; today's has none.
        if key not in expected and suffix in _STALE_SUFFIXES and isinstance(modules.get(prefix), nn.InstanceNorm2d):
            dropped += 1
            continue
        adapted[key] = tensor
    for key in expected:
        prefix, _, suffix = key.rpartition(".")
        # The counter only drives momentum=None averaging; PyTorch itself fills 0 for old files.
        if (suffix == "num_batches_tracked" and key not in adapted and prefix + ".running_mean" in adapted
                and isinstance(modules.get(prefix), nn.BatchNorm2d)):
            adapted[key] = torch.tensor(0, dtype=torch.long)
    if dropped:
        logger.info("dropped %d stale InstanceNorm statistics keys", dropped)
    return adapted


def _describe(architecture: Architecture) -> str:
    fields = ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(architecture).items()
                       if k not in ("name", "init_type", "init_gain"))
    return f"{architecture.name} ({fields})"


def reference_network(ckpt: str | Path, architecture: Architecture) -> nn.Module:
    """The network `architecture` with the reference `.pth` loaded strictly, in eval mode.

    On any mismatch `ReferenceMismatchError` lists the differing keys and the likely wrong option.
    """
    ckpt = Path(ckpt)
    if not isinstance(architecture, (GeneratorConfig, DiscriminatorConfig)):
        raise TypeError(f"architecture must be a GeneratorConfig or DiscriminatorConfig, "
                        f"got {type(architecture).__name__}")
    raw = read_reference_state_dict(ckpt)
    model = build_model(architecture, init=False)
    state = _adapt_legacy_keys(raw, model)
    diff = state_dict_diff(model.state_dict(), state)
    if diff:
        hints = diagnose_mismatch(raw, architecture)
        causes = (f"likely cause: {hints[0]}" + "".join(f"\nalso: {h}" for h in hints[1:]) if hints else
                  "likely cause: not recognised; check --netG/--netD, --ngf/--ndf, --norm, --dropout and "
                  "the channel counts")
        raise ReferenceMismatchError(
            f"{ckpt.name} does not match {_describe(architecture)}:\n{diff.summary()}\n{causes}", diff, hints)
    model.load_state_dict(state, strict=True)
    return model.eval()


def import_reference(ckpt: str | Path, out_dir: str | Path, architecture: Architecture, *,
                     direction: str | None = None, domains: Mapping[str, str] | None = None,
                     task: str | None = None, origin: str | None = None) -> Path:
    """Convert a reference `.pth` into a weights folder at `out_dir`; return `out_dir`.

    `architecture` states the reference options the checkpoint was trained with. The weights are
    loaded strictly; on any mismatch `ReferenceMismatchError` lists the differing keys and the
    likely wrong option. The folder records the file name and sha256 of `ckpt`, and `origin`
    (e.g. the URL it came from) when given.
    """
    ckpt = Path(ckpt)
    if isinstance(architecture, DiscriminatorConfig) and direction is not None:
        raise ValueError(f"direction={direction!r} applies to generators only; leave it unset for "
                         f"discriminator {architecture.name!r}")
    model = reference_network(ckpt, architecture)
    source = {"reference_checkpoint": ckpt.name, "sha256": sha256_file(ckpt)}
    if origin is not None:
        source["origin"] = origin
    return save_weights(model, out_dir, architecture, task=task, direction=direction, domains=domains,
                        source=source)
