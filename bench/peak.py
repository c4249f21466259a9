"""This machine's measured matmul/conv peak, and how much of it a training step achieves.

Two parts, one process:

1. Peak: a large GEMM (fp32 and bf16) and two convolutions of CTR-GCN's shapes (the fused 1x1
   graph conv of units 2-4 and a (5, 1) temporal conv branch), forward only, best of a few runs.
2. Steps: the real training step (`train_one_epoch` over one batch of real NW-UCLA clips: forward,
   fp32 losses, backward, SGD) of GAP, PCKE and PCLE at the CPU protocol's shapes (batch 32, 52
   frames, 20 joints, width 64, 10 classes; `pcle-hybrid` is PCLE as the CPU grid reports it), today's
   fp32 eager step (`configs/nw-ucla-cpu-fp32.yaml`) against the fast path (`configs/nw-ucla-cpu.yaml`:
   bf16 autocast, fused subsets, eager attention in the text tower). FLOPs per clip are counted on the fp32 step
   (torch.utils.flop_counter, 2 per multiply-add, as bench.flops); achieved GFLOP/s = FLOPs per clip
   x clips/s, as a fraction of the measured peak of the step's own precision.

The two paths of a method alternate repetition by repetition (A, B, A, B, ...; median), so drifting
load on a shared machine hits both alike. Without the NW-UCLA data the step part is skipped.

    .venv/bin/python -m bench.peak [--reps 5] [--methods gap pcke pcle pcle-hybrid] [--no-steps]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table
from torch.utils.flop_counter import FlopCounterMode

from bench._env import ROOT  # sets sys.path and the offline switches: first of the project imports
from recognizer.analysis.ablate import GRID
from recognizer.config import merge, resolve
from recognizer.train import build_optimizer, build_parts, make_loader_for, setup_env, train_one_epoch
from recognizer.training.run_setup import default_root, with_data_root
from recognizer.training.speed import apply_fast_path, cpu_has_native_bf16

RESULTS = ROOT / "bench" / "results" / "peak.json"
BASE_CONFIG = ROOT / "configs" / "nw-ucla-cpu-fp32.yaml"
FAST_CONFIG = ROOT / "configs" / "nw-ucla-cpu.yaml"
console = Console()


# ----------------------------------------------------------------------------- peak
def _clock():
    """Process CPU time with one thread (steadier on a shared machine), else wall time."""
    return time.process_time if torch.get_num_threads() == 1 else time.perf_counter


def _best_seconds(fn, reps: int) -> float:
    fn()  # warm-up (oneDNN picks its kernels on the first call)
    clock, times = _clock(), []
    for _ in range(reps):
        t = clock()
        fn()
        times.append(clock() - t)
    return min(times)


def gemm_gflops(dtype: torch.dtype, n: int, reps: int) -> float:
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    return 2 * n**3 / _best_seconds(lambda: torch.mm(a, b), reps) / 1e9


# (name, input (N, C, T, V), conv weight (C', C, kt, 1), groups): CTR-GCN at batch 32, 52 frames, 20 joints
CONV_SHAPES = (
    ("graph conv 1x1, 64 -> 3x(8+8+64)", (32, 64, 52, 20), (240, 64, 1, 1)),
    ("temporal conv (5,1), 16 -> 16", (32, 16, 52, 20), (16, 16, 5, 1)),
)


def conv_gflops(dtype: torch.dtype, x_shape, w_shape, reps: int) -> float:
    x, w = torch.randn(x_shape).to(dtype), torch.randn(w_shape).to(dtype)
    pad = (w_shape[2] // 2, 0)
    n, _, t, v = x_shape
    flops = 2 * n * t * v * w_shape[0] * w_shape[1] * w_shape[2]
    return flops / _best_seconds(lambda: F.conv2d(x, w, padding=pad), reps) / 1e9


def measure_peak(reps: int, n: int = 2048) -> dict:
    out = {"gemm_n": n, "gemm": {}, "conv": {}}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        out["gemm"][name] = gemm_gflops(dtype, n, reps)
        out["conv"][name] = {label: conv_gflops(dtype, xs, ws, reps) for label, xs, ws in CONV_SHAPES}
    return out


# ----------------------------------------------------------------------------- steps
# the rows of `pcle ablate` (e.g. pcle-hybrid, the PCLE the CPU grid reports): its own table, not a copy
ROWS = {name: (method, sets) for name, method, sets in GRID}


def build_step(method: str, dataset: str, config: Path | None, overrides: list[str] | None = None):
    """One real training step of `method` (gap, pcke, pcle or any row of `pcle ablate`: a closure over one batch of real
    clips), its config, its batch."""
    method, row_sets = ROWS.get(method, (method, []))
    cfg = resolve(dataset, method, config_file=str(config) if config else None,
                  overrides=[*row_sets, *(overrides or [])])
    cfg = with_data_root(merge(cfg, {"data": {"num_workers": 0}, "optim": {"repeat": 1}}))
    env = setup_env(cfg)
    torch.manual_seed(cfg.run.seed)
    parts = build_parts(cfg, env)
    first = parts.bundle.train.take(np.arange(min(cfg.optim.batch_size, len(parts.bundle.train))))
    loader = make_loader_for(first, parts.bundle.layout, cfg, True, env)
    opt, scaler = build_optimizer(parts.model, parts, cfg, env)
    apply_fast_path(parts.model, cfg.model.fused_subsets, cfg.run.compile, cfg.model.channels_last,
                    warn=console.print)
    epoch = [0]

    def step() -> None:
        train_one_epoch(parts.model, parts, cfg, env, loader, opt, scaler, epoch[0], False)
        epoch[0] += 1

    return step, cfg, len(first)


def count_flops(step) -> float:
    with FlopCounterMode(display=False) as counter:
        step()
    return float(counter.get_total_flops())


def interleaved(steps: dict, reps: int, warmup: int) -> dict[str, dict[str, list[float]]]:
    """Wall and process-CPU seconds per call of each step, alternating A, B, A, B, ... after `warmup` calls
    of each. On a machine shared with other work the CPU seconds of a one-thread run are the steadier
    measure (they leave out the time other processes held the cores)."""
    for fn in steps.values():
        for _ in range(warmup):
            fn()
    times = {name: {"wall": [], "cpu": []} for name in steps}
    for _ in range(reps):
        for name, fn in steps.items():
            t, c = time.perf_counter(), time.process_time()
            fn()
            times[name]["wall"].append(time.perf_counter() - t)
            times[name]["cpu"].append(time.process_time() - c)
    return times


def measure_method(method: str, reps: int, warmup: int, peak: dict, overrides: list[str],
                   extra: dict[str, list[str]] | None = None) -> dict:
    """fp32 eager (BASE_CONFIG) against the fast path (FAST_CONFIG), and any `extra` paths (BASE_CONFIG plus
    their overrides, e.g. fused subsets alone), interleaved; clips/s, GFLOP/s and ratios to fp32."""
    base, base_cfg, batch = build_step(method, "nw-ucla", BASE_CONFIG, overrides)
    fast, fast_cfg, _ = build_step(method, "nw-ucla", FAST_CONFIG, overrides)
    extras = {name: build_step(method, "nw-ucla", BASE_CONFIG, [*overrides, *sets])
              for name, sets in (extra or {}).items()}
    t = time.perf_counter()
    fast()  # compiles (run.compile), not timed
    compile_s = time.perf_counter() - t
    flops = count_flops(base) / batch  # per clip, fp32 eager path (the fused path does the same work)
    for fn, _, _ in extras.values():
        fn()  # their first step (oneDNN's kernel choice), untimed as the fast path's
    times = interleaved({"fp32": base, "fast": fast, **{n: e[0] for n, e in extras.items()}}, reps, warmup)
    row = {"method": method, "batch": batch, "gflop_per_clip": flops / 1e9, "first_fast_step_s": compile_s,
           "times_s": times, "fast_settings": {"amp": fast_cfg.run.amp, "compile": fast_cfg.run.compile,
                                               "fused_subsets": fast_cfg.model.fused_subsets}}
    clock = "cpu" if torch.get_num_threads() == 1 else "wall"
    row["clock"] = clock
    for name, cfg in (("fp32", base_cfg), ("fast", fast_cfg), *((n, e[1]) for n, e in extras.items())):
        med = statistics.median(times[name][clock])
        precision = "bf16" if cfg.run.amp == "bf16" else "fp32"
        gflops = flops * batch / med / 1e9
        row[name] = {"median_s": med, "clips_per_s": batch / med, "gflops": gflops, "precision": precision,
                     "fraction_of_gemm_peak": gflops / peak["gemm"][precision]}
    row["speedup"] = row["fp32"]["median_s"] / row["fast"]["median_s"]
    row["extra"] = {n: {"overrides": extra[n], "speedup": row["fp32"]["median_s"] / row[n]["median_s"]}
                    for n in extras}
    return row


# ----------------------------------------------------------------------------- report
def print_peak(peak: dict) -> None:
    table = Table(title="measured peak (GFLOP/s, forward, best of the repetitions)")
    for c in ("operation", "fp32", "bf16", "bf16/fp32"):
        table.add_column(c, justify="right")
    g = peak["gemm"]
    table.add_row(f"GEMM {peak['gemm_n']}^3", f"{g['fp32']:.0f}", f"{g['bf16']:.0f}", f"{g['bf16'] / g['fp32']:.2f}")
    for label in peak["conv"]["fp32"]:
        a, b = peak["conv"]["fp32"][label], peak["conv"]["bf16"][label]
        table.add_row(label, f"{a:.0f}", f"{b:.0f}", f"{b / a:.2f}")
    console.print(table)


def print_steps(rows: list[dict], reps: int) -> None:
    table = Table(title=f"training step, CPU protocol shapes (batch {rows[0]['batch']}, 52 x 20, width 64), "
                        f"fp32 eager vs fast, {reps} interleaved repetitions, median")
    for c in ("method", "GFLOP/clip", "fp32 clips/s", "fast clips/s", "fast/fp32", "fp32 GFLOP/s",
              "fast GFLOP/s", "fp32 % peak", "fast % peak"):
        table.add_column(c, justify="right")
    for r in rows:
        a, b = r["fp32"], r["fast"]
        table.add_row(r["method"], f"{r['gflop_per_clip']:.2f}", f"{a['clips_per_s']:.1f}", f"{b['clips_per_s']:.1f}",
                      f"{r['speedup']:.2f}", f"{a['gflops']:.0f}", f"{b['gflops']:.0f}",
                      f"{100 * a['fraction_of_gemm_peak']:.0f}", f"{100 * b['fraction_of_gemm_peak']:.0f}")
    console.print(table)
    console.print("% peak: achieved GFLOP/s over the measured GEMM peak of the step's precision "
                  "(fp32 step: fp32 GEMM; bf16 step: bf16 GEMM)")


def _write(result: dict, out: Path) -> None:
    """Atomic: a reader never sees half a file; after each method, so an interrupted run keeps its rows."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    tmp.replace(out)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description="measured peak and achieved training GFLOP/s (module docstring)")
    ap.add_argument("--methods", nargs="+", default=["gap", "pcke", "pcle", "pcle-hybrid"])
    ap.add_argument("--reps", type=int, default=5, help="interleaved timed repetitions per path")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps of each path first")
    ap.add_argument("--peak-reps", type=int, default=5)
    ap.add_argument("--no-steps", action="store_true", help="only the peak")
    ap.add_argument("--threads", type=int, default=0,
                    help="torch threads (default: the configs' run.threads); with 1, steps are timed in CPU seconds")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override a key in both configs (e.g. run.compile=false)")
    ap.add_argument("--extra", action="append", default=[], metavar="NAME:KEY=VALUE[,KEY=VALUE]",
                    help="another path: the base config plus these keys (fused:model.fused_subsets=true)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    extra = {e.split(":", 1)[0]: e.split(":", 1)[1].split(",") for e in args.extra}
    overrides = [*args.overrides, *([f"run.threads={args.threads}"] if args.threads else [])]
    if args.threads:
        torch.set_num_threads(args.threads)
    result = {"command": "python -m bench.peak " + " ".join(argv if argv is not None else sys.argv[1:]),
              "torch": torch.__version__, "threads": torch.get_num_threads(),
              "load_average_at_start": list(os.getloadavg()), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
              "native_bf16": cpu_has_native_bf16()}  # without it bf16 is emulated: the fast path loses here
    t0 = time.perf_counter()
    result["peak"] = peak = measure_peak(args.peak_reps)
    print_peak(peak)
    root = default_root("nw-ucla")
    if args.no_steps:
        result["steps"] = []
    elif root is None or not Path(root).is_dir():
        console.print("[yellow]bench.peak: steps skipped, no NW-UCLA data (../shared/data/nw-ucla)[/yellow]")
        result["steps"] = []
    else:
        rows = []
        for m in args.methods:
            rows.append(measure_method(m, args.reps, args.warmup, peak, overrides, extra))
            r = rows[-1]
            _write(result | {"steps": rows, "partial": True}, args.out)
            console.print(f"[dim]{m}: fp32 {r['fp32']['median_s']:.2f} s, fast {r['fast']['median_s']:.2f} s "
                          f"({r['speedup']:.2f}x; first fast step {r['first_fast_step_s']:.0f} s)"
                          + "".join(f", {n} {v['speedup']:.2f}x" for n, v in r["extra"].items()) + "[/dim]")
        result["steps"] = rows
        print_steps(rows, args.reps)
    result["load_average_at_end"] = list(os.getloadavg())
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    _write(result, args.out)
    console.print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return result


if __name__ == "__main__":
    main()
