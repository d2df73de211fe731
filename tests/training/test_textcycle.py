"""The textcycle task: config, domain data set, step, CLI training + resume, making domain folders and
scoring a model on them."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from typer.testing import CliRunner

from tests.helpers.training import tiny_config, tiny_flags
from translate.cli import app
from translate.data import PreprocessConfig
from translate.data.domains import DomainDataset, read_domains
from translate.data.text_domains import split_domains
from translate.models import build_text_generator, size_multiple, text_generator_names
from translate.text.model import TextTranslationModel, load_text_model
from translate.training import make_config, read_checkpoint, train
from translate.training.tasks.textcycle import (
    PromptedImagePool,
    TextCycleStep,
    generator_architecture,
)

pytestmark = pytest.mark.usefixtures("single_thread")

runner = CliRunner()
PROMPTS = {"blue": ["a blue picture", "blue"], "red": ["a red picture"]}


def _write_domain(folder: Path, prompts: list[str] | None, n_images: int, value: int) -> None:
    folder.mkdir(parents=True)
    if prompts is not None:
        (folder / "prompts.txt").write_text("# phrasings\n" + "\n".join(prompts) + "\n\n")
    for i in range(n_images):
        pixels = np.full((40, 40, 3), value, np.uint8)
        pixels[i, :, :] = 255 - value  # every image different
        Image.fromarray(pixels).save(folder / f"{i:02d}.png")


@pytest.fixture(scope="module")
def domains(tmp_path_factory) -> Path:
    """blue: 2 images, red: 4 images, each with prompts; under train/, plus a val/ split."""
    root = tmp_path_factory.mktemp("domains")
    _write_domain(root / "train" / "blue", PROMPTS["blue"], 2, 40)
    _write_domain(root / "train" / "red", PROMPTS["red"], 4, 200)
    _write_domain(root / "val" / "blue", PROMPTS["blue"], 1, 40)
    _write_domain(root / "val" / "red", PROMPTS["red"], 1, 200)
    return root


@pytest.fixture(scope="module")
def maps_like(paired_data, tmp_path_factory) -> Path:
    """The shared paired A|B folder (train/ 4 + test/ 5 pairs, 40 px) split into aerial/ and map/ domains."""
    out = tmp_path_factory.mktemp("maps_domains")
    split_domains(paired_data, out)
    return out


@pytest.fixture(scope="module")
def trained_run(maps_like, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "run"
    result = runner.invoke(app, ["train", "textcycle", "--data", str(maps_like), "--out", str(run),
                                 *tiny_flags("textcycle", max_steps=2)])
    assert result.exit_code == 0, result.output
    return run


# --- config -----------------------------------------------------------------------------------

def test_defaults_follow_cyclegan():
    c = make_config("textcycle")
    assert (c.netG, c.netD, c.norm, c.gan_mode, c.beta1, c.beta2, c.flip) == (
        "text_resnet_6blocks", "projection", "instance", "lsgan", 0.5, 0.999, True)
    assert (c.lambda_A, c.lambda_identity, c.pool_size, c.load_size, c.crop_size, c.text_encoder) == (
        10.0, 0.5, 50, 286, 256, "byte")


@pytest.mark.parametrize("overrides, needle", [
    ({"netG": "resnet_9blocks"}, "netG='resnet_9blocks' is not one of text_resnet_6blocks"),
    ({"netD": "basic"}, "netD='basic' is not one of projection"),
    ({"netG": "text_unet_128", "crop_size": 96, "load_size": 100}, "multiples of 128, but crop_size=96"),
    ({"gan_mode": "wgangp"}, "gan_mode='wgangp' is not available for textcycle"),
    ({"input_nc": 1}, "input_nc and output_nc must be equal"),
    ({"text_encoder": "bert"}, "text_encoder='bert' is not one of"),
])
def test_config_refusals(overrides, needle):
    with pytest.raises(ValueError, match=needle):
        make_config("textcycle", overrides={"data": "x", "out": "y", **overrides})


@pytest.mark.parametrize("net_g", text_generator_names("textcycle"))
def test_every_generator_name_builds_at_its_size_multiple(net_g):
    multiple = size_multiple(net_g)
    size = max(multiple, 8)
    config = make_config("textcycle", overrides={"netG": net_g, "ngf": 4, "crop_size": size, "load_size": size})
    architecture = generator_architecture(config, cond_dim=8)
    g = build_text_generator(architecture)
    out = g(torch.zeros(1, 3, size, size), torch.zeros(1, 8))
    assert out.shape == (1, 3, size, size)
    assert architecture["name"] in ("text_resnet", "text_unet")


# --- data -------------------------------------------------------------------------------------

def test_dataset_balances_domains_and_draws_another_target(domains):
    dataset = DomainDataset(domains, preprocess=PreprocessConfig(load_size=36, crop_size=32), seed=3)
    assert dataset.folder == domains / "train" and dataset.domain_names == ["blue", "red"]
    assert dataset.prompts == PROMPTS and len(dataset) == 2 * 4
    items = [dataset[i] for i in range(len(dataset))]
    assert Counter(int(item["domain"]) for item in items) == {0: 4, 1: 4}
    # red's 4 images once each, blue's 2 images twice each
    assert Counter(item["path"] for item in items if item["domain"] == 1).most_common(1)[0][1] == 1
    assert set(Counter(item["path"] for item in items if item["domain"] == 0).values()) == {2}
    for item in items:
        source, target = int(item["domain"]), int(item["target_domain"])
        assert source != target
        assert item["image"].dtype == torch.uint8 and item["image"].shape == (3, 36, 36)
        assert item["prompt"] in PROMPTS[dataset.domain_names[source]]
        assert item["cycle_prompt"] in PROMPTS[dataset.domain_names[source]]
        assert item["target_prompt"] in PROMPTS[dataset.domain_names[target]]
        if source == 0:  # blue has two phrasings: the way back uses the other one
            assert item["cycle_prompt"] != item["prompt"]
    again = DomainDataset(domains, preprocess=PreprocessConfig(load_size=36, crop_size=32), seed=3)
    assert [again[i]["path"] for i in range(8)] == [item["path"] for item in items]
    again.set_epoch(1)
    orders = {tuple(again[i]["path"] for i in range(8)), tuple(item["path"] for item in items)}
    assert len(orders) == 2  # a new epoch, a new order


def test_dataset_splits(domains):
    assert DomainDataset(domains, phase="val").folder == domains / "val"
    assert read_domains(domains / "train") == PROMPTS  # the domain folder itself works too
    with pytest.raises(FileNotFoundError, match="no test split"):
        DomainDataset(domains, phase="test")


@pytest.mark.parametrize("layout, error, needle", [
    ({}, FileNotFoundError, "has no subfolders"),
    ({"map": (["a map"], 2)}, ValueError, "needs at least two"),
    ({"map": (["a map"], 2), "aerial": (None, 2)}, FileNotFoundError, "has no .*prompts.txt"),
    ({"map": (["a map"], 2), "aerial": (["# only a comment"], 2)}, ValueError, "holds no prompt"),
    ({"map": (["a map"], 2), "aerial": (["aerial"], 0)}, FileNotFoundError, "aerial holds no images"),
])
def test_bad_domain_folders_are_refused_with_the_fix(tmp_path, layout, error, needle):
    root = tmp_path / "data"
    root.mkdir()
    Image.new("RGB", (8, 8)).save(root / "stray.png")
    for name, (prompts, n_images) in layout.items():
        _write_domain(root / name, prompts, n_images, 100)
    with pytest.raises(error, match=needle) as caught:
        DomainDataset(root)
    assert "make-text-domains" in str(caught.value)  # every message shows the layout and the command
    with pytest.raises(FileNotFoundError, match="does not exist"):
        DomainDataset(tmp_path / "missing")


# --- step -------------------------------------------------------------------------------------

def _grad_norm(module: torch.nn.Module) -> float:
    return sum(float(p.grad.abs().sum()) for p in module.parameters() if p.grad is not None)


def test_step_trains_generator_discriminator_and_text_encoder():
    torch.manual_seed(0)
    config = tiny_config("textcycle", pool_size=2)
    step = TextCycleStep(config, torch.device("cpu"), domains=PROMPTS)
    real = torch.rand(2, 3, 32, 32) * 2 - 1
    losses = step.train_step(real, ["blue", "a red picture"], ["a red picture", "a blue picture"],
                             ["a blue picture", "a red picture"])
    assert set(losses) == {"G_GAN", "cycle", "idt", "G", "D"}
    assert all(torch.isfinite(value) for value in losses.values())
    assert _grad_norm(step.g) > 0 and _grad_norm(step.d) > 0
    assert _grad_norm(step.text) > 0  # the byte encoder learns through the matching-aware D loss
    # FiLM starts at identity; after a step the prompt steers the generator.
    with torch.no_grad():
        cond = step.text.encode(["a red picture", "a blue picture"])
        out = step.g(real[:1].expand(2, -1, -1, -1), cond)
    assert not torch.allclose(out[0], out[1])
    assert len(step.visuals()) == 3 and step.visuals()[1].shape == real.shape
    with pytest.raises(ValueError, match="expected 2 prompts"):
        step.train_step(real, ["blue"], ["red"])


def test_step_without_identity_with_batch_norm():
    torch.manual_seed(0)
    config = tiny_config("textcycle", norm="batch", lambda_identity=0.0, pool_size=0)
    step = TextCycleStep(config, torch.device("cpu"), domains=PROMPTS)
    losses = step.train_step(torch.rand(2, 3, 32, 32) * 2 - 1, ["blue", "blue"], ["a red picture"] * 2)
    assert "idt" not in losses and all(torch.isfinite(value) for value in losses.values())


def test_prompted_pool_keeps_each_image_with_its_prompt():
    pool = PromptedImagePool(3, seed=0)
    for round_ in range(6):
        values = [round_ * 10 + i for i in range(2)]
        images = torch.tensor(values, dtype=torch.float32).view(2, 1, 1, 1)
        out, texts = pool.query(images, [f"prompt {v}" for v in values])
        assert [f"prompt {int(v)}" for v in out.flatten()] == texts
    copy = PromptedImagePool(3, seed=99)
    copy.load_state_dict(pool.state_dict())
    probe = torch.tensor([100.0, 101.0]).view(2, 1, 1, 1)
    a, b = pool.query(probe, ["x", "y"]), copy.query(probe, ["x", "y"])
    assert torch.equal(a[0], b[0]) and a[1] == b[1]


# --- the loop, the CLI, resume ----------------------------------------------------------------

def test_cli_training_writes_a_model_that_translates_both_ways(trained_run, maps_like):
    model = load_text_model(trained_run)
    assert isinstance(model, TextTranslationModel) and model.config["kind"] == "textcycle"
    assert list(model.domains) == ["aerial", "map"] and model.domains["map"][0] == "map"
    aerial = torch.rand(2, 3, 32, 32) * 2 - 1
    to_map, to_aerial = model.translate(aerial, "map"), model.translate(aerial, ["aerial photo", "a street map"])
    for out in (to_map, to_aerial):
        assert out.shape == aerial.shape and out.abs().max() <= 1
    # The byte encoder saved with the generator is the trained one, from the checkpoint.
    state = read_checkpoint(trained_run)["models"]["text"]
    for key, value in model.text_encoder.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert list((trained_run / "samples").glob("*.png"))
    result = runner.invoke(app, ["train", "--resume", str(trained_run), "--max-steps", "3"])
    assert result.exit_code == 0, result.output
    assert read_checkpoint(trained_run)["step"] == 3


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(domains, tmp_path):
    # 8 items at batch 2: 4 steps per epoch; the pool (size 2) fills and swaps within these steps.
    def config(run: str, steps: int):
        return tiny_config("textcycle", data=domains, out=tmp_path / run, max_steps=steps, pool_size=2)

    train(config("straight", 3))
    train(config("resumed", 2))
    state = read_checkpoint(tmp_path / "resumed")
    assert state["pools"]["fake"]["texts"]  # the pool's prompts travel with the checkpoint
    train(make_config(None, base=state["config"], overrides={"max_steps": 3}), resume_state=state)
    a = load_file(tmp_path / "straight" / "weights" / "textcycle" / "model.safetensors")
    b = load_file(tmp_path / "resumed" / "weights" / "textcycle" / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_cli_refuses_bad_data_with_the_layout(tmp_path):
    (tmp_path / "data" / "only").mkdir(parents=True)
    (tmp_path / "data" / "only" / "prompts.txt").write_text("a map\n")
    result = runner.invoke(app, ["train", "textcycle", "--data", str(tmp_path / "data"), "--out",
                                 str(tmp_path / "run"), *tiny_flags("textcycle")])
    assert result.exit_code == 2 and "needs at least two" in result.output


# --- data make-text-domains, eval -------------------------------------------------------------

def test_make_text_domains_splits_pairs_by_name(maps_like, paired_data, tmp_path):
    for split, count in (("train", 4), ("test", 5)):
        aerial, maps = maps_like / split / "aerial", maps_like / split / "map"
        names = sorted(p.name for p in aerial.glob("*.jpg"))
        assert len(names) == count and names == sorted(p.name for p in maps.glob("*.jpg"))
        assert Image.open(aerial / names[0]).size == (40, 40)
    assert read_domains(maps_like)["aerial"][0] == "aerial photo"
    result = runner.invoke(app, ["data", "make-text-domains", "--data", str(paired_data), "--out", str(tmp_path / "out"),
                                 "--names", "day,night", "--prompts-a", "a day photo; daytime", "--prompts-b", "night",
                                 "--size", "16", "--format", "png"])
    assert result.exit_code == 0, result.output
    assert "(train 4, test 5)" in result.output
    assert (tmp_path / "out" / "train" / "day" / "prompts.txt").read_text() == "a day photo\ndaytime\n"
    assert Image.open(tmp_path / "out" / "test" / "night" / "0000.png").size == (16, 16)
    result = runner.invoke(app, ["data", "make-text-domains", "--data", str(tmp_path / "out" / "train"), "--out",
                                 str(tmp_path / "x")])  # no splits
    assert result.exit_code == 2 and "holds none of train/, val/, test/" in result.output
    result = runner.invoke(app, ["data", "make-text-domains", "--data", str(paired_data), "--out", str(tmp_path / "y"),
                                 "--names", "day,day"])
    assert result.exit_code == 2 and "--names" in result.output and "two different folder names" in result.output
    result = runner.invoke(app, ["data", "make-text-domains", "--data", str(paired_data), "--out", str(tmp_path / "y"),
                                 "--format", "gif"])
    assert result.exit_code == 2 and "--format 'gif' is not one of jpg, png" in result.output


def test_eval_textcycle_reports_both_directions_beside_identity(trained_run, maps_like, tmp_path):
    grid = tmp_path / "grid.png"
    output = runner.invoke(app, ["eval", "--model", str(trained_run), "--data", str(maps_like), "--phase", "test",
                                 "--limit", "2", "--load-size", "32", "--grid", str(grid), "--json", str(tmp_path / "r.json")])
    assert output.exit_code == 0, output.output
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["pairs"] == 2 and list(result["directions"]) == ["aerial->map", "map->aerial"]
    assert [d["prompt"] for d in result["directions"].values()] == ["map", "aerial photo"]
    for direction in result["directions"].values():
        assert 0 < direction["rmse_255"] < 255 and np.isfinite(direction["rmse_unit"])
        # the identity's input is 8-bit already: both scales agree exactly
        assert direction["identity"]["rmse_255"] == pytest.approx(direction["identity"]["rmse_unit"] * 127.5)
        # no constant image does better than the targets' mean colour: it beats the identity here
        assert 0 < direction["mean_colour"]["rmse_255"] < direction["identity"]["rmse_255"]
    assert Image.open(grid).size == (6 * 34 + 2, 2 * 34 + 2)  # 6 columns, 2 pairs, 2 px padding
    assert "| 2 | 32 |" in output.output
    refused = runner.invoke(app, ["eval", "--model", str(trained_run), "--data", str(maps_like), "--phase", "test",
                                  "--load-size", "30"])
    assert refused.exit_code == 2 and "--load-size 30: expected a multiple of 4" in refused.output
