"""Loader throughput (samples/s with 0, 1, 2 workers) against the training step's consumption.

NTU-shaped: a memory-mapped array of N x (3, 300, 25, 2) with random valid lengths, through the
training dataset (crop 50-100 %, resize to 64 frames, rotation). NW-UCLA: the real data at
../shared/data/nw-ucla/all_sqe (skipped with a message when absent).

    .venv/bin/python -m bench.loader [--samples 2000] [--batches 20]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from torch.utils.data import DataLoader

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from recognizer.datasets import SkeletonDataset, Split  # noqa: E402
from recognizer.datasets.base import ClipConfig  # noqa: E402
from recognizer.method.graph import NTU25  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "loader.json"
UCLA = ROOT.parent / "shared" / "data" / "nw-ucla" / "all_sqe"


def throughput(ds, workers: int, batch: int, batches: int) -> float:
    loader = DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True,
                        persistent_workers=False)
    it = iter(loader)
    next(it)  # worker start-up is not throughput
    t, n = time.perf_counter(), 0
    for _ in range(batches):
        try:
            x, _, _ = next(it)
        except StopIteration:
            break
        n += len(x)
    return n / (time.perf_counter() - t)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--batches", type=int, default=20)
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(0)
        data = np.lib.format.open_memmap(Path(tmp) / "ntu.npy", "w+", np.float32, (args.samples, 3, 300, 25, 2))
        for i in range(0, args.samples, 200):
            data[i:i + 200] = rng.standard_normal((min(200, args.samples - i), 3, 300, 25, 2), dtype=np.float32)
        data.flush()
        split = Split(np.load(Path(tmp) / "ntu.npy", mmap_mode="r"), rng.integers(0, 60, args.samples),
                      rng.integers(40, 300, args.samples))
        ds = SkeletonDataset(split, NTU25, ClipConfig(), train=True)
        for w in (0, 1, 2):
            rows.append({"data": f"NTU-shaped memmap {args.samples} x (3,300,25,2)", "workers": w,
                         "samples_per_s": round(throughput(ds, w, args.batch, args.batches), 1)})
    if UCLA.is_dir():
        from recognizer.datasets import build_dataset

        bundle = build_dataset("nw-ucla", str(UCLA))
        ds = SkeletonDataset(bundle.train, bundle.layout, ClipConfig(window=52), train=True)
        for w in (0, 1, 2):
            rows.append({"data": "NW-UCLA train (real)", "workers": w,
                         "samples_per_s": round(throughput(ds, w, args.batch, args.batches), 1)})
    else:
        Console().print(f"[yellow]NW-UCLA skipped: {UCLA} not found[/yellow]")
    step = ROOT / "bench" / "results" / "step.json"
    need = None
    if step.is_file():
        s = json.loads(step.read_text())
        need = max(s["batch"] / m["median_s"] for g in s["groups"] for m in g["modes"].values())
    table = Table(title="loader throughput (training augmentation)")
    for c in ("data", "workers", "samples/s", "x fastest step"):
        table.add_column(c, justify="right")
    for r in rows:
        r["x_fastest_step"] = round(r["samples_per_s"] / need, 1) if need else None
        table.add_row(r["data"], str(r["workers"]), f"{r['samples_per_s']:.0f}", str(r["x_fastest_step"]))
    Console().print(table)
    out = {"batch": args.batch, "fastest_step_samples_per_s": need, "runs": rows}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    main()
