"""`make bench`: every benchmark in bench/, sized for about 10 minutes on 2 CPU cores.

Order: loader, knowledge engine (prompts), NTU preparation (2,000 files), training step (60 and
120 classes, MiniLM and a CLIP-sized text tower, 3 repetitions after 1 warm-up; `python -m bench.step
--reps 5` for tighter medians, see docs/benchmarks.md), work per clip and per paper-protocol run on
NW-UCLA (`bench.flops`; skipped without the real data), and the measured matmul/conv peak with today's
fp32 eager step against the fast path per method (`bench.peak`: ratio and fraction of the peak).
"""

from __future__ import annotations

import sys
import time

from bench import flops, loader, peak, prepare_ntu, prompts_bench, step


def _run(name: str, fn, argv: list[str]) -> None:
    t = time.perf_counter()
    saved = sys.argv
    sys.argv = [name, *argv]
    try:
        fn(argv) if fn in (loader.main, step.main, flops.main, peak.main) else fn()
    finally:
        sys.argv = saved
    print(f"[{name}: {time.perf_counter() - t:.0f} s]")


def main() -> None:
    _run("bench.loader", loader.main, ["--samples", "1000", "--batches", "10"])
    _run("bench.prompts_bench", prompts_bench.main, [])
    _run("bench.prepare_ntu", prepare_ntu.main, ["--files", "2000"])
    _run("bench.step", step.main, ["--classes", "60", "120", "--reps", "3", "--warmup", "1"])
    _run("bench.flops", flops.main, ["--reps", "2"])
    _run("bench.peak", peak.main, ["--reps", "3"])


if __name__ == "__main__":
    main()
