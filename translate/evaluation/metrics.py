"""Image-quality metrics: paired (PSNR, SSIM, L1, RMSE, pixel accuracy within delta, LPIPS) and
distribution (FID, KID) scores of a set of generated images against real ones, and LPIPS of each
generated image to the input it was translated from.

    scores = evaluate_folders("datasets/maps/val_B", "out/fake_B")      # dict, see `evaluate_folders`

Conventions, chosen to match what papers on these data sets report:

- paired metrics are on 8-bit images, 0..255: L1 and RMSE in levels, PSNR in dB with a peak of
  255, SSIM (Gaussian window 11, sigma 1.5) with a data range of 255, and "accuracy": the share of
  pixels whose every channel is within `delta` levels of the ground truth (pix2pix's maps metric,
  delta 5). Each is computed per image, then averaged over the images.
- FID and KID compare Inception pool3 features (`translate.evaluation.inception`, the TF
  2015-12-05 weights every FID paper uses, loaded offline); the statistics are torchmetrics'
  `FrechetInceptionDistance` and `KernelInceptionDistance` (cubic polynomial kernel, 100 subsets).
  The features are computed once and fed to both.
- LPIPS (`translate.evaluation.lpips`, AlexNet by default) is on [-1, 1] images, per pair, then
  averaged; its weights are found offline, and without them the paired metrics still run.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torchmetrics.functional.image import structural_similarity_index_measure
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from translate.core.errors import InvalidCombinationError
from translate.data.images import list_images, load_image, to_uint8_tensor
from translate.evaluation.feature_cache import FeatureCache
from translate.evaluation.inception import INCEPTION_SHA256, find_inception_weights, load_inception
from translate.evaluation.lpips import DEFAULT_NET
from translate.evaluation.lpips_scores import LpipsChoice, LpipsMean, lpips_for_report, score_sources, source_pairs

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_DELTA", "PAIRED_METRICS", "DistributionScores", "PairedScores", "evaluate_folders",
           "paired_metrics", "pair_files", "markdown_table"]

DEFAULT_DELTA = 5
PAIRED_METRICS = ("psnr", "ssim", "l1", "rmse", "accuracy")


def _check_uint8_pair(fake: Tensor, real: Tensor) -> None:
    for name, images in (("fake", fake), ("real", real)):
        if images.ndim != 4 or images.dtype != torch.uint8:
            raise ValueError(f"{name} must be (B, C, H, W) uint8 in 0..255, got shape {tuple(images.shape)} "
                             f"dtype {images.dtype}; for [-1, 1] tensors use ((x + 1) * 127.5).round().byte()")
    if fake.shape != real.shape:
        raise ValueError(f"fake {tuple(fake.shape)} and real {tuple(real.shape)} must have one shape; resize the "
                         "generated images to the ground truth's size first")


def paired_metrics(fake: Tensor, real: Tensor, delta: int = DEFAULT_DELTA) -> dict[str, Tensor]:
    """Per-image paired metrics of generated images against their ground truth.

    Args:
        fake, real: `(B, C, H, W)` uint8 in 0..255, one shape.
        delta: accuracy tolerance in levels (every channel within it counts the pixel as right).
    Returns:
        `{"psnr", "ssim", "l1", "rmse", "accuracy"}`, each `(B,)` float64: dB, [-1, 1], levels,
        levels, fraction of pixels. PSNR of identical images is capped at 100 dB.
    """
    _check_uint8_pair(fake, real)
    if isinstance(delta, bool) or not isinstance(delta, int) or delta < 0:
        raise ValueError(f"delta must be an integer >= 0 (levels on 0..255), got {delta!r}")
    diff = fake.double() - real.double()
    mse = diff.pow(2).mean(dim=(1, 2, 3))
    psnr = (10.0 * torch.log10(255.0**2 / mse.clamp(min=1e-12))).clamp(max=100.0)
    ssim = structural_similarity_index_measure(fake.double(), real.double(), data_range=255.0, reduction="none")
    return {
        "psnr": psnr,
        "ssim": ssim.reshape(-1).double(),
        "l1": diff.abs().mean(dim=(1, 2, 3)),
        "rmse": mse.sqrt(),
        "accuracy": (diff.abs() <= delta).all(dim=1).double().mean(dim=(1, 2)),
    }


class PairedScores:
    """Running means of `paired_metrics` over any number of batches."""

    def __init__(self, delta: int = DEFAULT_DELTA) -> None:
        self.delta = delta
        self.sums = dict.fromkeys(PAIRED_METRICS, 0.0)
        self.count = 0

    def update(self, fake: Tensor, real: Tensor) -> None:
        """`fake`, `real`: `(B, C, H, W)` uint8, one shape."""
        for name, values in paired_metrics(fake, real, self.delta).items():
            self.sums[name] += float(values.sum())
        self.count += fake.shape[0]

    def compute(self) -> dict[str, float]:
        if self.count == 0:
            raise ValueError("no image pairs were scored")
        return {name: total / self.count for name, total in self.sums.items()}


class _Precomputed(nn.Module):
    """Lets torchmetrics' FID / KID take features computed once for both (their "custom model")."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, features: Tensor) -> Tensor:
        return features


class DistributionScores:
    """FID and KID of generated images against real ones, from one pass of the Inception network.

    `update(images, real)`: `(B, 3, H, W)` uint8, any size (the network resizes to 299).
    `compute()`: `{"fid", "kid_mean", "kid_std", "kid_subset_size"}`; KID's 100 subsets hold min(1000,
    n / 2) images, n the smaller set, drawn with a fixed seed (the same sets give the same KID).
    """

    def __init__(self, inception: nn.Module, device: torch.device | str = "cpu", kid_subsets: int = 100) -> None:
        self.inception = inception.to(device).eval()
        self.device = torch.device(device)
        self.kid_subsets = kid_subsets
        self.features: dict[bool, list[Tensor]] = {True: [], False: []}

    @torch.inference_mode()
    def embed(self, images: Tensor) -> Tensor:
        """`(B, 3, H, W)` uint8 -> `(B, D)` float64 Inception features on the CPU."""
        if images.ndim != 4 or images.dtype != torch.uint8 or images.shape[1] != 3:
            raise ValueError(f"expected (B, 3, H, W) uint8 images, got shape {tuple(images.shape)} dtype {images.dtype}")
        return self.inception(images.to(self.device).float() / 255.0).double().cpu()

    def update(self, images: Tensor, real: bool) -> None:
        self.add_features(self.embed(images), real)

    def add_features(self, features: Tensor, real: bool) -> None:
        """Features computed elsewhere (a cache, a held-out set's real side): `(B, D)`."""
        self.features[real].append(features.double().cpu())

    def counts(self) -> tuple[int, int]:
        return tuple(sum(f.shape[0] for f in self.features[side]) for side in (True, False))  # type: ignore[return-value]

    def compute(self) -> dict[str, float]:
        n_real, n_fake = self.counts()
        if min(n_real, n_fake) < 2:
            raise ValueError(f"FID and KID need at least 2 real and 2 generated images, got {n_real} and {n_fake}")
        # Subsets of half the smaller set below 2000 images: subsets of the whole set would all be the
        # same draw, and KID's standard deviation would read 0.
        subset = min(1000, max(2, min(n_real, n_fake) // 2))
        dim = int(self.features[True][0].shape[1])
        fid = FrechetInceptionDistance(feature=_Precomputed(dim), normalize=True)
        with warnings.catch_warnings():
            # KID keeps every feature vector, and warns so; ours are in memory already.
            warnings.filterwarnings("ignore", message=".*will save all extracted features in buffer.*")
            kid = KernelInceptionDistance(feature=_Precomputed(dim), subsets=self.kid_subsets, subset_size=subset,
                                          normalize=True)
        for side in (True, False):
            for features in self.features[side]:
                fid.update(features, real=side)
                kid.update(features, real=side)
        # KID draws its subsets from the global RNG: a fixed seed makes the score repeatable, and the
        # fork leaves a training run's random stream (dropout, pools) as it was.
        with torch.random.fork_rng(devices=[]):
            # The CPU generator only: torch.manual_seed would also reseed CUDA / MPS dropout streams.
            torch.random.default_generator.manual_seed(0)
            kid_mean, kid_std = kid.compute()
        return {"fid": float(fid.compute()), "kid_mean": float(kid_mean), "kid_std": float(kid_std),
                "kid_subset_size": subset}


def pair_files(real: Sequence[Path], fake: Sequence[Path], real_root: Path, fake_root: Path) -> list[tuple[Path, Path]]:
    """Pairs of (real, fake) files with the same path relative to their folder, less the extension
    (a converted `a/x.png` pairs with the ground truth `a/x.jpg`)."""
    by_key = {p.relative_to(real_root).with_suffix("").as_posix(): p for p in real}
    pairs = []
    for path in fake:
        key = path.relative_to(fake_root).with_suffix("").as_posix()
        if key in by_key:
            pairs.append((by_key[key], path))
    return pairs


def _embed_in_order(distribution: "DistributionScores", images: list[Tensor], batch_size: int) -> list[Tensor]:
    """Each image's `(D,)` features, in order; same-size images go through in batches, so folders of
    mixed sizes still work."""
    out: list[Tensor | None] = [None] * len(images)
    groups: dict[tuple[int, ...], list[int]] = {}
    for index, image in enumerate(images):
        groups.setdefault(tuple(image.shape), []).append(index)
    for indices in groups.values():
        for start in range(0, len(indices), batch_size):
            chunk = indices[start:start + batch_size]
            for index, features in zip(chunk, distribution.embed(torch.stack([images[i] for i in chunk])), strict=False):
                out[index] = features
    return out  # type: ignore[return-value]


def evaluate_folders(real: str | os.PathLike[str], fake: str | os.PathLike[str], *, fid: bool = True,
                     inception: nn.Module | None = None, inception_path: str | os.PathLike[str] | None = None,
                     paired: bool | None = None, delta: int = DEFAULT_DELTA, batch_size: int = 16,
                     device: torch.device | str = "cpu",
                     on_progress: Callable[[str, int, int], None] | None = None,
                     feature_cache: FeatureCache | None = None, lpips: bool | None = None,
                     lpips_net: str = DEFAULT_NET, lpips_path: str | os.PathLike[str] | None = None,
                     source_dir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Score the generated images in `fake` against the real ones in `real` (folders, recursive).

    Args:
        fid: compute FID and KID (needs the Inception weights: `inception`, or found by
            `translate.evaluation.inception.find_inception_weights(inception_path)`).
        paired: compute the paired metrics on files with the same relative name (extension aside);
            None: when every generated image has its ground truth.
        delta: the accuracy tolerance in levels; batch_size: images per Inception batch.
        on_progress: called with ("images", images read, images in both folders).
        feature_cache: where the real images' Inception features are looked up and stored (it must
            belong to the same Inception weights); None computes them every time.
        lpips: LPIPS among the paired metrics: True needs its weights, None (auto) scores it when
            they are found (else "lpips_skipped" says why), False leaves it out.
        lpips_net, lpips_path: "alex" | "vgg", and the weights as `lpips.find_lpips_weights` finds them
            (a path given, or $TRANSLATE_LPIPS_WEIGHTS, makes a missing file an error even in auto).
        source_dir: the folder `fake` was translated from (files named as translate convert names its
            outputs): "lpips_source" is the mean LPIPS of each translation to its input (needs the weights).
    Returns:
        `{"real", "fake", "n_real", "n_fake", "n_pairs", "fid", "kid_mean", "kid_std", "psnr",
        "ssim", "l1", "rmse", "accuracy", "delta", "inception", "lpips", "lpips_net", "lpips_weights",
        "lpips_skipped", "source", "n_source_pairs", "lpips_source"}` (the keys of what was computed).
    """
    real_root, fake_root = Path(real), Path(fake)
    real_files, fake_files = _folder_images("real", real_root), _folder_images("fake", fake_root)
    report: dict[str, Any] = {"real": str(real_root), "fake": str(fake_root), "n_real": len(real_files),
                              "n_fake": len(fake_files)}
    pairs = pair_files(real_files, fake_files, real_root, fake_root)
    if paired is None:
        paired = len(pairs) == len(fake_files)
    elif paired and not pairs:
        raise ValueError(f"no generated image under {fake_root} has a same-name ground truth under {real_root}; "
                         "name the outputs like their inputs (translate convert does), or leave out --paired")
    sources = _source_pairs(Path(source_dir), fake_root, fake_files) if source_dir is not None else []
    lpips_choice = _choose_lpips(lpips, paired, source_dir is not None, lpips_net, lpips_path, device)
    report.update(lpips_choice.report if lpips_choice is not None else {})
    distribution = None
    if fid:
        if inception is None:
            inception, report["inception"] = _find_inception(inception_path, device)
        distribution = DistributionScores(inception, device)
    feed = _FeatureFeed(distribution, feature_cache, batch_size, len(real_files) + len(fake_files), on_progress)
    # Each image is decoded once: pairs feed the paired metrics and the Inception features together.
    paired_files: set[Path] = set()
    if paired:
        lpips_mean = LpipsMean(lpips_choice.model if lpips_choice else None, required=lpips is True)
        report.update(n_pairs=len(pairs), delta=delta, **_score_pairs(pairs, delta, batch_size, feed, lpips_mean))
        paired_files = {path for pair in pairs for path in pair}
    if sources and lpips_choice is not None and lpips_choice.model is not None:
        report.update(source=str(source_dir), **score_sources(sources, lpips_choice.model, batch_size))
    if distribution is not None:
        for side, files in ((True, real_files), (False, fake_files)):
            feed.add_files([path for path in files if path not in paired_files], real=side)
        report.update(distribution.compute())
        if feature_cache is not None:
            report["feature_cache"] = feed.cache_report()
    return report


def _folder_images(name: str, root: Path) -> list[Path]:
    """The images under `root`, which must be a folder holding some (`name`: real | fake)."""
    if not root.is_dir():
        raise FileNotFoundError(f"--{name} {str(root)!r} is not a folder of images")
    files = list_images(root)
    if not files:
        raise FileNotFoundError(f"no images under --{name} {str(root)!r} (png, jpg, webp, ...)")
    return files


def _find_inception(path: str | os.PathLike[str] | None, device: torch.device | str) -> tuple[nn.Module, dict[str, Any]]:
    """The Inception network (`find_inception_weights(path)`) and the report's note of its weights."""
    weights = find_inception_weights(path)
    network = load_inception(weights, device=device)
    # load_inception checked an archive against the pinned hash; a .safetensors copy is not hashed.
    return network, {"path": str(weights), "sha256": None if weights.suffix == ".safetensors" else INCEPTION_SHA256}


class _FeatureFeed:
    """Hands decoded images' Inception features to `distribution` (None: FID off), the real ones
    through `cache`, and reports every image read to `on_progress`."""

    def __init__(self, distribution: DistributionScores | None, cache: FeatureCache | None, batch_size: int,
                 total: int, on_progress: Callable[[str, int, int], None] | None) -> None:
        self.distribution, self.cache, self.batch_size = distribution, cache, batch_size
        self.total, self.on_progress, self.done = total, on_progress, 0
        self.cache_before = (cache.hits, cache.misses) if cache is not None else (0, 0)

    def add(self, images: list[Tensor], paths: list[Path], real: bool) -> None:
        if self.distribution is not None and images:
            cache = self.cache if real else None
            found = [cache.get(path) for path in paths] if cache is not None else [None] * len(images)
            missing = [i for i, f in enumerate(found) if f is None]
            computed = _embed_in_order(self.distribution, [images[i] for i in missing], self.batch_size)
            for index, features in zip(missing, computed, strict=True):
                found[index] = features
                if cache is not None:
                    cache.put(paths[index], features)
            self.distribution.add_features(torch.stack(found), real=real)  # type: ignore[arg-type]
        self.done += len(images)
        if self.on_progress:
            self.on_progress("images", self.done, self.total)

    def add_files(self, files: list[Path], real: bool) -> None:
        """Decode and add `files`, a batch at a time."""
        for start in range(0, len(files), self.batch_size):
            chunk = files[start:start + self.batch_size]
            self.add([to_uint8_tensor(load_image(path)) for path in chunk], chunk, real=real)

    def cache_report(self) -> dict[str, Any]:
        """The cache's folder, and its hits and misses since this feed began."""
        assert self.cache is not None
        return {"folder": str(self.cache.folder), "hits": self.cache.hits - self.cache_before[0],
                "misses": self.cache.misses - self.cache_before[1]}


def _score_pairs(pairs: list[tuple[Path, Path]], delta: int, batch_size: int, feed: _FeatureFeed,
                 lpips: LpipsMean) -> dict[str, Any]:
    """The paired metrics' means over `pairs` (real, fake), LPIPS's with them; each decoded batch also
    goes to `feed`."""
    scores = PairedScores(delta)
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start:start + batch_size]
        reals, fakes = [], []
        for real_path, fake_path in chunk:
            real_image, fake_image = to_uint8_tensor(load_image(real_path)), to_uint8_tensor(load_image(fake_path))
            if real_image.shape != fake_image.shape:
                raise ValueError(f"{fake_path} is {tuple(fake_image.shape[1:])} but its ground truth {real_path} "
                                 f"is {tuple(real_image.shape[1:])}; paired metrics need one size (convert at "
                                 "the input's size, or score FID / KID only: paired=False, `translate eval` without --paired)")
            scores.update(fake_image[None], real_image[None])
            reals.append(real_image)
            fakes.append(fake_image)
        lpips.update(fakes, reals)
        feed.add(reals, [real_path for real_path, _ in chunk], real=True)
        feed.add(fakes, [fake_path for _, fake_path in chunk], real=False)
    return {**scores.compute(), **lpips.report()}


def _source_pairs(source_root: Path, fake_root: Path, fake_files: list[Path]) -> list[tuple[Path, Path]]:
    """(input, generated) pairs for `source_dir` (see `lpips_scores.source_pairs`); none is an error."""
    pairs = source_pairs(_folder_images("source", source_root), source_root, fake_files, fake_root)
    if not pairs:
        raise FileNotFoundError(f"no generated image under {fake_root} has a same-name input under {source_root}; "
                                "--source is the folder translate convert read (its outputs keep the input's name)")
    return pairs


def _choose_lpips(lpips: bool | None, paired: bool, sources: bool, net: str, path: str | os.PathLike[str] | None,
                  device: torch.device | str) -> LpipsChoice | None:
    """LPIPS's network and report entries, when the paired metrics (unless lpips=False) or `sources` need it."""
    if lpips is True and not paired and not sources:
        raise InvalidCombinationError("lpips=True scores LPIPS against same-name ground truth, but the paired metrics "
                                      "are off (not every generated image has one); pass paired=True (--paired), or "
                                      "source_dir (--source) for LPIPS to the inputs", "lpips", "paired")
    if not sources and not (paired and lpips is not False):
        return None
    if sources and lpips is False:
        raise InvalidCombinationError("source_dir scores LPIPS to the inputs; it cannot run with lpips=False "
                                      "(drop --no-lpips or --source)", "source_dir", "lpips")
    return lpips_for_report(required=bool(lpips) or sources, net=net, path=path, device=device)


_COLUMNS = (("fid", "FID", "{:.2f}"), ("kid_mean", "KID x 1000", "{:.2f}"), ("psnr", "PSNR (dB)", "{:.2f}"),
            ("ssim", "SSIM", "{:.4f}"), ("l1", "L1 (0-255)", "{:.2f}"), ("rmse", "RMSE (0-255)", "{:.2f}"),
            ("accuracy", "accuracy", "{:.1%}"), ("lpips", "LPIPS", "{:.4f}"),
            ("lpips_source", "LPIPS to input", "{:.4f}"))


def markdown_table(rows: Sequence[dict[str, Any]], name_key: str = "fake") -> str:
    """A markdown table of reports (one row each, named by their "model" or else by `name_key`),
    with the columns any of them has."""
    columns = [c for c in _COLUMNS if any(c[0] in row for row in rows)]
    header = ["images", "n"] + [title if key != "accuracy" else f"accuracy (delta {rows[0].get('delta', DEFAULT_DELTA)})"
                                for key, title, _ in columns]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for row in rows:
        cells = [str(row.get("model") or row.get(name_key, "")), str(row.get("n_fake", ""))]
        for key, _, fmt in columns:
            value = row.get(key)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                cells.append("")
            else:
                cells.append(fmt.format(value * 1000 if key == "kid_mean" else value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
