"""`python -m scripts.bench.infer --compare-convert`: `convert` of several architectures on the same images, timed
side by side, beside each network's parameters and multiply-accumulates.

Every round converts the folder once per architecture x variant, in a rotating order; after an untimed
warm-up (the ONNX export and first-call costs), each figure is the median over rounds, and each ratio
the median of the same-round ratios against the first architecture with the same variant: on a shared,
noisy machine only images timed in the same round compare fairly.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from translate.models import build_generator, generator_config_from_dict

# convert(model, variant, input folder, output folder) -> {"images_per_s": ..., ...}
Convert = Callable[[Path, str, Path, Path], dict[str, Any]]


def conv_macs(net: nn.Module, input_nc: int, size: int) -> int:
    """Multiply-accumulates of one `(1, input_nc, size, size)` pass through `net`'s convolutions, counted
    with forward hooks: a Conv2d does `out.numel() * in_channels / groups * kh * kw`, a ConvTranspose2d
    `in.numel() * out_channels / groups * kh * kw` (each input pixel scattered over a kh x kw window).
    Elementwise layers (norms, activations, padding, residual sums) are left out. Runs wherever `net`'s
    parameters are, the meta device included (no memory, no time)."""
    total = 0

    def count(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        assert isinstance(module, (nn.Conv2d, nn.ConvTranspose2d))
        window = module.kernel_size[0] * module.kernel_size[1]
        if isinstance(module, nn.ConvTranspose2d):
            total += inputs[0].numel() * module.out_channels // module.groups * window
        else:
            total += output.numel() * module.in_channels // module.groups * window

    hooks = [m.register_forward_hook(count) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    try:
        with torch.no_grad():
            net(torch.zeros(1, input_nc, size, size, device=next(net.parameters()).device))
    finally:
        for hook in hooks:
            hook.remove()
    return total


def model_costs(architecture: dict[str, Any], size: int) -> dict[str, Any]:
    """Parameters and conv MACs at `size` x `size` of the generator a weights folder's config.json
    "architecture" describes, built on the meta device."""
    config = generator_config_from_dict(architecture)
    with torch.device("meta"):
        net = build_generator(config, init=False)
    return {"ngf": config.ngf, "params": sum(p.numel() for p in net.parameters()),
            "macs": conv_macs(net, config.input_nc, size)}


def convert_side_by_side(models: dict[str, Path], variants: Sequence[str], images: Path, warmup_images: Path,
                         work: Path, rounds: int, convert: Convert) -> list[dict[str, Any]]:
    """Time `convert` of `images` for every model x variant over `rounds` interleaved rounds, after one
    untimed conversion of `warmup_images` each. One row per model x variant: the median images/s, every
    round's figure, and `ratio`: the median of the same-round ratios to the first model's images/s with
    that variant."""
    pairs = [(arch, variant) for arch in models for variant in variants]
    for arch, variant in pairs:
        convert(models[arch], variant, warmup_images, work / "warmup_out")
    rates: dict[tuple[str, str], list[float]] = {pair: [] for pair in pairs}
    for round_index in range(rounds):
        shift = round_index % len(pairs)  # rotate: no pair always runs first after a pause
        for arch, variant in pairs[shift:] + pairs[:shift]:
            result = convert(models[arch], variant, images, work / "side_by_side_out")
            rates[(arch, variant)].append(result["images_per_s"])
    first = next(iter(models))
    rows = []
    for arch, variant in pairs:
        own, base = rates[(arch, variant)], rates[(first, variant)]
        rows.append({"arch": arch, "variant": variant, "images_per_s": statistics.median(own), "rounds": own,
                     "ratio": statistics.median(a / b for a, b in zip(own, base, strict=True))})
    return rows


def markdown(result: dict[str, Any]) -> str:
    """The side-by-side table for docs/benchmarks.md."""
    meta, costs = result["meta"], result["costs"]
    first = next(iter(costs))
    lines = [f"Device: {meta['device_name']}. Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
             + f". `convert` of {meta['n_images']} images ({meta['images']}, {meta['e2e_size']} px), batch "
               f"{meta['e2e_batch']} -> {meta['e2e_format']}, whole call; median of {meta['repeats']} interleaved "
               "rounds.", "",
             f"| model | ngf | params | GMACs at {meta['e2e_size']} px | variant | convert images/s | "
             f"vs {first} (same round) |", "|---|---|---|---|---|---|---|"]
    for row in result["side_by_side"]:
        cost = costs[row["arch"]]
        lines.append(f"| {row['arch']} | {cost['ngf']} | {cost['params'] / 1e6:.2f} M | {cost['macs'] / 1e9:.2f} | "
                     f"{row['variant']} | {row['images_per_s']:.2f} | {row['ratio']:.2f}x |")
    return "\n".join(lines)
