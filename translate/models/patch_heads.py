"""CUT's patch projection heads (Park et al. 2020, "Contrastive Learning for Unpaired
Image-to-Image Translation") and the encoder features they read.

PatchNCE compares features of the generator's own layers: `layer_features` runs the generator's
layer sequence (`ResnetGenerator.model`) up to the last requested layer and keeps the outputs of
the requested ones; `PatchHeads` samples the same spatial locations of each layer's features for
every image and maps them through a two-layer MLP per layer, L2-normalised. The heads' state dict
keys (`mlp_0.0.weight`, ...) are those of the reference's PatchSampleF (`--netF mlp_sample`).

The reference creates its heads at the first batch, when the feature widths are known;
`layer_widths` reads them from the architecture, so the heads exist (and are in the checkpoint)
from the start.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["PatchHeads", "layer_features", "layer_sequence", "layer_widths", "l2_normalize", "sample_patch_ids"]


def layer_sequence(generator: nn.Module) -> nn.Sequential:
    """The generator's layers in order (`generator.model` of the ResNet generators); TypeError for a
    network without one flat sequence (the U-Nets nest theirs)."""
    layers = getattr(generator, "model", None)
    if not isinstance(layers, nn.Sequential) or len(layers) < 2:
        raise TypeError(f"{type(generator).__name__} has no flat layer sequence (`.model`) to take PatchNCE "
                        "features from; use a ResNet generator")
    return layers


def layer_widths(layers: nn.Sequential, input_nc: int) -> list[int]:
    """The channels of each layer's output: a layer with `out_channels` (a convolution) sets them,
    every other layer (padding, norm, ReLU, residual block) keeps them."""
    widths, channels = [], input_nc
    for layer in layers:
        channels = getattr(layer, "out_channels", channels)
        widths.append(channels)
    return widths


def layer_features(layers: nn.Sequential, x: Tensor, indices: Sequence[int]) -> list[Tensor]:
    """The outputs of `layers[i]` for each i in `indices` (increasing), running the layers only up
    to the last of them, as the reference's `netG(x, nce_layers, encode_only=True)`.

    `x`: `(B, C, H, W)`; returns one `(B, C_i, H_i, W_i)` tensor per index. As in the reference, an
    in-place ReLU right after a requested norm layer also applies to that norm's kept output.
    """
    wanted, features = set(indices), []
    for index, layer in enumerate(layers[: indices[-1] + 1]):
        x = layer(x)
        if index in wanted:
            features.append(x)
    return features


def sample_patch_ids(features: Sequence[Tensor], num_patches: int, generator: torch.Generator) -> list[Tensor]:
    """For each `(B, C, H, W)` feature map, `min(num_patches, H * W)` distinct flat locations
    (`h * W + w`), drawn on the CPU from `generator` and moved to the features' device; every
    image of the batch uses the same locations, as in the reference."""
    ids = []
    for feature in features:
        locations = feature.shape[2] * feature.shape[3]
        ids.append(torch.randperm(locations, generator=generator)[:num_patches].to(feature.device))
    return ids


def l2_normalize(x: Tensor, eps: float = 1e-7) -> Tensor:
    """`x / (||x||_2 + eps)` along dim 1 (the reference's Normalize(2))."""
    return x / (x.pow(2).sum(1, keepdim=True).sqrt() + eps)


class PatchHeads(nn.Module):
    """One MLP `Linear(C_i, nc) -> ReLU -> Linear(nc, nc)` per PatchNCE layer.

    `forward(features, patch_ids)`: `features[i]` is `(B, C_i, H_i, W_i)`, `patch_ids[i]` a `(P_i,)`
    long tensor of flat locations; returns per layer `(B * P_i, nc)` L2-normalised rows, image-major
    (the P_i rows of image 0 first), in float32.
    """

    def __init__(self, widths: Sequence[int], nc: int = 256) -> None:
        super().__init__()
        if not widths or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in (*widths, nc)):
            raise ValueError(f"PatchHeads needs positive integer widths and nc, got widths={list(widths)}, nc={nc}")
        self.widths, self.nc = tuple(widths), nc
        for index, width in enumerate(widths):
            self.add_module(f"mlp_{index}", nn.Sequential(nn.Linear(width, nc), nn.ReLU(), nn.Linear(nc, nc)))

    def forward(self, features: Sequence[Tensor], patch_ids: Sequence[Tensor]) -> list[Tensor]:
        if len(features) != len(self.widths) or len(patch_ids) != len(self.widths):
            raise ValueError(f"expected {len(self.widths)} feature maps and patch id sets, got {len(features)} "
                             f"and {len(patch_ids)}")
        out = []
        for index, (feature, ids) in enumerate(zip(features, patch_ids, strict=True)):
            rows = feature.flatten(2).transpose(1, 2)[:, ids].flatten(0, 1)  # (B, H*W, C) -> (B * P, C)
            out.append(l2_normalize(getattr(self, f"mlp_{index}")(rows).float()))
        return out
