"""Text models in export / generate / convert / info: ONNX export in each text input mode with
parity, the ONNX Runtime runner against PyTorch, baked prompts, refusals, convert --prompt."""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from PIL import Image
from torch import Tensor
from typer.testing import CliRunner

from translate.cli import app
from translate.deploy import export as export_module
from translate.deploy.backends import OrtTextBackend, TorchTextBackend, make_text_backend
from translate.deploy.convert import convert_folder
from translate.deploy.export import ExportParityError, export_onnx, read_onnx_metadata
from translate.deploy.text_export import OnnxTextModel, TextParityCase, encoder_file_path, export_text_onnx
from translate.formats import locator
from translate.models.conditioned import TextResnetGenerator, TextToImageGenerator
from translate.text import ByteTextEncoder, TextEncoder
from translate.text import encoders as encoders_module
from translate.text.model import load_text_model, save_text_model

pytestmark = pytest.mark.usefixtures("single_thread")
runner = CliRunner()
COND_DIM, NOISE_DIM = 16, 8
DOMAINS = {"aerial": ["aerial photo", "a satellite image"], "map": ["map", "a street map"]}
T2I_ARCHITECTURE = {"name": "text2image", "noise_dim": NOISE_DIM, "cond_dim": COND_DIM, "ngf": 8, "image_size": 32}
TC_ARCHITECTURE = {"name": "text_resnet", "input_nc": 3, "output_nc": 3, "ngf": 8, "n_blocks": 1, "cond_dim": COND_DIM}


def _randomize_films(generator: torch.nn.Module) -> None:
    # FiLMs start at the identity (the text has no effect); random ones make the prompt matter.
    with torch.no_grad():
        for name, parameter in generator.named_parameters():
            if "film" in name:
                parameter.normal_(0, 0.2)


def _save(root: Path, kind: str, encoder: TextEncoder | None = None, encoder_config: dict | None = None) -> Path:
    torch.manual_seed(0)
    if kind == "text2image":
        generator, architecture = TextToImageGenerator(NOISE_DIM, COND_DIM, ngf=8, image_size=32), T2I_ARCHITECTURE
    else:
        generator, architecture = TextResnetGenerator(3, 3, ngf=8, n_blocks=1, cond_dim=COND_DIM), TC_ARCHITECTURE
    _randomize_films(generator)
    if encoder is None:
        encoder = ByteTextEncoder(dim=COND_DIM, layers=1, heads=2, max_length=24)
        encoder_config = {"name": "byte", **encoder.config()}
    return save_text_model(generator, encoder, root / kind, kind=kind, architecture=architecture,
                           text_encoder_config=encoder_config,
                           domains=DOMAINS if kind == "textcycle" else None)


@pytest.fixture(scope="module")
def t2i(tmp_path_factory) -> Path:
    return _save(tmp_path_factory.mktemp("t2i"), "text2image")


@pytest.fixture(scope="module")
def textcycle(tmp_path_factory) -> Path:
    return _save(tmp_path_factory.mktemp("textcycle"), "textcycle")


@pytest.fixture(scope="module")
def textcycle_onnx(textcycle, tmp_path_factory) -> Path:
    return export_text_onnx(textcycle, tmp_path_factory.mktemp("tc_onnx") / "tc.onnx").path


class FakeFrozenEncoder(TextEncoder):
    """Stands in for minilm (frozen, pretrained, not exportable): a fixed vector per normalised text."""

    def __init__(self, path_or_name: str = "fake", dim: int = COND_DIM) -> None:
        super().__init__()
        self.dim = dim

    def encode(self, texts: Sequence[str]) -> Tensor:
        rows = [torch.randn(self.dim, generator=torch.Generator().manual_seed(zlib.crc32(t.lower().encode())))
                for t in texts]
        return torch.stack(rows)


def _reference(model_dir: Path, kind: str, prompts: list[str], seed: int = 3) -> tuple[Tensor, Tensor | None]:
    """PyTorch's output for the comparisons below (and the images it translated)."""
    model = load_text_model(model_dir)
    if kind == "text2image":
        return model.generate(prompts, n=2, seed=seed), None
    images = torch.rand(len(prompts), 3, 32, 40, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    return model.translate(images, prompts), images


# --- export, each kind x text input --------------------------------------------------------


@pytest.mark.parametrize("kind", ["text2image", "textcycle"])
@pytest.mark.parametrize("mode", ["ids", "embedding", "baked"])
def test_export_parity_inputs_and_runner_match_pytorch(kind, mode, t2i, textcycle, tmp_path):
    model_dir = t2i if kind == "text2image" else textcycle
    prompts = ["a red circle", "map", "aerial photo"]
    options = {"embedding": {"text_input": "embedding"}, "baked": {"bake_prompts": prompts}}.get(mode, {})
    report = export_onnx(model_dir, tmp_path / "m.onnx", **options)

    assert report.text_input == mode and report.path.is_file()
    assert report.max_abs_error <= 1e-4 and all(isinstance(c, TextParityCase) for c in report.cases)
    model_cases = [c for c in report.cases if c.part == "model"]
    assert {c.batch for c in model_cases} == {1, 3}
    if mode == "ids":  # several lengths, the longest at max_length
        assert len({c.length for c in model_cases}) >= 2 and max(c.length for c in model_cases) == 24
    session = ort.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
    inputs = {i.name: i.type for i in session.get_inputs()}
    first = {"noise": "tensor(float)"} if kind == "text2image" else {"image": "tensor(float)"}
    text = {"ids": {"ids": "tensor(int64)", "mask": "tensor(bool)"}, "embedding": {"embedding": "tensor(float)"},
            "baked": {"prompt_index": "tensor(int64)"}}[mode]
    assert inputs == {**first, **text}
    assert (report.text_encoder_path is not None) == (mode == "embedding")
    assert encoder_file_path(report.path).is_file() == (mode == "embedding")

    onnx_model = OnnxTextModel(report.path)
    expected, images = _reference(model_dir, kind, prompts)
    got = onnx_model.generate(prompts, n=2, seed=3) if kind == "text2image" else onnx_model.translate(images, prompts)
    assert got.shape == expected.shape
    assert (got - expected).abs().max() <= 1e-4


def test_metadata_round_trip(textcycle_onnx, textcycle):
    metadata = read_onnx_metadata(textcycle_onnx)
    assert metadata["kind"] == "textcycle" and metadata["tokenizer"] == "byte-v1"
    assert (metadata["max_length"], metadata["pad_id"], metadata["bos_id"], metadata["eos_id"]) == (24, 0, 1, 2)
    assert metadata["text_input"] == "ids" and metadata["baked_prompts"] is None
    assert metadata["domains"] == DOMAINS and metadata["text_encoder"]["name"] == "byte"
    assert metadata["embedding_dim"] == COND_DIM and metadata["size_multiple"] == 4
    assert set(metadata["inputs"]) == {"image", "ids", "mask"}
    assert 0 < metadata["parity_max_abs_error"] <= 1e-4 and metadata["parity_tolerance"] == 1e-4
    assert len(metadata["parity_cases"]) == 4
    config = json.loads((textcycle / "config.json").read_text())
    assert metadata["architecture"] == config["architecture"]


def test_text2image_metadata_and_encoder_file(t2i, tmp_path):
    report = export_text_onnx(t2i, tmp_path / "g.onnx", text_input="embedding")
    metadata = read_onnx_metadata(report.path)
    assert (metadata["kind"], metadata["noise_dim"], metadata["image_size"]) == ("text2image", NOISE_DIM, 32)
    assert metadata["text_encoder_file"] == "g.text_encoder.onnx"
    encoder_metadata = read_onnx_metadata(report.text_encoder_path)
    assert encoder_metadata["kind"] == "text_encoder" and encoder_metadata["max_length"] == 24
    assert set(encoder_metadata["inputs"]) == {"ids", "mask"}
    # The encoder file reproduces PyTorch's embedding.
    model = load_text_model(t2i)
    got = OnnxTextModel(report.path).embed(["a red circle", "x"])
    assert np.abs(got - model.text_encoder.encode(["a red circle", "x"]).detach().numpy()).max() <= 1e-4


def test_baked_prompt_selects_its_row(t2i, tmp_path):
    report = export_onnx(t2i, tmp_path / "baked.onnx", bake_prompts=["a red circle", "a blue square"])
    assert read_onnx_metadata(report.path)["baked_prompts"] == ["a red circle", "a blue square"]
    model = OnnxTextModel(report.path)
    assert model.prompt_index("A  Blue Square") == 1  # compared normalised
    second = model.generate(["A  Blue Square"], n=1, seed=0)
    torch.testing.assert_close(second, load_text_model(t2i).generate(["a blue square"], n=1, seed=0),
                               atol=1e-4, rtol=0)
    assert (second - model.generate(["a red circle"], n=1, seed=0)).abs().max() > 1e-2
    with pytest.raises(ValueError, match="'a green star' is not baked.*'a red circle', 'a blue square'"):
        model.generate(["a green star"])


def test_bake_prompts_from_domains(textcycle, tmp_path):
    report = export_onnx(textcycle, tmp_path / "d.onnx", bake_domain_prompts=True)
    assert report.metadata["baked_prompts"] == json.dumps([p for ps in DOMAINS.values() for p in ps])
    images = torch.rand(1, 3, 32, 32) * 2 - 1
    torch.testing.assert_close(OnnxTextModel(report.path).translate(images, "a street map"),
                               load_text_model(textcycle).translate(images, "a street map"), atol=1e-4, rtol=0)


def test_half_and_uint8_textcycle(textcycle, tmp_path):
    half = export_text_onnx(textcycle, tmp_path / "h.onnx", half=True)
    assert half.precision == "float16" and half.max_abs_error <= 2e-2
    uint8 = export_text_onnx(textcycle, tmp_path / "u8.onnx", io="uint8")
    assert uint8.max_abs_error <= 1.0
    session = ort.InferenceSession(str(uint8.path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].type == "tensor(uint8)"
    images = (torch.randint(0, 256, (2, 3, 32, 36)).float() / 127.5 - 1)  # exact in uint8
    got = OnnxTextModel(uint8.path).translate(images, "map")
    expected = load_text_model(textcycle).translate(images, "map")
    assert (got - expected).abs().max() <= 1.0 / 127.5 + 1e-6  # one level


# --- refusals -------------------------------------------------------------------------------


@pytest.fixture
def frozen_model(tmp_path, monkeypatch) -> Path:
    monkeypatch.setitem(encoders_module._TEXT_ENCODERS, "minilm", FakeFrozenEncoder)
    return _save(tmp_path, "textcycle", FakeFrozenEncoder(), {"name": "minilm", "path_or_name": "fake"})


def test_frozen_encoder_exports_only_as_embedding_or_baked(frozen_model, tmp_path):
    with pytest.raises(ValueError, match='minilm text encoder .* not exported.*text_input="embedding"'):
        export_onnx(frozen_model, tmp_path / "ids.onnx")
    assert not (tmp_path / "ids.onnx").exists()

    embedding = export_onnx(frozen_model, tmp_path / "e.onnx", text_input="embedding")
    assert embedding.text_encoder_path is None and not encoder_file_path(embedding.path).exists()
    with pytest.raises(ValueError, match="not in ONNX"):
        OnnxTextModel(embedding.path).translate(torch.zeros(1, 3, 32, 32), "map")

    baked = export_onnx(frozen_model, tmp_path / "b.onnx", bake_domain_prompts=True)
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    torch.testing.assert_close(OnnxTextModel(baked.path).translate(images, "map"),
                               load_text_model(frozen_model).translate(images, "map"), atol=1e-4, rtol=0)


@pytest.mark.parametrize("options, needle", [
    ({"bake_prompts": ["map", "Map "]}, "repeats 'map'"),
    ({"bake_prompts": ["map"], "text_input": "embedding"}, "exclude each other"),
    ({"bake_prompts": "map"}, "list of prompts"),
    ({"text_input": "tokens"}, "not one of ids, embedding"),
    ({"direction": "AtoB"}, "direction='AtoB' applies to CycleGAN runs"),
])
def test_bad_text_export_options(textcycle, tmp_path, options, needle):
    with pytest.raises(ValueError, match=needle):
        export_onnx(textcycle, tmp_path / "x.onnx", **options)
    assert not (tmp_path / "x.onnx").exists()


def test_text2image_refusals(t2i, tmp_path):
    with pytest.raises(ValueError, match="no domains"):
        export_onnx(t2i, tmp_path / "x.onnx", bake_domain_prompts=True)
    with pytest.raises(ValueError, match='io="uint8" applies to textcycle'):
        export_onnx(t2i, tmp_path / "x.onnx", io="uint8")


def test_text_options_on_an_image_model_are_refused(model_dir, tmp_path):
    with pytest.raises(ValueError, match="apply to text models"):
        export_onnx(model_dir, tmp_path / "x.onnx", bake_prompts=["map"])


def test_parity_beyond_the_bound_writes_nothing(t2i, tmp_path, monkeypatch):
    monkeypatch.setitem(export_module.PARITY_TOLERANCES, ("float32", "float"), 0.0)
    with pytest.raises(ExportParityError, match="was not written") as caught:
        export_text_onnx(t2i, tmp_path / "p.onnx", text_input="embedding")
    assert caught.value.report.cases and list(tmp_path.iterdir()) == []


def test_ids_longer_than_max_length_are_rejected(textcycle_onnx, textcycle):
    model = OnnxTextModel(textcycle_onnx)
    ids = torch.full((1, 25), 100, dtype=torch.int64)
    ids[0, 0], ids[0, -1] = 1, 2
    with pytest.raises(ValueError, match="25 tokens long.*max_length 24.*ByteTokenizer\\(24\\)"):
        model.run(torch.zeros(1, 3, 32, 32), {"ids": ids.numpy(), "mask": (ids != 0).numpy()})
    with pytest.raises(ValueError, match="more than max_length 24"):  # PyTorch refuses them too
        load_text_model(textcycle).text_encoder(ids, ids != 0)
    assert model.text_feed(["y" * 200])["ids"].shape == (1, 24)  # the tokenizer cuts long texts instead


# --- generate / convert / info --------------------------------------------------------------


def _images(folder: Path, n: int = 3) -> Path:
    rng = np.random.default_rng(0)
    for index in range(n):
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (30, 38, 3), dtype=np.uint8)).save(folder / f"{index}.png")
    return folder


def _pixels(folder: Path) -> dict[str, np.ndarray]:
    return {p.name: np.asarray(Image.open(p)).astype(int) for p in sorted(folder.glob("*.png"))}


@pytest.mark.parametrize("backend, expected_class", [("torch", TorchTextBackend), ("onnxruntime", OrtTextBackend)])
def test_text_backends_with_and_without_a_fixed_prompt_agree(textcycle_onnx, textcycle, backend, expected_class):
    model = textcycle if backend == "torch" else textcycle_onnx
    per_request = make_text_backend(model, backend=backend, device="cpu")
    fixed = make_text_backend(model, prompt="map", backend=backend, device="cpu")
    assert type(per_request) is expected_class and per_request.name == backend
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    rows = per_request.text_rows(["map", "map"])
    torch.testing.assert_close(per_request.run_rows(x, rows), fixed(x), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="without a prompt"):
        per_request(x)


def test_convert_with_a_prompt_torch_and_onnxruntime_agree(textcycle, textcycle_onnx, tmp_path, monkeypatch):
    source = _images(tmp_path / "in")
    outputs = {}
    resolved = []
    resolve_path = locator.resolve_path
    monkeypatch.setattr(locator, "resolve_path", lambda name: resolved.append(name) or resolve_path(name))
    for name, model, backend in [("torch", textcycle, "torch"), ("ort_folder", textcycle, "onnxruntime"),
                                 ("ort_file", textcycle_onnx, "onnxruntime")]:
        resolved.clear()
        summary = convert_folder(source, tmp_path / name, model, backend=backend, prompt="map", workers=1,
                                 batch_size=2)
        assert resolved == [model]  # located once, then passed down (export and sessions included)
        assert len(summary.converted) == 3 and not summary.failed
        assert summary.backend_description.startswith(backend)
        assert summary.backend_description.endswith("prompt 'map'")
        assert json.loads(summary.report.read_text())["prompt"] == "map"
        outputs[name] = _pixels(tmp_path / name)
    for name in ("ort_folder", "ort_file"):
        assert outputs[name].keys() == outputs["torch"].keys()
        for key, pixels in outputs[name].items():
            assert pixels.shape == (30, 38, 3) and np.abs(pixels - outputs["torch"][key]).max() <= 1
    # The prompt matters: another one gives other images.
    convert_folder(source, tmp_path / "aerial", textcycle, backend="torch", prompt="aerial photo", workers=1)
    assert any(np.abs(p - outputs["torch"][k]).max() > 1 for k, p in _pixels(tmp_path / "aerial").items())


def test_convert_prompt_errors(textcycle, t2i, model_dir, tmp_path):
    source = _images(tmp_path / "in", n=1)
    result = runner.invoke(app, ["convert", str(source), str(tmp_path / "o1"), "--model", str(model_dir),
                                 "--prompt", "map"])
    assert result.exit_code == 2 and "image-only generator" in result.output
    result = runner.invoke(app, ["convert", str(source), str(tmp_path / "o2"), "--model", str(textcycle)])
    assert result.exit_code == 2 and "text-guided textcycle model: it needs a prompt" in result.output
    assert "'aerial photo'" in result.output and "'a street map'" in result.output
    with pytest.raises(ValueError, match="does not translate images: make images with its generate method"):
        convert_folder(source, tmp_path / "o3", t2i, prompt="map")
    with pytest.raises(ValueError, match='precision="int8": text models run in fp32'):
        convert_folder(source, tmp_path / "o4", textcycle, prompt="map", precision="int8")
    assert not any((tmp_path / name).exists() for name in ("o1", "o2", "o3", "o4"))


def test_cli_generate_from_onnx_equals_pytorch(t2i, tmp_path):
    export = runner.invoke(app, ["export", str(t2i), str(tmp_path / "g.onnx")])
    assert export.exit_code == 0, export.output
    assert "batch 3 32x32 length 24: max abs error" in export.output
    for name, model in (("torch", t2i), ("onnx", tmp_path / "g.onnx")):
        result = runner.invoke(app, ["generate", "--model", str(model), "--prompt", "a red circle", "--prompt",
                                     "map", "-n", "2", "--out", str(tmp_path / name), "--seed", "5"])
        assert result.exit_code == 0, result.output
    torch_images, onnx_images = _pixels(tmp_path / "torch"), _pixels(tmp_path / "onnx")
    assert len(torch_images) == 4 and torch_images.keys() == onnx_images.keys()
    assert all(np.abs(onnx_images[k] - v).max() <= 1 for k, v in torch_images.items())


def test_cli_baked_export_and_generate(t2i, tmp_path):
    out = tmp_path / "b.onnx"
    result = runner.invoke(app, ["export", str(t2i), str(out), "--bake-prompts", "a red circle",
                                 "--bake-prompts", "map"])
    assert result.exit_code == 0, result.output
    assert 'baked prompts, in prompt_index order: ["a red circle", "map"]' in result.output
    result = runner.invoke(app, ["generate", "--model", str(out), "--prompt", "a green star", "--out",
                                 str(tmp_path / "g")])
    assert result.exit_code == 2 and "'a red circle', 'map'" in result.output
    result = runner.invoke(app, ["export", str(t2i), str(tmp_path / "e.onnx"), "--text-input", "embedding"])
    assert result.exit_code == 0 and "e.text_encoder.onnx" in result.output
    result = runner.invoke(app, ["export", str(t2i), str(tmp_path / "x.onnx"), "--bake-prompts-from-domains"])
    assert result.exit_code == 2 and "no domains" in result.output


def test_info_on_textcycle_folder_and_text_onnx(textcycle, textcycle_onnx):
    result = runner.invoke(app, ["info", str(textcycle)])
    assert result.exit_code == 0 and "textcycle" in result.output and "a street map" in result.output
    result = runner.invoke(app, ["info", str(textcycle_onnx)])
    assert result.exit_code == 0, result.output
    for needle in ("textcycle", "text_input", "byte-v1", "max_length", '"ids"', "a street map", "parity_max_abs_error"):
        assert needle in result.output


def test_text_unet_textcycle_exports_with_parity(tmp_path):
    """The U-Net text generators export too: ids input, sides multiples of 2 ** num_downs."""
    from translate.models.conditioned import TextUnetGenerator

    torch.manual_seed(0)
    generator = TextUnetGenerator(3, 3, num_downs=5, ngf=4, cond_dim=COND_DIM)
    _randomize_films(generator)
    encoder = ByteTextEncoder(dim=COND_DIM, layers=1, heads=2, max_length=24)
    architecture = {"name": "text_unet", "input_nc": 3, "output_nc": 3, "num_downs": 5, "ngf": 4,
                    "cond_dim": COND_DIM}
    model_dir = save_text_model(generator, encoder, tmp_path / "unet", kind="textcycle", architecture=architecture,
                                text_encoder_config={"name": "byte", **encoder.config()}, domains=DOMAINS)
    report = export_onnx(model_dir, tmp_path / "unet.onnx")
    assert report.max_abs_error <= 1e-4 and int(read_onnx_metadata(report.path)["size_multiple"]) == 32
    images = torch.rand(2, 3, 32, 64, generator=torch.Generator().manual_seed(1)) * 2 - 1
    expected = load_text_model(model_dir).translate(images, ["map", "aerial photo"])
    onnx_model = OnnxTextModel(report.path)
    got = onnx_model.translate(images, ["map", "aerial photo"])
    assert (got - expected).abs().max() <= 1e-4
    assert (expected[0] - load_text_model(model_dir).translate(images[:1], ["aerial photo"])[0]).abs().max() > 1e-3
    with pytest.raises(ValueError, match="multiples of 32"):
        onnx_model.translate(images[..., :48], ["map", "map"])


def test_text_models_resolve_by_bundled_name(textcycle, tmp_path, monkeypatch):
    """`--model NAME` finds weights/NAME for text models as for image models; a path still wins."""
    import shutil

    from translate.core import paths
    from translate.text.model import find_text_model

    bundled = tmp_path / "weights"
    shutil.copytree(textcycle, bundled / "tiny_textcycle")
    monkeypatch.setattr(paths, "BUNDLED_DIR", bundled)
    assert find_text_model("tiny_textcycle") == bundled / "tiny_textcycle"
    assert find_text_model("no_such_model") is None
    assert load_text_model("tiny_textcycle").domains == DOMAINS
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny_textcycle").mkdir()  # a local folder of that name that holds no model: still the bundle
    assert find_text_model("tiny_textcycle") == bundled / "tiny_textcycle"
    shutil.rmtree(tmp_path / "tiny_textcycle")
    shutil.copytree(textcycle, tmp_path / "tiny_textcycle")  # a local model of that name wins
    assert find_text_model("tiny_textcycle") == Path("tiny_textcycle")
