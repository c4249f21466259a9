"""Benchmark: how many classes the embedded model (SmolLM2-135M, in-process llama.cpp) leaves on fallback
text, on a few class lists, and why its replies were rejected.

Each list is generated with the engine itself (`generate_corpus`, the `llama` backend, the sampling
defaults of `pcle prompts generate`) into its own cache under `prompts/cache/` (`bench-fallback-<list>.jsonl`,
shared by every configuration: cache keys hold the template text and the sampling), so a rerun or an
interrupted run sends only what is missing. The rejection reasons are counted by kind over the cached
rows of the run's requests (a warm rerun reports the same counts); only classes whose requests have all
finished are counted, so `--no-send` reports an interrupted run. Results are merged into
bench/results/fallback_rate.json under `--tag`, so before/after runs sit side by side.

Run: `nice -n 19 .venv/bin/python -m bench.fallback_rate --tag baseline [--lists nw-ucla,ntu60-20,everyday]`
(needs the `[local]` extra). CPU only; one call at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import tempfile
import time
from collections import Counter
from pathlib import Path

from rich.console import Console

from bench._env import ROOT  # sets sys.path and the offline switches: first of the project imports
from corpus.files import atomic_write_text
from knowledge_engine.backends.base import Sampling
from knowledge_engine.backends.llama_cpp import LlamaCppBackend
from knowledge_engine.cache import Cache, acquire, cache_lock
from knowledge_engine.classes import load_classes
from knowledge_engine.generate import RunConfig, build_requests, fetch
from knowledge_engine.run import CACHE_DIR, GENERATED_DIR, GenerateOptions, generate_corpus, plan
from knowledge_engine.templates import load_template

RESULTS = ROOT / "bench" / "results" / "fallback_rate.json"
CLASSES = ROOT / "prompts" / "classes"
# Ten everyday actions in no shipped class list (a new user's own data).
EVERYDAY = [
    "open a door",
    "tie shoelaces",
    "climb stairs",
    "sweep the floor",
    "pour water into a glass",
    "fold a towel",
    "carry a box",
    "look at a wristwatch",
    "stretch both arms",
    "knock on a door",
]


def class_lists(work: Path) -> dict[str, Path]:
    """The lists measured: NW-UCLA (10), every third NTU60 class (20) and the everyday actions (10)."""
    ntu60 = load_classes(CLASSES / "ntu60.txt")
    lists = {"nw-ucla": CLASSES / "nw-ucla.txt", "ntu60-20": ntu60[::3], "everyday": EVERYDAY}
    out = {}
    for name, value in lists.items():
        if isinstance(value, Path):
            out[name] = value
        else:
            path = work / f"{name}.txt"
            path.write_text("\n".join(value) + "\n", encoding="utf-8")
            out[name] = path
    return out


_KINDS = (
    ("example-copy", re.compile(r"copies the prompt's example '([^']*)'")),
    ("truncated", re.compile(r"finish_reason=length")),
    ("schema", re.compile(r"^schema:")),
    ("not-json", re.compile(r"not valid JSON|empty reply")),
    ("placeholder", re.compile(r"placeholder")),
    ("punctuation", re.compile(r"stray punctuation")),
    ("same-parts", re.compile(r"described the same way")),
)


def reason_kind(reason: str) -> tuple[str, str | None]:
    """A rejection reason's kind, and for a copy the example that was copied."""
    for kind, pattern in _KINDS:
        m = pattern.search(reason)
        if m:
            return kind, (m.group(1).lower().rstrip(".") if m.groups() else None)
    return "other", None


def measure(name: str, classes: Path, args: argparse.Namespace, backend: LlamaCppBackend) -> dict:
    """Generate one list (only what its cache lacks; nothing with --no-send) and count fallbacks and
    rejections over the classes whose requests have all finished (an interrupted list counts what it has)."""
    run = RunConfig(
        concurrency=1,
        invalid_retries=args.invalid_retries,
        retry_invalid=args.retry_invalid,
        progress=False,
        max_tokens_total=0 if args.no_send else None,
    )
    opts = GenerateOptions(
        dataset=None,
        classes=classes,
        templates=tuple(args.templates.split(",")),
        sampling=Sampling(n=args.n, max_tokens=args.max_tokens, top_p=0.95),
        run=run,
        out=GENERATED_DIR / f"bench-fallback-{name}-{args.tag}.jsonl",
        cache=CACHE_DIR / f"bench-fallback-{name}.jsonl",
    )
    start = time.perf_counter()
    result = generate_corpus(opts, console=Console(stderr=True, quiet=True), backend=backend)
    wall = time.perf_counter() - start
    requests = plan(opts, backend)[1]
    rows = {k: r for k, r in _rows(result.cache).items() if k in {q.key for q in requests}}
    done = {q.class_name for q in requests} - {
        q.class_name for q in requests if rows.get(q.key, {}).get("status") not in ("ok", "invalid")
    }
    fallback = {c: f for c, f in result.fallback.items() if c in done}
    kinds, copied = _rejections(rows.values())
    return {
        "classes_in_list": len(result.records),
        "classes": len(done),
        "fallback_classes": len(fallback),
        "fallback_rate": round(len(fallback) / max(1, len(done)), 3),
        "fallback": fallback,
        "fallback_fields": dict(Counter(f for fb in fallback.values() for f in fb)),
        "requests": len(rows),
        "calls": sum(int(r.get("calls") or 0) for r in rows.values()),
        "rejected": sum(kinds.values()),
        "rejections_by_kind": dict(kinds.most_common()),
        "copied_examples": dict(copied.most_common()),
        "invalid_requests": sum(r["status"] == "invalid" for r in rows.values()),
        "calls_this_run": result.stats.sent,
        "wall_s_this_run": round(wall, 1),
    }


def probe(name: str, classes: Path, args: argparse.Namespace, backend: LlamaCppBackend) -> dict:
    """`--only TEMPLATE`: send only that template's requests (the engine's own `fetch`, cache and lock)
    and count the classes it left without a valid reply (they would fall back on that template's fields)
    and why replies were rejected. Cheaper than a full list on a busy CPU; `--template-file` swaps in a
    variant of the template to compare."""
    template = load_template(args.template_file or args.only)
    sampling = Sampling(n=args.n, max_tokens=args.max_tokens, top_p=0.95)
    requests = build_requests(load_classes(classes), (template,), backend, sampling)
    path = CACHE_DIR / f"bench-fallback-{name}-{template.name}-v{template.version}.jsonl"  # variants run side by side
    run = RunConfig(
        concurrency=1,
        invalid_retries=args.invalid_retries,
        progress=False,
        max_tokens_total=0 if args.no_send else None,
    )
    lock = cache_lock(path)
    acquire(lock)
    try:
        start = time.perf_counter()
        stats = asyncio.run(fetch(requests, backend, Cache.open(path), run))
        wall = time.perf_counter() - start
    finally:
        lock.release()
    rows = {k: r for k, r in _rows(path).items() if k in {q.key for q in requests}}
    finished = [r for r in rows.values() if r["status"] in ("ok", "invalid")]
    kinds, copied = _rejections(rows.values())
    failed = sorted(r["request"]["class"] for r in finished if r["status"] == "invalid")
    return {
        "template": template.name,
        "template_version": template.version,
        "classes": len(finished),
        "no_valid_reply": len(failed),
        "no_valid_reply_rate": round(len(failed) / max(1, len(finished)), 3),
        "classes_without_reply": failed,
        "calls": sum(int(r.get("calls") or 0) for r in rows.values()),
        "no_valid_reply_by_budget": by_budget(finished, args.invalid_retries) if args.n == 1 else None,
        "rejected": sum(kinds.values()),
        "rejections_by_kind": dict(kinds.most_common()),
        "copied_examples": dict(copied.most_common()),
        "calls_this_run": stats.sent,
        "wall_s_this_run": round(wall, 1),
    }


def by_budget(finished: list[dict], budget: int) -> dict[str, int]:
    """Classes left without a valid reply at every smaller --invalid-retries, from one n = 1 run at `budget`:
    a request falls back at budget b when its first b + 1 calls (seeds s .. s+b, the same replies whatever n,
    since llama.cpp answers one choice per call) were all rejected."""
    first_valid = [r["bad_calls"] if r["status"] == "ok" else budget + 1 for r in finished]
    return {str(b): sum(i > b for i in first_valid) for b in range(budget + 1)}


def _rejections(rows) -> tuple[Counter, Counter]:
    """Rejected replies by kind, and the examples copied."""
    kinds, copied = Counter(), Counter()
    for row in rows:
        for rej in row.get("rejected") or []:
            kind, example = reason_kind(str(rej.get("reason", "")))
            kinds[kind] += 1
            if example:
                copied[example] += 1
    return kinds, copied


def _rows(cache: Path) -> dict[str, dict]:
    """The cache's last row per key, read as the engine reads it (a torn line is skipped, nothing rewritten)."""
    return Cache.open(cache, compact=False).rows


def save(tag: str, entry: dict) -> None:
    """Merge this tag's numbers into the results file (atomic: temporary file, then rename)."""
    data = json.loads(RESULTS.read_text(encoding="utf-8")) if RESULTS.is_file() else {}
    data.setdefault("runs", {})[tag] = entry
    atomic_write_text(RESULTS, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tag", required=True, help="name of this configuration in the results file")
    ap.add_argument("--lists", default="nw-ucla,ntu60-20,everyday")
    ap.add_argument("--templates", default="synonyms,parts")
    ap.add_argument("--n", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=Sampling().max_tokens)
    ap.add_argument("--invalid-retries", type=int, default=RunConfig().invalid_retries)
    ap.add_argument("--retry-invalid", action="store_true", help="resend requests cached as invalid")
    ap.add_argument("--only", help="send only this template's requests (e.g. parts): see probe()")
    ap.add_argument("--template-file", help="with --only: a variant of that template (a YAML path)")
    ap.add_argument("--no-send", action="store_true", help="report from the caches only (an interrupted run)")
    ap.add_argument("--threads", type=int, default=1, help="llama.cpp threads (1: a loaded machine)")
    args = ap.parse_args()
    backend = LlamaCppBackend(n_threads=args.threads)
    config = {
        "model": backend.model,
        "templates": args.templates,
        "n": args.n,
        "max_tokens": args.max_tokens,
        "invalid_retries": args.invalid_retries,
        "threads": args.threads,
        "concurrency": 1,
        "reported_from_cache_only": args.no_send,
        "only": args.only,
        "template_file": args.template_file,
    }
    niceness = os.nice(0)  # the priority it really ran at: it sets the wall times
    command = (
        (f"nice -n {niceness} " if niceness else "")
        + f".venv/bin/python -m bench.fallback_rate --tag {args.tag} --lists {args.lists} "
        f"--templates {args.templates} --n {args.n} --max-tokens {args.max_tokens} "
        f"--invalid-retries {args.invalid_retries}"
        + (" --retry-invalid" if args.retry_invalid else "")
        + (f" --only {args.only}" if args.only else "")
        + (f" --template-file {args.template_file}" if args.template_file else "")
    )
    per_list: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as work:
        lists = class_lists(Path(work))
        for name in args.lists.split(","):
            per_list[name] = (probe if args.only else measure)(name, lists[name], args, backend)
            print(name, json.dumps(per_list[name]), flush=True)
            save(args.tag, {"config": config, "command": command, "lists": per_list, "total": totals(per_list)})
    print(json.dumps(totals(per_list)))


def totals(per_list: dict[str, dict]) -> dict:
    """Sums over the lists measured so far (saved after each list, so an interrupted run keeps them)."""
    failed = "no_valid_reply" if any("no_valid_reply" in v for v in per_list.values()) else "fallback_classes"
    total = {k: sum(v[k] for v in per_list.values()) for k in ("classes", failed, "calls", "rejected")}
    total[failed.removesuffix("_classes") + "_rate"] = round(total[failed] / max(1, total["classes"]), 3)
    return total


if __name__ == "__main__":
    main()
