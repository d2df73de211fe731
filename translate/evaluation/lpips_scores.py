"""LPIPS over folders, for `translate.evaluation.metrics.evaluate_folders`: whether and with which
weights it runs, its running mean over image pairs, and the distance of each translation to its input.

    lpips = lpips_for_report(required=False, net="alex", path=None, device="cpu")
    mean = LpipsMean(lpips.model, required=False)          # lpips.model is None when skipped
    score_sources(source_pairs(...), lpips.model)          # {"lpips_source", "n_source_pairs"}
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from translate.core.images import from_uint8
from translate.data.images import load_image, to_uint8_tensor
from translate.deploy.inference import output_paths
from translate.evaluation.lpips import ENV_VAR, LPIPS, LPIPS_SHA256, MIN_SIZE, find_lpips_weights, load_lpips

__all__ = ["LpipsChoice", "LpipsMean", "lpips_for_report", "score_sources", "source_pairs"]


@dataclass
class LpipsChoice:
    """The loaded network (None: LPIPS is skipped) and what the report says of it: `lpips_net` and
    `lpips_weights` ({path, sha256}), or `lpips_skipped` (why)."""

    model: LPIPS | None
    report: dict[str, Any] = field(default_factory=dict)


def lpips_for_report(*, required: bool, net: str, path: str | os.PathLike[str] | None,
                     device: torch.device | str) -> LpipsChoice:
    """Load LPIPS (`load_lpips(net, path)`). Without its weights: FileNotFoundError when `required`, or
    when `path` or $TRANSLATE_LPIPS_WEIGHTS names them (the user asked for them); else skipped."""
    explicit = path is not None or bool(os.environ.get(ENV_VAR))
    try:
        weights = find_lpips_weights(net, path)
    except FileNotFoundError as error:
        if required or explicit:
            raise
        return LpipsChoice(None, {"lpips_skipped": f"no LPIPS weights: {error}"})
    model = load_lpips(net, weights, device)
    return LpipsChoice(model, {"lpips_net": net, "lpips_weights": {"path": str(weights), "sha256": LPIPS_SHA256[net]}})


@torch.inference_mode()
def _distances(model: LPIPS, first: list[Tensor], second: list[Tensor]) -> Tensor:
    """LPIPS of uint8 `(3, H, W)` image pairs (same size within a pair) -> `(N,)` float64, CPU; pairs of
    one size share a batch."""
    device = model.shift.device
    out = torch.zeros(len(first), dtype=torch.float64)
    groups: dict[tuple[int, ...], list[int]] = {}
    for index, image in enumerate(first):
        groups.setdefault(tuple(image.shape), []).append(index)
    for indices in groups.values():
        x = from_uint8(torch.stack([first[i] for i in indices]).to(device))
        y = from_uint8(torch.stack([second[i] for i in indices]).to(device))
        out[indices] = model(x, y).double().cpu()
    return out


class LpipsMean:
    """Running mean of LPIPS over pairs of uint8 `(3, H, W)` images. `model` None: skipped from the
    start. Images under `MIN_SIZE` raise ValueError when `required`, else skip LPIPS (`skipped` says why)."""

    def __init__(self, model: LPIPS | None, required: bool) -> None:
        self.model, self.required = model, required
        self.total, self.count, self.skipped = 0.0, 0, ""

    def update(self, fakes: list[Tensor], reals: list[Tensor]) -> None:
        if self.model is None or self.skipped or not fakes:
            return
        smallest = min(min(image.shape[1:]) for image in fakes)
        limit = MIN_SIZE[self.model.net]
        if smallest < limit:
            reason = (f"LPIPS ({self.model.net}) needs images of at least {limit} x {limit} pixels, got a side of "
                      f"{smallest}")
            if self.required:
                raise ValueError(f"{reason}; score larger images, or use --lpips-net vgg (16 pixels) or --no-lpips")
            self.skipped = reason
            return
        distances = _distances(self.model, fakes, reals)
        self.total += float(distances.sum())
        self.count += len(fakes)

    def report(self) -> dict[str, Any]:
        """`{"lpips": mean}`, or `{"lpips_skipped": why}`, or {} when it never ran."""
        if self.skipped:
            return {"lpips_skipped": self.skipped}
        return {"lpips": self.total / self.count} if self.count else {}


def source_pairs(sources: list[Path], source_root: Path, fakes: list[Path], fake_root: Path) -> list[tuple[Path, Path]]:
    """(input, translation) pairs, named as translate convert names its outputs: same relative path and
    stem, any extension; where two inputs share a stem (a.jpg, a.png) their outputs are a_jpg.*, a_png.*."""
    key_of = {path.relative_to(fake_root).with_suffix("").as_posix(): path for path in fakes}
    pairs = []
    for source, target in output_paths(sources, source_root, fake_root, "png").items():
        fake = key_of.get(target.relative_to(fake_root).with_suffix("").as_posix())
        if fake is not None:
            pairs.append((source, fake))
    return pairs


def score_sources(pairs: list[tuple[Path, Path]], model: LPIPS, batch_size: int = 16) -> dict[str, Any]:
    """`{"lpips_source": mean LPIPS of each translation to its input, "n_source_pairs"}`; an input and
    its translation must have one size (ValueError naming both files otherwise)."""
    limit = MIN_SIZE[model.net]
    total = 0.0
    for start in range(0, len(pairs), batch_size):
        sources, fakes = [], []
        for source_path, fake_path in pairs[start:start + batch_size]:
            source, fake = to_uint8_tensor(load_image(source_path)), to_uint8_tensor(load_image(fake_path))
            if source.shape != fake.shape:
                raise ValueError(f"{fake_path} is {tuple(fake.shape[1:])} but its input {source_path} is "
                                 f"{tuple(source.shape[1:])}; LPIPS compares images of one size: convert at the "
                                 "input's size (translate convert without --resize), or resize the inputs to match")
            if min(source.shape[1:]) < limit:
                raise ValueError(f"{source_path} is {tuple(source.shape[1:])}: LPIPS ({model.net}) needs at least "
                                 f"{limit} x {limit} pixels" + ("; --lpips-net vgg takes 16" if model.net == "alex" else ""))
            sources.append(source)
            fakes.append(fake)
        total += float(_distances(model, fakes, sources).sum())
    return {"lpips_source": total / len(pairs), "n_source_pairs": len(pairs)}
