"""`pcle reproduce` / `make reproduce`: the paper protocol for one dataset in one resumable command.

Every stream (joint, bone, joint motion, bone motion) x every method (gap, pcke, pcle) is trained with
the dataset's preset (GAP's schedule; `--config` and `--set` apply on top), then each method's streams
are combined (softmax scores weighted 0.6/0.6/0.4/0.4, or searched on the validation split when the runs
have one), and one Markdown table in the layout of the paper's Table 3 is written: method rows, the
streams and the ensemble as columns, the published numbers beside ours. Runs live in
OUT/<stream>/<method>/seed<k>/ and are reused or resumed exactly as `pcle ablate` does (a finished run is
reused only if its config matches), so an interrupted command is simply started again.
"""

from __future__ import annotations

import json
from pathlib import Path

from recognizer.analysis.ablate import run_grid
from recognizer.analysis.ensemble import (
    EnsembleError,
    check_aligned,
    combine,
    default_weights,
    load_run,
    search_weights,
)
from recognizer.analysis.ensemble import topk as ens_topk
from recognizer.checkpoint import atomic_write_text

STREAMS = ("joint", "bone", "joint_motion", "bone_motion")
METHODS = ("gap", "pcke", "pcle")
# Published 4-stream ensembles, top-1 % (CTR-GCN: Chen et al., ICCV 2021, Tables 6-7; GAP: Xiang et al.,
# ICCV 2023, Tables 5-6). Per-stream numbers are not given for every dataset in those papers.
PUBLISHED = {
    "ntu60-xsub": {"CTR-GCN": 92.4, "GAP": 92.9},
    "ntu60-xview": {"CTR-GCN": 96.8, "GAP": 97.0},
    "ntu120-xsub": {"CTR-GCN": 88.9, "GAP": 89.9},
    "ntu120-xset": {"CTR-GCN": 90.6, "GAP": 91.1},
    "nw-ucla": {"CTR-GCN": 96.5, "GAP": 97.2},
}
LABELS = {"gap": "GAP (ours, this code)", "pcke": "PCKE (ours)", "pcle": "PCLE (ours)"}


def _split(items: str | list[str] | tuple[str, ...], known: tuple[str, ...], what: str) -> list[str]:
    names = [s.strip() for s in (items.split(",") if isinstance(items, str) else items) if s.strip()]
    bad = [n for n in names if n not in known]
    if bad or not names:
        raise ValueError(f"--{what} {','.join(bad) or '(none)'}: choose from {', '.join(known)}")
    return names


def reproduce(dataset: str, out: str | Path, config: str | None = None, overrides: list[str] | None = None,
              streams: str | list[str] = STREAMS, methods: str | list[str] = METHODS, seed: int = 0,
              epochs: int | None = None, progress: bool = False, log=print) -> dict:
    """Train what is missing, then write OUT/table.md and OUT/table.json; returns the table as data."""
    out = Path(out)
    streams, methods = _split(streams, STREAMS, "streams"), _split(methods, METHODS, "methods")
    for stream in streams:
        log(f"== stream {stream}")
        run_grid(out / stream, dataset, config, [seed], epochs, [*(overrides or []), f"data.clip.stream={stream}"],
                 [",".join(methods)], progress, log)
    table = {"dataset": dataset, "seed": seed, "streams": streams, "rows": []}
    for method in methods:
        runs = [out / s / method / f"seed{seed}" for s in streams]
        row = {"method": method, "label": LABELS[method],
               "streams": {s: json.loads((r / "metrics.json").read_text())["top1"] for s, r in zip(streams, runs)}}
        row.update(ensemble_of(runs))
        table["rows"].append(row)
    atomic_write_text(out / "table.json", json.dumps(table, indent=1) + "\n")
    atomic_write_text(out / "table.md", to_markdown(table))
    return table


def ensemble_of(runs: list[Path]) -> dict:
    """Top-1 of the streams combined: weights searched on validation scores when every run has them."""
    scores = [load_run(r, "test") for r in runs]
    check_aligned(scores)
    try:
        val = [load_run(r, "val") for r in runs]
        check_aligned(val)
        weights, how = search_weights(val), "searched on validation"
    except EnsembleError:
        weights, how = default_weights(scores), "default by stream"
    fused = combine(scores, weights)
    return {"ensemble": ens_topk(fused, scores[0].labels, 1), "weights": [float(w) for w in weights],
            "weights_from": how}


def to_markdown(table: dict) -> str:
    streams = table["streams"]
    head = ["method", *[s.replace("_", " ") for s in streams], f"{len(streams)}-stream ensemble"]
    lines = [f"# {table['dataset']}: top-1 % on the test split (seed {table['seed']})", "",
             "| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    for name, value in PUBLISHED.get(table["dataset"], {}).items():
        lines.append(f"| {name} (published) | " + " | ".join("" for _ in streams) + f" | {value:.1f} |")
    for row in table["rows"]:
        cells = [f"{row['streams'][s]:.2f}" for s in streams] + [f"**{row['ensemble']:.2f}**"]
        lines.append(f"| {row['label']} | " + " | ".join(cells) + " |")
    weights = "; ".join(f"{r['method']}: {', '.join(f'{w:g}' for w in r['weights'])} ({r['weights_from']})"
                        for r in table["rows"])
    lines += ["", f"Ensemble weights (streams in column order): {weights}.",
              "Published numbers are 4-stream ensembles with CLIP (GAP) on the full schedule; ours use the "
              "text encoder and schedule in each run's config.yaml."]
    return "\n".join(lines) + "\n"
