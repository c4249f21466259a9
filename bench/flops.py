"""Work per clip of the real training step, and what a full paper-protocol run costs.

Counts the floating-point operations (torch.utils.flop_counter: matmuls, convolutions, einsums;
2 per multiply-add) of one real training step of each method on NW-UCLA at the paper schedule's
batch (the dataset preset: `configs/nw-ucla.yaml`), forward, losses and backward included, and of
one evaluation pass per test clip. With the schedule (epochs x repeat x training clips, one test
pass per `run.eval_every` epochs) that gives the work of one full run. Dividing by a measured
throughput gives a time: the CPU's own (measured here, from the same step) and, for a GPU, an
estimate from stated assumptions, never a measurement: a kernel floor (computing aten operations per
step, about one kernel launch each, x steps x an assumed cost per small kernel) plus the FLOPs at
assumed sustained rates.

    .venv/bin/python -m bench.flops [--methods gap pcke pcle] [--stream joint] [--reps 2]

Needs the real NW-UCLA data (../shared/data/nw-ucla/all_sqe); skips with a message without it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from bench._env import ROOT  # sets sys.path and the offline switches: first of the project imports
from recognizer.config import merge, resolve
from recognizer.train import (
    build_optimizer,
    build_parts,
    final_class_text,
    make_loader_for,
    setup_env,
    train_one_epoch,
)
from recognizer.training.run_setup import default_root, with_data_root

RESULTS = ROOT / "bench" / "results" / "flops.json"
# Sustained rates assumed for the GPU estimate (TFLOP/s, bf16). H100 SXM's dense bf16 peak is about
# 989 TFLOP/s; a small GCN at batch 64 uses a small part of it. Assumptions, not measurements.
GPU_ASSUMED_TFLOPS = (25.0, 50.0, 100.0)
# A small kernel on a GPU costs a few microseconds however little it computes (launch + execution);
# assumed, like the rates above. Steps x kernels x this is the floor a small model hits on a GPU.
GPU_ASSUMED_US_PER_KERNEL = 10.0
console = Console()


class KernelCounter(TorchDispatchMode):
    """Counts the aten operations that compute (views excluded): about one GPU kernel launch each."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += not func.is_view
        return func(*args, **(kwargs or {}))


def measure(method: str, stream: str, reps: int) -> dict:
    """FLOPs and CPU seconds of one training step (batch = optim.batch_size) and per test clip."""
    cfg = resolve("nw-ucla", method, overrides=[f"data.clip.stream={stream}"])
    cfg = with_data_root(merge(cfg, {"data": {"num_workers": 0}}))
    env = setup_env(cfg)
    parts = build_parts(cfg, env)
    n_train, n_test = len(parts.bundle.train), len(parts.bundle.test)
    batch = cfg.optim.batch_size
    step_cfg = merge(cfg, {"optim": {"repeat": 1}})  # one pass over `batch` clips = one step
    first = {name: split.take(np.arange(min(batch, len(split))))  # one batch of each
             for name, split in (("train", parts.bundle.train), ("test", parts.bundle.test))}
    loader = make_loader_for(first["train"], parts.bundle.layout, step_cfg, True, env)
    opt, scaler = build_optimizer(parts.model, parts, cfg, env)
    train_one_epoch(parts.model, parts, step_cfg, env, loader, opt, scaler, 0, False)  # warm-up
    with FlopCounterMode(display=False) as counter:
        train_one_epoch(parts.model, parts, step_cfg, env, loader, opt, scaler, 1, False)
    step_flops = counter.get_total_flops()
    with KernelCounter() as kernels:
        train_one_epoch(parts.model, parts, step_cfg, env, loader, opt, scaler, 1, False)
    seconds = []
    for r in range(reps):
        t = time.perf_counter()
        train_one_epoch(parts.model, parts, step_cfg, env, loader, opt, scaler, 2 + r, False)
        seconds.append(time.perf_counter() - t)
    # One evaluation batch, forward only. Counted with autograd on: the counter's module tracker fails
    # under no_grad (torch 2.13), and a forward costs the same FLOPs either way.
    x, _, _ = next(iter(make_loader_for(first["test"], parts.bundle.layout, cfg, False, env)))
    class_text = final_class_text(parts.model, parts, cfg).detach()
    parts.model.eval()
    with FlopCounterMode(display=False) as counter:
        parts.model(x.to(env.device), class_text=class_text)
    test_flops = counter.get_total_flops() / len(x)
    train_clips = cfg.optim.epochs * cfg.optim.repeat * n_train
    evals = -(-cfg.optim.epochs // cfg.run.eval_every)
    run_flops = train_clips * step_flops / batch + evals * n_test * test_flops
    steps = -(-cfg.optim.repeat * n_train // batch) * cfg.optim.epochs
    launch_min = steps * kernels.count * GPU_ASSUMED_US_PER_KERNEL * 1e-6 / 60
    step_s = sorted(seconds)[len(seconds) // 2]
    return {"method": method, "stream": stream, "batch": batch, "train_clips_per_epoch": n_train * cfg.optim.repeat,
            "epochs": cfg.optim.epochs, "test_clips": n_test, "evals": evals,
            "gflop_per_train_clip": step_flops / batch / 1e9, "gflop_per_test_clip": test_flops / 1e9,
            "run_pflop": run_flops / 1e15, "cpu_step_s": step_s, "cpu_clips_per_s": batch / step_s,
            "cpu_gflops": step_flops / step_s / 1e9, "cpu_run_hours": run_flops / (step_flops / step_s) / 3600,
            "train_steps": steps, "ops_per_step": kernels.count, "gpu_kernel_floor_minutes_assumed": launch_min,
            "gpu_run_minutes_assumed": {str(r): run_flops / (r * 1e12) / 60 + launch_min for r in GPU_ASSUMED_TFLOPS}}


def main(argv: list[str] | None = None) -> dict | None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--methods", nargs="+", default=["gap", "pcke", "pcle"])
    ap.add_argument("--stream", default="joint")
    ap.add_argument("--reps", type=int, default=2)
    args = ap.parse_args(argv)
    root = default_root("nw-ucla")
    if root is None or not Path(root).is_dir():
        console.print("[yellow]bench.flops skipped: the NW-UCLA data (../shared/data/nw-ucla) is not here[/yellow]")
        return None
    rows = [measure(m, args.stream, args.reps) for m in args.methods]
    table = Table(title=f"work per clip and per paper-protocol run (NW-UCLA, {args.stream}, batch {rows[0]['batch']})")
    cols = ["method", "GFLOP/train clip", "GFLOP/test clip", "PFLOP/run", "CPU clips/s", "CPU GFLOP/s",
            "CPU h/run", "ops/step", "GPU kernel floor min", *[f"GPU min @{r:g} TFLOP/s" for r in GPU_ASSUMED_TFLOPS]]
    for c in cols:
        table.add_column(c, justify="right")
    for r in rows:
        table.add_row(r["method"], f"{r['gflop_per_train_clip']:.2f}", f"{r['gflop_per_test_clip']:.2f}",
                      f"{r['run_pflop']:.2f}", f"{r['cpu_clips_per_s']:.1f}", f"{r['cpu_gflops']:.0f}",
                      f"{r['cpu_run_hours']:.1f}", str(r["ops_per_step"]),
                      f"{r['gpu_kernel_floor_minutes_assumed']:.0f}",
                      *[f"{v:.0f}" for v in r["gpu_run_minutes_assumed"].values()])
    console.print(table)
    out = {"torch": torch.__version__, "threads": torch.get_num_threads(),
           "gpu_assumed_tflops": list(GPU_ASSUMED_TFLOPS), "gpu_assumed_us_per_kernel": GPU_ASSUMED_US_PER_KERNEL,
           "rows": rows}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    main()
