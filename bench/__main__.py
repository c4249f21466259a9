"""`make bench`: every benchmark in bench/, sized for about 10 minutes on 2 CPU cores.

Order: loader, knowledge engine (prompts), NTU preparation (500 files), training step. The step
benchmark at full size (2 encoders x 60/120 classes x 4 modes) takes far longer on 2 cores than
this budget allows: here it runs 60 classes with both encoders, 2 repetitions, 1 warm-up; run
`python -m bench.step` for the full table (docs/benchmarks.md).
"""

from __future__ import annotations

import sys
import time

from bench import loader, prepare_ntu, prompts_bench, step


def _run(name: str, fn, argv: list[str]) -> None:
    t = time.perf_counter()
    saved = sys.argv
    sys.argv = [name, *argv]
    try:
        fn(argv) if fn in (loader.main, step.main) else fn()
    finally:
        sys.argv = saved
    print(f"[{name}: {time.perf_counter() - t:.0f} s]")


def main() -> None:
    _run("bench.loader", loader.main, ["--samples", "1000", "--batches", "10"])
    _run("bench.prompts_bench", prompts_bench.main, [])
    _run("bench.prepare_ntu", prepare_ntu.main, ["--files", "500"])
    _run("bench.step", step.main, ["--classes", "60", "--reps", "2", "--warmup", "1"])


if __name__ == "__main__":
    main()
