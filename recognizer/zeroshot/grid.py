"""`pcle zeroshot-grid`: train one run per (method, seen/unseen split), evaluate them all, tabulate.

Runs go to OUT/<method>/<split>/ (e.g. OUT/pcke/random-2-0/) through `recognizer.train.train` with
`data.unseen=<split>`; finished runs (metrics.json) are read, interrupted ones resumed, so rerunning
the command continues the grid. A finished run without its checkpoint (committed results keep only the
small files) contributes the evaluation its RUN/zeroshot.json stored with the same options.
Each run is evaluated in the text modes of its method (PCLE: learned context and class name only;
PCKE/GAP: corpus mean, best-of and class name only) and OUT/zeroshot.md, .csv and .json hold mean ± std
over the splits.
"""

from __future__ import annotations

import json
from pathlib import Path

from recognizer.zeroshot.evaluate import evaluate_or_reuse, write_tables

GRID_MODES = {"pcle": ["learned", "name"], "pcke": ["mean", "best", "name"], "gap": ["mean", "best", "name"]}


def parse_methods(text: str) -> list[str]:
    methods = [m.strip() for m in text.split(",") if m.strip()]
    bad = [m for m in methods if m not in GRID_MODES]
    if bad or not methods:
        raise ValueError(f"--methods {text!r}: choose from {', '.join(GRID_MODES)} (comma-separated)")
    return methods


def run_zeroshot_grid(out: str | Path, dataset: str | None, config: str | None, methods: list[str],
                      splits: list[str], epochs: int | None = None, overrides: list[str] | None = None,
                      gamma: float = 0.0, parts_weight: float = 0.0, progress: bool = False, log=print) -> list[dict]:
    """Train what is missing, evaluate every run, write OUT/zeroshot.{md,csv,json}; returns the records."""
    from recognizer.analysis.ablate import refuse_other_configs, train_or_reuse
    from recognizer.config import resolve
    from recognizer.datasets.splits import expand_specs, slug
    from recognizer.training.run_setup import check_config, with_data_root

    out = Path(out)
    specs = expand_specs(splits)
    base = list(overrides or []) + ([f"optim.epochs={epochs}"] if epochs else [])
    # split by split, every method on each: a grid cut short still holds paired comparisons
    plan = [(m, s, with_data_root(resolve(dataset, m, config, base + [f"data.unseen={json.dumps(s)}"])))
            for s in specs for m in methods]
    for _, _, cfg in plan:  # a bad key fails before hours of training
        check_config(cfg)
    refuse_other_configs([(out / method / slug(spec), cfg) for method, spec, cfg in plan])
    title = f"Zero-shot on {dataset or plan[0][2].data.dataset}"
    records = []
    for i, (method, spec, cfg) in enumerate(plan, 1):
        run = out / method / slug(spec)
        train_or_reuse(run, cfg, f"[{i}/{len(plan)}] {method} {spec}", progress, log)
        records += evaluate_or_reuse(run, GRID_MODES[method], gamma, parts_weight, log=log)
        write_tables(out, records, title)  # after each run: the tables never lag a long grid
    return records
