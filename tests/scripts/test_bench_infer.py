"""Smoke test of `python -m scripts.bench.infer`: tiny runs end to end, checking the JSON they write."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from scripts.bench import infer, infer_grid, infer_side_by_side
from scripts.bench.common import write_jpegs
from translate.models import GeneratorConfig, build_generator

pytestmark = pytest.mark.usefixtures("single_thread")


def test_tiny_run_writes_positive_throughputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    # unet_256 cannot run 64 px: it must be listed as skipped, not fail the run.
    infer.main(["--device", "cpu", "--ngf", "8", "--archs", "resnet_9blocks", "unet_256", "--sizes", "64",
                "--batches", "1", "--repeats", "1", "--n-images", "4", "--e2e-size", "64", "--e2e-batch", "1",
                "--workers", "1", "--precisions", "torch-fp32", "onnxruntime-fp32", "--json", str(out)])
    result = json.loads(out.read_text())

    assert set(result) == {"meta", "model", "e2e", "skipped"}
    assert {"device_name", "versions", "variants", "repeats"} <= set(result["meta"])
    assert set(result["meta"]["versions"]) >= {"torch", "onnxruntime"}
    assert {(r["arch"], r["size"], r["batch"], r["variant"]) for r in result["model"]} == {
        ("resnet_9blocks", 64, 1, "torch-fp32"), ("resnet_9blocks", 64, 1, "onnxruntime-fp32")}
    for row in result["model"]:
        assert row["images_per_s"] > 0 and math.isfinite(row["ratio_vs_torch_fp32"])
    onnx_row = next(r for r in result["model"] if r["variant"] == "onnxruntime-fp32")
    assert onnx_row["psnr_db"] > 60 and onnx_row["max_abs_error"] < 1e-3  # float32 export is exact
    assert result["skipped"] == ["unet_256 at 64px (needs a multiple of 256)"]

    e2e = {r["variant"]: r for r in result["e2e"]}
    assert "torch-fp32" in e2e and any(r["fastest"] for r in e2e.values())
    for row in e2e.values():
        assert row["images"] == 4 and row["images_per_s"] > 0 and row["e2e_over_model"] > 0
    assert "| resnet_9blocks | 64 | 1 | torch-fp32 |" in capsys.readouterr().out


def test_unknown_variant_is_refused() -> None:
    with pytest.raises(ValueError, match="torch-int8"):
        infer_grid.split_variant("torch-int8")


def test_compare_convert_times_archs_side_by_side(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_jpegs(tmp_path / "images", 3, 32, seed=0)
    out = tmp_path / "bench.json"
    infer.main(["--compare-convert", "--device", "cpu", "--ngf", "8", "--archs", "resnet_9blocks",
                "mobile_resnet_9blocks", "--e2e-images", str(tmp_path / "images"), "--n-images", "2", "--e2e-size",
                "32", "--e2e-batch", "1", "--workers", "1", "--repeats", "2", "--precisions", "torch-fp32",
                "--json", str(out)])
    result = json.loads(out.read_text())
    costs, rows = result["costs"], {r["arch"]: r for r in result["side_by_side"]}
    assert costs["mobile_resnet_9blocks"]["macs"] < costs["resnet_9blocks"]["macs"]
    assert costs["mobile_resnet_9blocks"]["params"] < costs["resnet_9blocks"]["params"]
    assert set(rows) == {"resnet_9blocks", "mobile_resnet_9blocks"} and result["meta"]["n_images"] == 2
    assert all(len(r["rounds"]) == 2 and r["images_per_s"] > 0 for r in rows.values())
    assert rows["resnet_9blocks"]["ratio"] == 1.0 and rows["mobile_resnet_9blocks"]["ratio"] > 0
    assert "| mobile_resnet_9blocks | 8 |" in capsys.readouterr().out


def test_conv_macs_agree_with_torch_flop_counter() -> None:
    conv_macs = infer_side_by_side.conv_macs
    for name in ("resnet_6blocks", "mobile_resnet_9blocks"):  # convolutions, transposed and depthwise ones
        net = build_generator(GeneratorConfig(name=name, ngf=4), init=False)
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            net(torch.zeros(1, 3, 32, 32))
        assert conv_macs(net, 3, 32) == counter.get_total_flops() // 2, name
