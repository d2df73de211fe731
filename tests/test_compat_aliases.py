"""Modules that moved keep their old import paths for a while, with a DeprecationWarning."""

from __future__ import annotations

import importlib
import sys

import pytest


@pytest.mark.parametrize(("old", "new", "name"), [
    ("translate.export", "translate.deploy.export", "export_onnx"),
    ("translate.export", "translate.deploy.export", "read_onnx_metadata"),
    ("translate.convert", "translate.deploy.convert", "convert_folder"),
    ("translate.weights", "translate.formats.weights", "load_with_config"),
    ("translate.backends", "translate.deploy.backends", "make_backend"),
])
def test_old_module_paths_warn_and_give_the_same_objects(old: str, new: str, name: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, old, raising=False)
    with pytest.warns(DeprecationWarning, match=f"{old} moved to {new}"):
        alias = importlib.import_module(old)
    assert getattr(alias, name) is getattr(importlib.import_module(new), name)
