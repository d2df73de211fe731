"""gpu_check's report: report.json (every step's record) and report.md, written after every step and copied
to --export; the report step itself."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

from .common import read_json, write_json
from .gpu_check_common import STEPS, Context, finite, fmt

# --- the report -----------------------------------------------------------------------------------------------------


def markdown_env(results: dict[str, Any]) -> list[str]:
    env = results.get("env", {})
    versions = env.get("versions", {})
    gpus = "; ".join(f"{g['name']} ({g['memory_gib']} GiB, sm {g['capability']}, {g['multiprocessors']} SMs, driver "
                     f"{g['driver']})" for g in env.get("gpus", [])) or "none (CPU run)"
    cpu = env.get("cpu", {})
    lines = [f"- GPU: {gpus}",
             f"- CPU: {cpu.get('model')} ({cpu.get('cores')} cores, {cpu.get('usable_cores')} usable)",
             f"- torch {versions.get('torch')} (CUDA {versions.get('cuda')}, cuDNN {versions.get('cudnn')}, NCCL "
             f"{versions.get('nccl')}, Triton {versions.get('triton')}), Python {versions.get('python')}",
             f"- onnxruntime {versions.get('onnxruntime')}: providers {', '.join(versions.get('onnxruntime_providers', []))}"
             f" (usable: {', '.join(versions.get('onnxruntime_providers_usable', []))}); TensorRT "
             f"{versions.get('tensorrt') or 'not importable'}",
             f"- translate {env.get('translate')}, commit {env.get('git_commit') or 'unknown'}"
             f"{' (+%d changed files)' % env['git_dirty_files'] if env.get('git_dirty_files') else ''}, {env.get('date')}"]
    peak = results.get("peak", {}).get("tflops")
    if peak:
        lines.append(f"- Measured matmul peak ({results['peak']['n']}^2, random data): bf16 {fmt(peak['bf16'], '.1f')}, "
                     f"TF32 {fmt(peak['tf32'], '.1f')}, fp32 {fmt(peak['fp32'], '.1f')} TFLOP/s")
    return lines


def markdown_train(results: dict[str, Any]) -> list[str]:
    lines = ["| task | batch | variant | it/s | images/s | vs reference | GFLOP/step | TFLOP/s | % of peak | "
             "compile s | h2z 200 epochs |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for task in ("cyclegan", "pix2pix", "cut"):
        for row in results.get(f"train-{task}", {}).get("rows", []):
            if "it_per_s" not in row:
                status = row["status"] if len(row["status"]) < 120 else row["status"][:117] + "..."
                lines.append(f"| {task} | {row['batch']} | {row['variant']} | {status} |||||||| ")
                continue
            lines.append(f"| {task} | {row['batch']} | {row['variant']}{' *' if row['phase'] == 'compile' else ''} | "
                         f"{fmt(row['it_per_s'])} | {fmt(row['images_per_s'], '.1f')} | {fmt(row.get('vs_reference'))}x | "
                         f"{fmt(row.get('gflop_per_step'), '.1f')} | {fmt(row.get('tflop_per_s'))} | "
                         f"{fmt(row.get('percent_of_peak'), '.1f')} ({row['peak_kind']}) | {fmt(row.get('compile_s'), '.1f')} | "
                         f"{fmt(row['h2z_200_epochs_hours'], '.1f')} h |")
    return lines


def markdown_ddp(ddp: dict[str, Any]) -> list[str]:
    if not ddp.get("runs"):
        return ["(not run)"]
    lines = [f"cyclegan, {ddp['steps']} steps of batch {ddp['batch_per_process']} per process, {ddp['processes']} "
             f"process(es) under torchrun, process group: {ddp['backend']}.", "",
             "| run | world size | it/s | images/s | final losses | exit |", "|---|---|---|---|---|---|"]
    for label, run in ddp["runs"].items():
        losses = ", ".join(f"{k} {v:.4g}" for k, v in run.get("final_losses", {}).items())
        lines.append(f"| {label} | {run.get('world_size', '-')} | {fmt(run.get('it_per_s'))} | "
                     f"{fmt(run.get('images_per_s'), '.1f')} | {losses or '-'} | {run['exit_code']} |")
    if "loss_max_rel_diff" in ddp:
        lines += ["", f"Largest relative loss difference {ddp['loss_max_rel_diff']:.2g} (tolerance "
                      f"{ddp['loss_tolerance']}: {'close' if ddp['losses_close'] else 'NOT close'}); torchrun / single "
                      f"images/s {ddp['images_per_s_ratio']:.2f}, scaling efficiency {ddp['scaling_efficiency']:.2f}."]
    return lines


def markdown_inference(inference: dict[str, Any], convert: dict[str, Any]) -> list[str]:
    lines = [f"Model: {inference.get('model')}, {inference.get('size')} px. Parity against {inference.get('reference')}.",
             "", "| variant | backend | batch | images/s | vs torch fp32 | max abs err | PSNR dB |",
             "|---|---|---|---|---|---|---|"]
    for row in inference.get("rows", []):
        lines.append(f"| {row['variant']} | {row['backend']} | {row['batch']} | {fmt(row['images_per_s'], '.1f')} | "
                     f"{fmt(row['vs_torch_fp32'])}x | {fmt(row['max_abs_error'], '.2g')} | {fmt(row['psnr_db'], '.1f')} |")
    for name, error in inference.get("errors", {}).items():
        lines.append(f"| {name} | {error} ||||||")
    if convert.get("rows"):
        lines += ["", f"`convert` end to end: {convert['images']} generated {convert['size']} px JPEGs, batch "
                      f"{convert['batch']}, {convert['backend']}.", "",
                  "| output | images/s | model images/s | fraction of model | setup s |", "|---|---|---|---|---|"]
        lines += [f"| {r['fmt']} | {fmt(r['images_per_s'], '.1f')} | {fmt(r['model_images_per_s'], '.1f')} | "
                  f"{fmt(r['fraction_of_model'])} | {fmt(r['setup_seconds'], '.1f')} |" for r in convert["rows"]]
    return lines


def markdown_gradients(gradients: dict[str, Any]) -> list[str]:
    rows = gradients.get("relative_input_gradient_error", {})
    if not rows:
        return ["(not run)"]
    lines = [f"Input gradient of a random generator in float32 against float64, relative ({gradients.get('note', '')}).",
             "", "| network | default layout | channels_last |", "|---|---|---|"]
    lines += [f"| {name} | {fmt(row['default'], '.1e')} | {fmt(row['channels_last'], '.1e')} |" for name, row in rows.items()]
    return lines


def markdown(report: dict[str, Any]) -> str:
    results = report["results"]
    gpus = results.get("env", {}).get("gpus") or [{"name": "CPU"}]
    smoke = " (--smoke: tiny sizes on the CPU, the numbers only show that every step runs)" if report["smoke"] else ""
    lines = [f"# GPU check: {gpus[0]['name']}{smoke}", "", "```bash", report["command"], "```", "", *markdown_env(results),
             "", "## Training steps", "", "Reference: fp32 eager, speed off, tf32 off, cudnn_benchmark off (cyclegan: "
             "six generator calls one by one). Each lever alone is added to ours; `all` is speed auto + amp. "
             "h2z: 266,800 images (1,334 x 200 epochs) at this rate. * compiled variants are timed after the eager "
             "ones, against the reference re-timed beside them; compile s: warm-up time beyond its steady steps.", "", *markdown_train(results),
             "", "## channels_last gradients", "", *markdown_gradients(results.get("gradients", {})),
             "", "## DDP (`translate train` under torchrun)", "", *markdown_ddp(results.get("ddp", {})),
             "", "## Inference", "", *markdown_inference(results.get("inference", {}), results.get("convert", {})),
             "", "## Steps", "", "| step | status | seconds | budget s | notes |", "|---|---|---|---|---|"]
    for name in STEPS:
        step = report["steps"].get(name, {"status": "not run"})
        notes = "; ".join(step.get("incomplete", []) + ([step["error"].splitlines()[-1]] if step.get("error") else []))
        lines.append(f"| {name} | {step['status']} | {fmt(step.get('seconds'), '.1f')} | {step.get('budget_s', '-')} | "
                     f"{notes} |")
    return "\n".join(lines) + "\n"


def add_percent_of_peak(results: dict[str, Any]) -> None:
    """Each timed training row's TFLOP/s as a percent of the matching measured matmul peak."""
    peak = results.get("peak", {}).get("tflops", {})
    for task in ("cyclegan", "pix2pix", "cut"):
        for row in results.get(f"train-{task}", {}).get("rows", []):
            if finite(row.get("tflop_per_s")) and finite(peak.get(row.get("peak_kind"))):
                row["percent_of_peak"] = 100 * row["tflop_per_s"] / peak[row["peak_kind"]]


def write_report(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """report.json (every step's record) and report.md from the step files; copied to --export."""
    steps: dict[str, Any] = {}
    for name in STEPS:
        final, partial = out / "steps" / f"{name}.json", out / "steps" / f"{name}.partial.json"
        if final.is_file():
            steps[name] = read_json(final)
        elif partial.is_file():
            steps[name] = {**read_json(partial), "status": "killed (partial results)"}
    results = {name: step.get("result", {}) for name, step in steps.items()}
    add_percent_of_peak(results)
    report = {"command": args.command, "smoke": args.smoke,
              "steps": {name: {k: v for k, v in step.items() if k != "result"} for name, step in steps.items()},
              "results": results}
    write_json(out / "report.json", report)
    (out / "report.md").write_text(markdown(report))
    if args.export:
        export = Path(args.export)
        export.mkdir(parents=True, exist_ok=True)
        for name in ("report.json", "report.md", "gpu_check.log"):
            if (out / name).is_file():
                shutil.copyfile(out / name, export / name)
    return report


def step_report(ctx: Context) -> None:
    ctx.result.update(written=[str(ctx.out / "report.json"), str(ctx.out / "report.md")])
