"""Shared pytest fixtures.

The shared data (reference checkpoints, datasets) lives beside the repository, at ../shared; tests
that need it take the `shared_dir` / `reference_dir` fixtures and are skipped when it is absent.
Generated training data, made once per session: `paired_data`, `unpaired_data` (read only); the tiny
training settings that go with them are in tests/helpers/training.py (`tiny_config`, `tiny_flags`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from tests.helpers.datasets import snapshot, write_paired, write_unpaired
from tests.helpers.http_server import LoopbackServer
from translate.formats.weights import save_weights
from translate.models import GeneratorConfig, build_generator

SHARED_DIR = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """`../shared` (relative to the repository root); skips the test when it is absent."""
    if not SHARED_DIR.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DIR}")
    return SHARED_DIR


@pytest.fixture(scope="session")
def reference_dir(shared_dir: Path) -> Path:
    """`../shared/reference`: reference-layout checkpoints and vectors.pt; skips when absent."""
    path = shared_dir / "reference"
    if not (path / "vectors.pt").is_file():
        pytest.skip(f"reference vectors not found at {path}")
    return path


@pytest.fixture(autouse=True, scope="session")
def one_thread_per_test_process():
    """Every test runs torch on one intra-op thread (subprocesses a test starts choose their own).

    Tiny test networks gain nothing from threads, and on a busy 2-core machine OpenMP's
    spin-waiting makes them 10-30x slower; tests that measure threading set their own count.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def single_thread():
    """Run the module's tests on one intra-op thread, restoring the count afterwards.

    Tiny test networks gain nothing from threads, and on a busy 2-core machine OpenMP's
    spin-waiting makes them 10-30x slower. Use with `pytestmark = pytest.mark.usefixtures(...)`.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(autouse=True, scope="session")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Keep ONNX copies exported by `convert` out of the user's ~/.cache during the tests."""
    path = tmp_path_factory.mktemp("translate-cache")
    previous = os.environ.get("TRANSLATE_CACHE")
    os.environ["TRANSLATE_CACHE"] = str(path)
    yield path
    if previous is None:
        os.environ.pop("TRANSLATE_CACHE", None)
    else:
        os.environ["TRANSLATE_CACHE"] = previous


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random generator (resnet_6blocks, ngf 8, seed 0) saved as a weights folder, one per
    test module (a module may define its own `model_dir` instead)."""
    torch.manual_seed(0)
    architecture = GeneratorConfig(name="resnet_6blocks", ngf=8)
    return save_weights(build_generator(architecture), tmp_path_factory.mktemp("model") / "model", architecture,
                        direction="AtoB")


def _unchanged(root: Path) -> Iterator[Path]:
    """Yield `root`, then fail if a test wrote into it: session data is shared, copy it to change it."""
    before = snapshot(root)
    yield root
    assert snapshot(root) == before, f"a test changed the shared data set {root}; copy it (shutil.copytree) first"


@pytest.fixture(scope="session")
def paired_data(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A paired data set for the whole session (tests/helpers/datasets.py): train/ 4 and test/ 5 A|B pairs
    of 40 px blob images, B the recoloured A. Read only."""
    yield from _unchanged(write_paired(tmp_path_factory.mktemp("paired") / "data", n_train=4, n_test=5, size=40))


@pytest.fixture(scope="session")
def unpaired_data(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An unpaired data set for the whole session (tests/helpers/datasets.py): trainA/trainB 4 images each,
    testA/testB 2 each, 40 px blobs, B recoloured and unaligned with A. Read only."""
    yield from _unchanged(write_unpaired(tmp_path_factory.mktemp("unpaired") / "data", n=4, n_test=2, size=40))


@pytest.fixture
def loopback_server(tmp_path: Path):
    """A `LoopbackServer` (tests/helpers/http_server.py) on 127.0.0.1 serving `tmp_path / "www"`."""
    with LoopbackServer(tmp_path / "www") as server:
        yield server
