"""Benchmark: generate the NTU120 corpus against the local test server (fixed 200 ms per request).

Reports wall time at concurrency 1 and 16, and with a warm cache (which must send 0 requests).
Run: `.venv/bin/python bench/prompts_bench.py`; writes bench/results/prompts.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from knowledge_engine.backends import BackendConfig  # noqa: E402
from knowledge_engine.generate import RunConfig  # noqa: E402
from knowledge_engine.run import GenerateOptions, generate_corpus  # noqa: E402
from knowledge_engine.testing.fake_server import FakeLLMServer  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "prompts.json"


def run_once(server: FakeLLMServer, classes: Path, work: Path, concurrency: int) -> dict:
    """One generation run into `work`; returns the numbers for the table."""
    server.reset()
    opts = GenerateOptions(
        dataset="ntu120", classes=classes,
        backend=BackendConfig(kind="openai", base_url=server.url, model="fake-model", timeout=30),
        run=RunConfig(concurrency=concurrency, progress=False),
        out=work / "corpus.jsonl", cache=work / "cache.jsonl",
    )
    result = generate_corpus(opts, console=Console(stderr=True, quiet=True))
    s = result.stats
    return {"concurrency": concurrency, "requests": s.requests, "cached": s.cached, "sent_by_client": s.sent,
            "seen_by_server": len(server.seen), "max_in_flight": server.max_inflight,
            "wall_s": round(s.wall_s, 4), "records": len(result.records)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--classes", type=Path, default=ROOT / "prompts" / "classes" / "ntu120.txt")
    parser.add_argument("--latency", type=float, default=0.2)
    args = parser.parse_args()
    if not args.classes.is_file():
        sys.exit(f"{args.classes}: class list not found")
    rows = []
    with FakeLLMServer(latency=args.latency) as server, tempfile.TemporaryDirectory() as tmp:
        for conc in (1, 16):
            work = Path(tmp) / f"c{conc}"
            row = run_once(server, args.classes, work, conc)
            rows.append({"run": f"cold, concurrency {conc}", **row})
            if conc == 16:
                rows.append({"run": "warm cache", **run_once(server, args.classes, work, conc)})
    assert rows[-1]["seen_by_server"] == 0, "a warm cache must send no request"
    print_table(rows)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"latency_s": args.latency, "classes": str(args.classes.relative_to(ROOT)),
                                   "templates": "synonyms,parts", "n": 2, "runs": rows}, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


def print_table(rows: list[dict]) -> None:
    table = Table(title="NTU120 corpus generation, 200 ms per request (local test server)")
    cols = ("run", "requests", "cached", "seen_by_server", "max_in_flight", "wall_s")
    for c in cols:
        table.add_column(c, justify="right")
    for r in rows:
        table.add_row(*(str(r[c]) for c in cols))
    Console().print(table)


if __name__ == "__main__":
    main()
