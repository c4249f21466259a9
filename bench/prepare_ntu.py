"""Benchmark `prepare-ntu`: files per second with one worker and with all cores.

Generates a raw NTU60 tree of 2,000 files (official format, 60-110 frames, noise bodies) in a
temporary folder, prepares it twice from scratch and writes bench/results/prepare_ntu.json.

    .venv/bin/python bench/prepare_ntu.py [--files 2000]
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from recognizer.datasets.ntu import default_workers, missing_samples, prepare_ntu
from recognizer.datasets.ntu_generate import generate_tree

RESULTS = Path(__file__).resolve().parent / "results" / "prepare_ntu.json"


def names(n: int, seed: int = 0) -> list[str]:
    skip = missing_samples("ntu60")
    combos = [f"S{s:03d}C{c:03d}P{p:03d}R{r:03d}A{a:03d}" for s, c, p, r, a in
              itertools.product(range(1, 18), (1, 2, 3), range(1, 41), (1, 2), range(1, 61))]
    rng = np.random.default_rng(seed)
    picked = [combos[i] for i in rng.choice(len(combos), size=n + len(skip), replace=False)]
    return sorted(x for x in picked if x not in skip)[:n]


def run(raw: Path, workers: int) -> dict:
    out = Path(tempfile.mkdtemp(prefix="bench-out-"))
    try:
        start = time.perf_counter()
        r = prepare_ntu(raw, out, "ntu60", workers=workers, progress=False)
        seconds = time.perf_counter() - start
        return {"workers": workers, "files": r.parsed, "seconds": round(seconds, 2),
                "files_per_s": round(r.parsed / seconds, 1), "bad": len(r.bad), "counts": r.counts}
    finally:
        shutil.rmtree(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=2000)
    args = ap.parse_args()
    console = Console()
    tmp = Path(tempfile.mkdtemp(prefix="bench-raw-"))
    try:
        t = time.perf_counter()
        generate_tree(tmp, names(args.files), frames=(60, 110), unique=64)
        size = sum(p.stat().st_size for p in tmp.iterdir())
        took = time.perf_counter() - t
        console.print(f"generated {args.files} files ({size / 2**20:.0f} MiB) in {took:.1f} s")
        cores = default_workers()
        results = [run(tmp, 1)] + ([run(tmp, cores)] if cores > 1 else [])
    finally:
        shutil.rmtree(tmp)
    table = Table("workers", "files", "seconds", "files/s", "speed-up", title="pcle data prepare-ntu")
    for r in results:
        table.add_row(str(r["workers"]), str(r["files"]), f"{r['seconds']:.1f}", f"{r['files_per_s']:.0f}",
                      f"{r['files_per_s'] / results[0]['files_per_s']:.2f}x")
    console.print(table)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"files": args.files, "raw_mib": round(size / 2**20, 1), "cores": cores,
                                   "machine": platform.platform(), "cpu": platform.processor(),
                                   "runs": results}, indent=1) + "\n")
    console.print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
