"""Equal-compute comparison of unpaired tasks on horse2zebra: train each for the same wall-clock
budget, then score them as users run them (`translate convert` on testA at its native size,
`translate eval` against testB), and write a table and a sample grid.

    python -m scripts.studies.h2z_equal_compute --data ../shared/datasets/horse2zebra --out runs/h2z_equal \\
        --minutes 45                                   # cyclegan, cut and fastcut side by side
    python -m scripts.studies.h2z_equal_compute ... --variant "proj=cut:--netD projected" \\
        --variant "proj_da=cut:--netD projected --diffaug color,translation,cutout --ema-decay 0.999"

A `--variant NAME=TASK:FLAGS` is a run of TASK with more `translate train` flags (after the common
ones, so they win); `--tasks` is the same with no flags. A run with `--ema-decay` is scored twice:
its saved weights (the moving average) and the trained generator of its last checkpoint, which
compares the two at exactly equal compute.

The runs train at the same time, each on an equal share of the CPU cores (`--threads`), so that
they get the same compute whatever else the machine does; `--sequential` gives each all the cores
in turn instead. Each run stops at `--max-minutes` and saves its final model; with `--eval-every K`
the run also scores held-out images every K epochs and the best of those epochs is converted and
scored too, named as such. CycleGAN is also scored zebra -> horse. `--resize N` adds rows scored
on inputs resized to N (for models trained on smaller crops).

Writes, in --out: report.json, report.md (the table for docs/benchmarks.md) and grid.png (the same
8 test horses through every model).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image, ImageDraw

from translate.data.images import list_images

TRANSLATE = [sys.executable, "-m", "translate"]
UNTRANSLATED_FID = 236.4  # testA (horses, untranslated) against testB, measured with translate eval
ANCHORS = ("Published horse->zebra FID, at 256 px on the full schedule (CycleGAN 200 epochs, CUT 400, FastCUT 200), "
           "each with its own FID code: CycleGAN 77.2, CUT 45.5 (best epoch), FastCUT 73.4 (CUT paper); the reference's "
           "released CycleGAN 62.1 (OpenMMLab); CUT to its final epoch 62-68 (users' reruns).")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m scripts.studies.h2z_equal_compute", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="horse2zebra: trainA, trainB, testA, testB")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--minutes", type=float, default=45.0, help="wall-clock budget of each run")
    parser.add_argument("--tasks", nargs="+", default=["cyclegan", "cut", "fastcut"])
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=TASK:FLAGS",
                        help="a named run of TASK with more train flags (replaces --tasks; repeatable)")
    parser.add_argument("--ngf", type=int, default=64, help="the same generator width for every task")
    parser.add_argument("--load-size", type=int, default=143)
    parser.add_argument("--crop-size", type=int, default=128)
    parser.add_argument("--eval-every", type=int, default=0, help="score held-out images every K epochs")
    parser.add_argument("--resize", type=int, default=None, help="also score on inputs resized to N")
    parser.add_argument("--sequential", action="store_true", help="one run after the other, all cores each")
    parser.add_argument("--threads", type=int, default=None, help="threads per run [cores / runs]")
    parser.add_argument("--score-only", action="store_true", help="score the runs already in --out (no training)")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more `translate train` flags")
    return parser.parse_args(argv)


def parse_variants(args: argparse.Namespace) -> dict[str, tuple[str, list[str]]]:
    """NAME -> (task, extra flags), from --variant (or --tasks, named by their task)."""
    if not args.variant:
        return {task: (task, []) for task in args.tasks}
    variants = {}
    for spec in args.variant:
        name, _, rest = spec.partition("=")
        task, _, flags = rest.partition(":")
        if not name or not task:
            raise SystemExit(f"--variant {spec!r}: expected NAME=TASK:FLAGS, e.g. 'proj=cut:--netD projected'")
        variants[name] = (task, shlex.split(flags))
    return variants


def train_command(name: str, args: argparse.Namespace) -> list[str]:
    task, flags = args.variants[name]
    command = [*TRANSLATE, "train", task, "--data", str(args.data), "--out", str(args.out / name),
               "--max-minutes", str(args.minutes), "--ngf", str(args.ngf), "--load-size", str(args.load_size),
               "--crop-size", str(args.crop_size), "--workers", "1", "--log-every", "100",
               "--sample-every", "1000000", "--device", "cpu"]
    if args.eval_every:
        command += ["--eval-every", str(args.eval_every), "--save-epoch-freq", str(args.eval_every)]
    return command + list(args.extra) + flags


def run_trainings(args: argparse.Namespace) -> dict[str, float]:
    """Train every task for the budget; returns each run's wall-clock seconds."""
    threads = args.threads or max(1, (os.cpu_count() or 1) // (1 if args.sequential else len(args.variants)))
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    args.out.mkdir(parents=True, exist_ok=True)
    started: dict[str, float] = {}
    seconds: dict[str, float] = {}
    processes: dict[str, subprocess.Popen] = {}
    for task in args.variants:
        log = (args.out / f"{task}.train.log").open("w")
        started[task] = time.monotonic()
        processes[task] = subprocess.Popen(train_command(task, args), env=env, stdout=log, stderr=subprocess.STDOUT)
        if args.sequential:
            _wait(task, processes[task])
            seconds[task] = time.monotonic() - started[task]
    for task, process in processes.items():
        if task not in seconds:
            _wait(task, process)
            seconds[task] = time.monotonic() - started[task]
    return seconds


def _wait(task: str, process: subprocess.Popen) -> None:
    if process.wait() != 0:
        raise RuntimeError(f"training {task} failed (exit {process.returncode}); see its .train.log")


def run_summary(run: Path) -> dict[str, float]:
    """Steps, training seconds and it/s from the run's log.jsonl (its last 'end' event)."""
    events = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    end = [e for e in events if e["event"] == "end"][-1]
    evals = [e for e in events if e["event"] == "eval"]
    return {"steps": end["step"], "epoch": end["epoch"], "train_seconds": end["seconds"],
            "it_per_s": end["step"] / max(end["seconds"], 1e-9), "evals": evals}


def convert_and_score(model: Path, source: Path, real: Path, out: Path, direction: str,
                      resize: int | None = None) -> dict[str, float]:
    """`translate convert` (fp32, PyTorch) then `translate eval` against `real`; FID and KID."""
    converted = out / "images"
    command = [*TRANSLATE, "convert", str(source), str(converted), "--model", str(model), "--direction", direction,
               "--backend", "torch", "--precision", "fp32", "--device", "cpu"]
    subprocess.run(command + (["--resize", str(resize)] if resize else []), check=True, capture_output=True)
    report = out / "eval.json"
    # --source: LPIPS between each input and its translation (how much of the photo is kept)
    subprocess.run([*TRANSLATE, "eval", "--real", str(real), "--fake", str(converted), "--source", str(source),
                    "--json", str(report)], check=True, capture_output=True)
    scores = json.loads(report.read_text())
    return {"fid": scores["fid"], "kid": scores.get("kid_mean"), "lpips_source": scores.get("lpips_source"),
            "images": str(converted)}


def best_epoch_checkpoint(run: Path, evals: list[dict]) -> tuple[int, Path] | None:
    """The epoch of the lowest held-out FID among the epoch-end 'eval' events, and its checkpoint.

    A run stopped inside an epoch scores its final model with the number of the last whole epoch:
    only the first event of each epoch number is that epoch's own (its checkpoint's) score."""
    scored, seen = [], set()
    for event in evals:
        if any(k.endswith("/fid") for k in event) and event["epoch"] not in seen:
            seen.add(event["epoch"])
            scored.append(event)
    if not scored:
        return None
    key = next(k for k in scored[0] if k.startswith("AtoB") and k.endswith("/fid"))
    best = min(scored, key=lambda e: e[key])
    checkpoint = run / "checkpoints" / f"epoch_{best['epoch']:04d}.pt"
    return (best["epoch"], checkpoint) if checkpoint.is_file() else None


def score_runs(args: argparse.Namespace, seconds: dict[str, float]) -> list[dict]:
    """A row per (task, checkpoint, direction, input size)."""
    rows = []
    test_a, test_b = args.data / "testA", args.data / "testB"
    for variant, (task, flags) in args.variants.items():
        run = args.out / variant
        summary = run_summary(run)
        base = {"task": variant, "steps": summary["steps"], "it_per_s": summary["it_per_s"],
                "wall_seconds": seconds[variant], "train_seconds": summary["train_seconds"]}
        targets = [("final", run)]
        if "--ema-decay" in flags:  # the average is what the run saved; the trained G is in its checkpoint
            targets = [("final", run / "weights" / "AtoB"), ("final trained G (no EMA)", run / "checkpoints" / "latest.pt")]
        best = best_epoch_checkpoint(run, summary["evals"])
        if best is not None:
            targets.append((f"best eval epoch {best[0]}", best[1]))
        directions = [("AtoB", test_a, test_b)] + ([("BtoA", test_b, test_a)] if task == "cyclegan" else [])
        for name, model in targets:
            for direction, source, real in directions:
                for resize in [None, args.resize] if args.resize else [None]:
                    label = name.replace(" ", "_").replace("(", "").replace(")", "")
                    where = args.out / "scores" / f"{variant}-{label}-{direction}-{resize or 'native'}"
                    scores = convert_and_score(model, source, real, where, direction, resize)
                    rows.append({**base, "model": name, "direction": direction,
                                 "input": f"resized to {resize}" if resize else "native 256 px", **scores})
    return rows


def write_grid(rows: list[dict], test_a: Path, out: Path, count: int = 8, size: int = 128, label: int = 96) -> Path:
    """The first `count` test horses (rows: the input, then each final model's AtoB output at the
    native size), each row named in a left margin."""
    names = [p.name for p in list_images(test_a)[:count]]
    lines = [("input", [test_a / n for n in names])]
    for row in rows:
        if row["direction"] == "AtoB" and row["model"].startswith("final") and row["input"].startswith("native"):
            folder = Path(row["images"])
            title = row["task"] + (" (no EMA)" if "no EMA" in row["model"] else "")
            lines.append((title, [next(folder.glob(Path(n).stem + ".*")) for n in names]))
    grid = Image.new("RGB", (label + size * count, size * len(lines)), "white")
    draw = ImageDraw.Draw(grid)
    for y, (name, paths) in enumerate(lines):
        draw.text((6, y * size + size // 2 - 6), name, fill="black")
        for x, path in enumerate(paths):
            grid.paste(Image.open(path).convert("RGB").resize((size, size)), (label + x * size, y * size))
    grid.save(out)
    return out


def markdown(rows: list[dict], args: argparse.Namespace) -> str:
    head = (f"Equal compute: {args.minutes:g} min each, {'one after the other' if args.sequential else 'side by side'}"
            f", ngf {args.ngf}, load {args.load_size} / crop {args.crop_size}, CPU.\n\n"
            "| run | model | direction | input | steps | steps/s | wall-clock | FID | KID | LPIPS(input, output) |\n"
            "|---|---|---|---|---|---|---|---|---|---|\n")
    body = "".join(f"| {r['task']} | {r['model']} | {r['direction']} | {r['input']} | {r['steps']} | "
                   f"{r['it_per_s']:.2f} | {r['wall_seconds'] / 60:.1f} min | {r['fid']:.1f} | "
                   f"{r['kid'] if r['kid'] is None else format(r['kid'], '.4f')} | "
                   f"{'' if r.get('lpips_source') is None else format(r['lpips_source'], '.3f')} |\n" for r in rows)
    untranslated = f"| untranslated testA | | AtoB | native 256 px | | | | {UNTRANSLATED_FID} | | 0 |\n"
    return (head + body + untranslated + "\nsteps/s: steps over the run's seconds from start to end (set-up, "
            "periodic evaluation and saving included); wall-clock: the whole process.\n\n" + ANCHORS + "\n")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    args.variants = parse_variants(args)
    timings = args.out / "train_seconds.json"
    if args.score_only:
        seconds = json.loads(timings.read_text()) if timings.is_file() else \
            {name: run_summary(args.out / name)["train_seconds"] for name in args.variants}
    else:
        seconds = run_trainings(args)
        timings.write_text(json.dumps(seconds))
    rows = score_runs(args, seconds)
    (args.out / "report.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                      "rows": rows}, indent=2))
    (args.out / "report.md").write_text(markdown(rows, args))
    write_grid(rows, args.data / "testA", args.out / "grid.png")
    print((args.out / "report.md").read_text())


if __name__ == "__main__":
    main()
