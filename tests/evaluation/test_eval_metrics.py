"""translate eval: paired metrics, FID / KID statistics, folder pairing, reports and the command."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from tests.helpers.training import tiny_config
from translate.cli import app
from translate.data.images import to_uint8_tensor
from translate.evaluation.aligned_split import split_aligned
from translate.evaluation.best_checkpoint import best_report
from translate.evaluation.metrics import (
    DistributionScores,
    PairedScores,
    evaluate_folders,
    markdown_table,
    pair_files,
    paired_metrics,
)
from translate.training import train

pytestmark = pytest.mark.usefixtures("single_thread")

runner = CliRunner()


def _images(n: int = 3, size: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_paired_metrics_of_identical_and_shifted_images():
    real = _images().clamp(10, 240)
    same = paired_metrics(real, real)
    assert same["psnr"].tolist() == [100.0] * 3 and torch.allclose(same["ssim"], torch.ones(3, dtype=torch.float64))
    assert same["l1"].abs().max() == 0 and same["accuracy"].min() == 1
    shifted = real + 3
    scores = paired_metrics(shifted, real)
    assert torch.allclose(scores["l1"], torch.full((3,), 3.0, dtype=torch.float64))
    assert torch.allclose(scores["rmse"], torch.full((3,), 3.0, dtype=torch.float64))
    assert torch.allclose(scores["psnr"], torch.full((3,), 20 * math.log10(255 / 3), dtype=torch.float64))
    assert scores["accuracy"].min() == 1 and paired_metrics(shifted, real, delta=2)["accuracy"].max() == 0
    assert scores["ssim"].max() < 1
    # One channel off by more than delta makes the pixel wrong: a quarter of the pixels here.
    one_channel = real.clone()
    one_channel[:, 0, :16, :16] = (one_channel[:, 0, :16, :16].int() + 9).clamp(max=255).byte()
    assert torch.allclose(paired_metrics(one_channel, real)["accuracy"], torch.full((3,), 0.75, dtype=torch.float64))


def test_paired_metrics_refusals():
    real = _images()
    with pytest.raises(ValueError, match=r"uint8 in 0..255, got shape \(3, 3, 32, 32\) dtype torch.float32"):
        paired_metrics(real.float(), real)
    with pytest.raises(ValueError, match=r"fake \(3, 3, 16, 16\) and real \(3, 3, 32, 32\)"):
        paired_metrics(_images(size=16), real)
    with pytest.raises(ValueError, match="delta must be an integer >= 0.*-1"):
        paired_metrics(real, real, delta=-1)


def test_paired_scores_average_over_batches():
    real, fake = _images(4, seed=1), _images(4, seed=2)
    whole = {k: float(v.mean()) for k, v in paired_metrics(fake, real).items()}
    scores = PairedScores()
    scores.update(fake[:1], real[:1])
    scores.update(fake[1:], real[1:])
    assert scores.compute() == pytest.approx(whole)
    with pytest.raises(ValueError, match="no image pairs"):
        PairedScores().compute()


class _ColourFeatures(torch.nn.Module):
    """A stand-in for Inception: mean colour and its square, 6 features of images in [0, 1]."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(2, 3))
        return torch.cat([mean, mean**2], dim=1)


def test_distribution_scores_grow_with_the_gap_between_sets():
    real = _images(40, 8, seed=3)

    def score(fake: torch.Tensor) -> dict:
        scores = DistributionScores(_ColourFeatures(), kid_subsets=10)
        scores.update(real[:20], real=True)
        scores.update(real[20:], real=True)
        scores.update(fake, real=False)
        return scores.compute()

    same, near, far = score(real), score((real.int() + 20).clamp(max=255).byte()), score(real // 4)
    assert same["fid"] == pytest.approx(0, abs=1e-6) and abs(same["kid_mean"]) < 1e-3
    assert 0 < near["fid"] < far["fid"] and near["kid_mean"] < far["kid_mean"]
    assert same["kid_subset_size"] == 20 and near["kid_std"] > 0
    lonely = DistributionScores(_ColourFeatures())
    lonely.update(real[:1], real=True)
    lonely.update(real[:5], real=False)
    with pytest.raises(ValueError, match="at least 2 real and 2 generated images, got 1 and 5"):
        lonely.compute()
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\) uint8"):
        lonely.update(real.float(), real=True)


def _write(folder: Path, names: list[str], images: torch.Tensor) -> None:
    for name, image in zip(names, images, strict=False):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(folder / name)


def test_pair_files_matches_relative_names_across_extensions(tmp_path):
    real = [tmp_path / "r" / "a" / "x.jpg", tmp_path / "r" / "y.png"]
    fake = [tmp_path / "f" / "a" / "x.png", tmp_path / "f" / "y.webp", tmp_path / "f" / "z.png"]
    assert pair_files(real, fake, tmp_path / "r", tmp_path / "f") == [(real[0], fake[0]), (real[1], fake[1])]


def test_evaluate_folders_paired_and_distribution(tmp_path):
    real, fake = _images(4, seed=4), _images(4, seed=5)
    _write(tmp_path / "real", ["a/1.png", "2.png", "3.png", "4.png"], real)
    _write(tmp_path / "fake", ["a/1.png", "2.png", "3.png", "4.png"], fake)
    report = evaluate_folders(tmp_path / "real", tmp_path / "fake", inception=_ColourFeatures())
    expected = {k: float(v.mean()) for k, v in paired_metrics(fake, real).items()}
    assert report["n_pairs"] == 4 and report["delta"] == 5
    assert {k: report[k] for k in expected} == pytest.approx(expected)
    assert "kid_mean" in report and "inception" not in report

    def direct_fid(fakes: torch.Tensor) -> float:
        direct = DistributionScores(_ColourFeatures())
        direct.update(real, real=True)
        direct.update(fakes, real=False)
        return direct.compute()["fid"]

    assert report["fid"] == pytest.approx(direct_fid(fake)) and report["fid"] > 0
    # An unmatched generated image turns the paired metrics off (auto); forced on, the pairs are scored
    # and the extra image still counts for FID.
    extra = _images(1, seed=6)
    _write(tmp_path / "fake", ["extra.png"], extra)
    report = evaluate_folders(tmp_path / "real", tmp_path / "fake", inception=_ColourFeatures())
    assert "psnr" not in report and report["n_fake"] == 5
    assert report["fid"] == pytest.approx(direct_fid(torch.cat([fake, extra])))
    forced = evaluate_folders(tmp_path / "real", tmp_path / "fake", inception=_ColourFeatures(), paired=True)
    assert forced["n_pairs"] == 4 and forced["psnr"] == pytest.approx(expected["psnr"])
    assert forced["fid"] == pytest.approx(report["fid"])
    table = markdown_table([report])
    assert "FID" in table and "PSNR" not in table and str(tmp_path / "fake") in table


def test_evaluate_folders_refusals(tmp_path):
    _write(tmp_path / "real", ["1.png"], _images(1))
    _write(tmp_path / "fake", ["1.png"], _images(1, size=16))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"is \(16, 16\) but its ground truth .* is \(32, 32\)"):
        evaluate_folders(tmp_path / "real", tmp_path / "fake", fid=False)
    with pytest.raises(FileNotFoundError, match="--fake .*nowhere.* is not a folder"):
        evaluate_folders(tmp_path / "real", tmp_path / "nowhere", fid=False)
    with pytest.raises(FileNotFoundError, match="no images under --real"):
        evaluate_folders(tmp_path / "empty", tmp_path / "fake", fid=False)
    _write(tmp_path / "other", ["9.png"], _images(1))
    with pytest.raises(ValueError, match="no generated image .* has a same-name ground truth"):
        evaluate_folders(tmp_path / "real", tmp_path / "other", fid=False, paired=True)


def test_split_aligned_writes_halves_in_either_direction(tmp_path):
    pair = torch.cat([torch.zeros(1, 3, 8, 8, dtype=torch.uint8), torch.full((1, 3, 8, 8), 200, dtype=torch.uint8)], 3)
    _write(tmp_path / "val", ["p.jpg"], pair)
    inputs, targets = split_aligned(tmp_path / "val", tmp_path / "ab")
    assert Image.open(inputs / "p.png").size == (8, 8)
    assert Image.open(inputs / "p.png").getpixel((0, 0))[0] < 20 < Image.open(targets / "p.png").getpixel((0, 0))[0]
    inputs, targets = split_aligned(tmp_path / "val", tmp_path / "ba", direction="BtoA", load_size=12)
    assert Image.open(inputs / "p.png").getpixel((0, 0))[0] > 180 and Image.open(targets / "p.png").size == (12, 12)
    with pytest.raises(ValueError, match="load_size must be a positive integer.*0"):
        split_aligned(tmp_path / "val", tmp_path / "x", load_size=0)
    with pytest.raises(ValueError, match="direction must be AtoB or BtoA, got 'up'"):
        split_aligned(tmp_path / "val", tmp_path / "x", direction="up")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no aligned A.B images"):
        split_aligned(tmp_path / "empty", tmp_path / "x")


def test_cli_eval_writes_json_and_markdown_and_refuses_bad_arguments(tmp_path):
    real, fake = _images(3, seed=7), _images(3, seed=8)
    _write(tmp_path / "real", ["1.png", "2.png", "3.png"], real)
    _write(tmp_path / "fake", ["1.png", "2.png", "3.png"], fake)
    result = runner.invoke(app, ["eval", "--real", str(tmp_path / "real"), "--fake", str(tmp_path / "fake"),
                                 "--no-fid", "--json", str(tmp_path / "r.json"), "--markdown", str(tmp_path / "r.md")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["n_pairs"] == 3 and report["psnr"] == pytest.approx(float(paired_metrics(fake, real)["psnr"].mean()))
    assert (tmp_path / "r.md").read_text().startswith("| images | n | PSNR")
    result = runner.invoke(app, ["eval", "--model", "maps_aerial2map"])
    assert result.exit_code == 2 and "--model with --data" in result.output
    result = runner.invoke(app, ["eval", "--real", str(tmp_path / "real")])
    assert result.exit_code == 2 and "--real DIR and --fake DIR" in result.output


def test_cli_eval_model_translates_an_aligned_split(tmp_path):
    pairs = torch.cat([_images(2, 64, seed=9), _images(2, 64, seed=10)], dim=3)
    _write(tmp_path / "data" / "val", ["1.jpg", "2.jpg"], pairs)
    result = runner.invoke(app, ["eval", "--model", "maps_aerial2map", "--data", str(tmp_path / "data"), "--out",
                                 str(tmp_path / "ev"), "--no-fid", "--json", str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["n_pairs"] == 2 and report["real"] == str(tmp_path / "ev" / "target")
    assert sorted(p.name for p in (tmp_path / "ev" / "output").glob("*.png")) == ["1.png", "2.png"]


def test_cli_eval_baseline_scores_the_untranslated_inputs(model_dir, paired_data, tmp_path):
    result = runner.invoke(app, ["eval", "--model", str(model_dir), "--data", str(paired_data), "--phase", "test",
                                 "--limit", "2", "--out", str(tmp_path / "ev"), "--no-fid", "--no-lpips", "--baseline",
                                 "--json", str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    model, baseline = json.loads((tmp_path / "r.json").read_text())["reports"]
    assert model["fake"] == str(tmp_path / "ev" / "output") and baseline["model"] == "untranslated input"
    inputs, targets = (torch.stack([to_uint8_tensor(Image.open(path).convert("RGB"))
                                    for path in sorted((tmp_path / "ev" / name).glob("*.png"))])
                       for name in ("input", "target"))
    assert baseline["n_pairs"] == 2 and baseline["l1"] == pytest.approx(float(paired_metrics(inputs, targets)["l1"].mean()))
    result = runner.invoke(app, ["eval", "--real", str(tmp_path / "ev" / "target"), "--fake", str(tmp_path / "ev" / "input"),
                                 "--baseline"])
    assert result.exit_code == 2 and "--baseline goes with --model and --data" in result.output


def test_best_report_direction_and_refusals():
    reports = [{"model": "a", "l1": 3.0, "psnr": 20.0}, {"model": "b", "l1": 2.0, "psnr": 18.0}]
    assert best_report(reports, "l1")["model"] == "b" and best_report(reports, "psnr")["model"] == "a"
    with pytest.raises(ValueError, match="metric must be one of .*got 'speed'"):
        best_report(reports, "speed")
    with pytest.raises(ValueError, match="no report has 'fid'"):
        best_report(reports, "fid")


def test_cli_eval_scores_every_checkpoint_of_a_run_and_names_the_best(paired_data, tmp_path):
    run = tmp_path / "run"
    train(tiny_config("pix2pix", data=paired_data, out=run, ngf=4, ndf=4, save_epoch_freq=1, batch_size=2))
    result = runner.invoke(app, ["eval", "--model", str(run), "--data", str(paired_data), "--phase", "test",
                                 "--all-checkpoints", "--no-fid", "--out", str(tmp_path / "ev"),
                                 "--json", str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert [Path(r["model"]).name for r in report["reports"]] == ["epoch_0001.pt", "epoch_0002.pt"]
    assert report["best_by"] == "l1" and report["best"] == min(report["reports"], key=lambda r: r["l1"])["model"]
    assert "best checkpoint by l1" in result.output and "epoch_0002.pt" in result.output
    result = runner.invoke(app, ["eval", "--model", str(paired_data), "--data", str(paired_data), "--all-checkpoints",
                                 "--no-fid"])
    assert result.exit_code == 2 and "is a directory without config.json" in result.output


def test_feature_cache_is_keyed_by_content_and_survives_damage(tmp_path):
    from translate.evaluation.feature_cache import FeatureCache

    _write(tmp_path / "img", ["a.png", "b.png"], _images(2, seed=7))
    a, b = tmp_path / "img" / "a.png", tmp_path / "img" / "b.png"
    cache = FeatureCache(tmp_path / "cache", "f" * 64)
    assert cache.get(a) is None
    cache.put(a, torch.tensor([1.0, 2.0], dtype=torch.float64))
    (tmp_path / "img" / "renamed.png").write_bytes(a.read_bytes())
    assert torch.equal(cache.get(tmp_path / "img" / "renamed.png"), torch.tensor([1.0, 2.0]))
    assert cache.get(b) is None, "other bytes, other entry"
    assert FeatureCache(tmp_path / "cache", "e" * 64).get(a) is None, "other weights, other entry"
    next(cache.folder.glob("*.npy")).write_bytes(b"not an array")
    assert cache.get(a) is None and (cache.hits, cache.misses) == (1, 3)
    assert not list(cache.folder.glob("*.tmp"))
    with pytest.raises(ValueError, match="weights_id"):
        FeatureCache(tmp_path, "../up")


def test_evaluate_folders_reuses_cached_real_features_only(tmp_path):
    from translate.evaluation.feature_cache import FeatureCache

    real, fake = _images(5, seed=8), _images(5, seed=9)
    _write(tmp_path / "real", [f"{i}.png" for i in range(5)], real)
    _write(tmp_path / "fake", [f"{i}.png" for i in range(4)] + ["extra.png"], fake)
    cache = FeatureCache(tmp_path / "cache", "c" * 64)
    first = evaluate_folders(tmp_path / "real", tmp_path / "fake", inception=_ColourFeatures(), feature_cache=cache)
    assert first["feature_cache"]["misses"] == 5 and first["feature_cache"]["hits"] == 0
    assert len(list(cache.folder.glob("*.npy"))) == 5, "generated images are not cached"
    _write(tmp_path / "fake", ["0.png"], real[:1])  # a different model's outputs, same real set
    second = evaluate_folders(tmp_path / "real", tmp_path / "fake", inception=_ColourFeatures(), feature_cache=cache)
    fresh = evaluate_folders(tmp_path / "real", tmp_path / "fake", inception=_ColourFeatures())
    assert second["feature_cache"] == {"folder": str(cache.folder), "hits": 5, "misses": 0}
    assert second["fid"] == pytest.approx(fresh["fid"], rel=1e-5) and second["fid"] != pytest.approx(first["fid"])


def test_feature_cache_hashes_a_missed_file_once(tmp_path, monkeypatch):
    from translate.evaluation import feature_cache as module

    _write(tmp_path / "img", ["a.png"], _images(1, seed=10))
    path = tmp_path / "img" / "a.png"
    calls, sha256_file = [], module.sha256_file
    monkeypatch.setattr(module, "sha256_file", lambda file: calls.append(1) or sha256_file(file))
    cache = module.FeatureCache(tmp_path / "cache", "d" * 64)
    assert cache.get(path) is None
    cache.put(path, torch.ones(3))
    assert len(calls) == 1
    path.write_bytes(path.read_bytes() + b"changed")  # new size: hashed again, a miss
    assert cache.get(path) is None and len(calls) == 2
