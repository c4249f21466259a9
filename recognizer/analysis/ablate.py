"""The ablation grid of the method, as data, run with one or several seeds.

Each row is (name, method, overrides); its runs go to OUT/<name>/seed<k>/ through
`recognizer.train.train` with `resolve(dataset, method, config, user overrides + row overrides)`.
A run whose metrics.json exists is finished and is read, not retrained, so an interrupted grid
resumes (a run with a checkpoint but no metrics.json continues with `resume=True`) -- but only when
the hash of its saved config equals the hash of the config this call resolves for it (other
`--epochs` or `--set` values are refused before anything trains, naming the keys that differ). The
results go to OUT/ablation.md (mean ± sample std over seeds when there are several) and
OUT/ablation.csv (one line per run, with its config hash); both always cover every finished run in
OUT, also those of rows left out with `--only`.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np

from recognizer.analysis.runs import config_differences, config_hash
from recognizer.checkpoint import atomic_write_text
from recognizer.config import ConfigError, from_yaml_text
from recognizer.training.run_setup import check_config, with_data_root

# PCLE as issue 21 chose it on the screen (docs/method.md, "PCLE that learns"): CoOp's init ("a person is", as
# many context vectors as its tokens), the prompt pooled over the words after the context, the hybrid prompt
# (learned context + one LLM synonym per sample; the class text the mean of every synonym prompt, as at test),
# and the inference rule fixed before training (logits + 1.0 x scale x similarity after interaction; the
# head alone is reported beside it)
PCLE_HYBRID = ["prompt.ctx_init=a person is", "prompt.init_length=words", "prompt.pooling=name", "prompt.hybrid=true",
               "prompt.hybrid_class_text=mean", "model.inference=fusion", "model.fuse_weight=1.0"]

# (name, method, overrides applied after the user's --config / --set)
GRID: list[tuple[str, str, list[str]]] = [
    ("gap", "gap", []),
    ("pcke", "pcke", []),
    ("pcle", "pcle", []),
    ("pcle-hybrid", "pcle", PCLE_HYBRID),
    ("pcle-no-bridger", "pcle", ["model.bridger=false"]),
    ("pcle-no-interaction", "pcle", ["model.interaction=false"]),
    ("pcle-no-ranking", "pcle", ["loss.ranking=false"]),
    ("pcle-no-after", "pcle", ["loss.after=false"]),
    ("pcle-learned-queries", "pcle", ["model.bridger_mode=learned"]),
    ("pcle-ctx4", "pcle", ["prompt.n_ctx=4"]),
    ("pcle-ctx8", "pcle", ["prompt.n_ctx=8"]),
    ("pcle-ctx16", "pcle", ["prompt.n_ctx=16"]),
]
# The other input streams (the rows above are the joint stream) of PCLE, GAP, PCKE and the hybrid PCLE, so a
# 4-stream comparison is like for like (`pcle-bone`, ..., `pcle-hybrid-bone-motion`): combine with `pcle ensemble`
STREAMS = (("bone", "bone"), ("joint-motion", "joint_motion"), ("bone-motion", "bone_motion"))
_ROWS = {name: (method, over) for name, method, over in GRID}
GRID += [(f"{name}-{suffix}", _ROWS[name][0], [*_ROWS[name][1], f"data.clip.stream={stream}"])
         for name in ("pcle", "gap", "pcke", "pcle-hybrid") for suffix, stream in STREAMS]
DESCRIPTIONS = {
    "gap": "GAP baseline (GAP's recipe: PCKE prompts, no interaction/ranking)",
    "pcke": "PCKE (LLM descriptions)",
    "pcle": "PCLE (learnable context)",
    "pcle-hybrid": "PCLE, hybrid prompt (learned context + LLM synonyms), CoOp init, name pooling, fixed rule",
    "pcle-no-bridger": "PCLE without skeleton-language bridger",
    "pcle-no-interaction": "PCLE without cross-modality attention",
    "pcle-no-ranking": "PCLE without ranking loss",
    "pcle-no-after": "PCLE without the contrastive loss after the interaction",
    "pcle-learned-queries": "PCLE, bridger with learned text-free queries",
    "pcle-ctx4": "PCLE, context length 4",
    "pcle-ctx8": "PCLE, context length 8",
    "pcle-ctx16": "PCLE, context length 16",
}
DESCRIPTIONS |= {f"{name}-{suffix}": f"{DESCRIPTIONS[name].split(' (')[0]}, {suffix} stream"
                 for name in ("pcle", "gap", "pcke", "pcle-hybrid") for suffix, _ in STREAMS}
METRICS = ("top1", "top5", "mean_class_accuracy")


def select(only: list[str] | None) -> list[tuple[str, str, list[str]]]:
    if not only:
        return list(GRID)
    names = [s.strip() for part in only for s in part.split(",") if s.strip()]
    known = {n for n, _, _ in GRID}
    bad = [n for n in names if n not in known]
    if bad:
        raise ValueError(f"unknown ablation row(s) {', '.join(bad)} (known: {', '.join(n for n, _, _ in GRID)})")
    return [row for row in GRID if row[0] in names]


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in str(text).split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"--seeds {text!r}: expected comma-separated integers such as 0,1,2") from None
    if not seeds:
        raise ValueError("--seeds: give at least one seed")
    return seeds


def run_grid(out: str | Path, dataset: str | None = None, config: str | None = None, seeds: list[int] = (0,),
             epochs: int | None = None, overrides: list[str] | None = None, only: list[str] | None = None,
             progress: bool = False, log=print) -> list[dict]:
    """Train every (row, seed) not yet finished; returns one record per run."""
    from recognizer.config import resolve

    out = Path(out)
    rows = select(only)
    base = list(overrides or []) + ([f"optim.epochs={epochs}"] if epochs is not None else [])
    # resolve everything first: a bad key fails before hours of training
    plan = [(name, seed, with_data_root(resolve(dataset, method, config, base + extra + [f"run.seed={seed}"])))
            for name, method, extra in rows for seed in seeds]
    for _, _, cfg in plan:
        check_config(cfg)
    refuse_other_configs([(out / name / f"seed{seed}", cfg) for name, seed, cfg in plan])
    records = collect(out)
    for i, (name, seed, cfg) in enumerate(plan, 1):
        train_or_reuse(out / name / f"seed{seed}", cfg, f"[{i}/{len(plan)}] {name} seed {seed}", progress, log)
        records = collect(out)  # the tables follow each finished run, not only the end of a long grid
        write_tables(out, records, dataset or "")
    return records


def train_or_reuse(run: Path, cfg, label: str, progress: bool = False, log=print) -> None:
    """A finished run (metrics.json) is reused, an interrupted one resumed, a missing one trained; callers
    check first with `refuse_other_configs` that a reused folder was made with the same config."""
    from recognizer.train import train

    if (run / "metrics.json").is_file():
        log(f"{label}: done already, same config ({run})")
        return
    resume = (run / "checkpoint.pt").is_file()
    if not resume and clear_unstarted(run):
        log(f"{label}: the earlier attempt stopped before its first epoch ended; starting it again")
    log(f"{label}: {'resuming' if resume else 'training'} -> {run}")
    train(cfg, run, resume=resume, progress=progress)


def clear_unstarted(run: Path) -> bool:
    """Remove what a run stopped in its first epoch left (config, provenance, log header, empty epoch log);
    callers have checked its config equals this one's. A run with any logged epoch is left alone."""
    log = run / "log.jsonl"
    if not (run / "config.yaml").is_file() or (log.is_file() and log.read_text(encoding="utf-8").strip()):
        return False
    for name in ("config.yaml", "provenance.json", "train.log", "log.jsonl"):
        (run / name).unlink(missing_ok=True)
    shutil.rmtree(run / "tb", ignore_errors=True)
    return True


def saved_config(run: Path):
    """The config a run folder was made with (data root filled in as training does), or None."""
    path = run / "config.yaml"
    if not path.is_file():
        return None
    try:
        return with_data_root(from_yaml_text(path.read_text()))
    except ConfigError as e:
        raise ValueError(f"{path}: {e}") from None


def refuse_other_configs(planned: list[tuple[Path, object]]) -> None:
    """A run folder is reused only for the config it was made with; otherwise stop before training anything."""
    clashes = []
    for run, cfg in planned:
        saved, cfg = saved_config(run), with_data_root(cfg)  # a saved config names its data root; compare alike
        if saved is not None and config_hash(saved) != config_hash(cfg):
            clashes.append(f"{run} ({config_differences(saved, cfg)})")
    if clashes:
        raise ValueError(f"{len(clashes)} run folder(s) hold runs made with another config, e.g. {clashes[0]}; "
                         "use another --out, or delete those folders to retrain them")


def collect(out: Path) -> list[dict]:
    """Every finished run under OUT/<row>/seed<k>/ (grid rows first, in grid order), one record each."""
    order = {name: i for i, (name, _, _) in enumerate(GRID)}
    runs = sorted(out.glob("*/seed*/metrics.json"),
                  key=lambda p: (order.get(p.parent.parent.name, len(order)), p.parent.parent.name,
                                 _seed_of(p.parent)))
    records = []
    for path in runs:
        run = path.parent
        try:
            metrics = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: not readable JSON ({e})") from None
        saved = saved_config(run)
        records.append({"name": run.parent.name, "method": metrics.get("method", ""), "seed": _seed_of(run),
                        "run": str(run), **{k: float(metrics[k]) for k in METRICS},
                        "epochs": int(metrics.get("epochs", 0)),
                        "train_samples_per_s": float(metrics.get("train_samples_per_s", 0.0)),
                        "dataset": metrics.get("dataset", ""),
                        "config_hash": config_hash(saved) if saved is not None else ""})
    return records


def _seed_of(run: Path) -> int:
    tail = run.name.removeprefix("seed")
    return int(tail) if tail.isdigit() else -1


def aggregate(records: list[dict]) -> list[dict]:
    """One row per ablation name (grid order): mean and sample std of each metric over seeds."""
    rows = []
    for name in dict.fromkeys(r["name"] for r in records):
        group = [r for r in records if r["name"] == name]
        row = {"name": name, "seeds": len(group), "seed_list": [r["seed"] for r in group], "epochs": group[0]["epochs"]}
        for k in METRICS:
            vals = np.array([r[k] for r in group])
            row[k] = float(vals.mean())
            row[f"{k}_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else None
        rows.append(row)
    return rows


def _cell(mean: float, std: float | None) -> str:
    return f"{mean:.2f}" if std is None else f"{mean:.2f} ± {std:.2f}"


def paired_delta(records: list[dict], name: str, reference: str) -> str:
    """Mean top-1 difference from the reference row over the seeds both rows have: a seed fixes the
    validation split and the data order for both, and a one-seed row is not set against a 3-seed mean."""
    mine = {r["seed"]: r["top1"] for r in records if r["name"] == name}
    theirs = {r["seed"]: r["top1"] for r in records if r["name"] == reference}
    common = sorted(mine.keys() & theirs.keys())
    if name == reference or not common:
        return "-"
    return f"{float(np.mean([mine[s] - theirs[s] for s in common])):+.2f}"


def to_markdown(records: list[dict], dataset: str = "", seeds: list[int] | None = None) -> str:
    rows = aggregate(records)
    dataset = dataset or next((r["dataset"] for r in records if r.get("dataset")), "")
    seeds = seeds or sorted({r["seed"] for r in records})
    head = f"# Ablation{f' on {dataset}' if dataset else ''}"
    lines = [head, "",
             f"Seeds: {', '.join(map(str, seeds))}; epochs: {rows[0]['epochs'] if rows else '-'}. "
             + ("Cells: mean ± std over the row's seeds (sample std). " if len(seeds) > 1 else "Cells: one seed. ")
             + "Δ: mean difference in top-1 over the seeds both rows have.", "",
             "| variant | description | seeds | top-1 | top-5 | mean class acc. | Δ top-1 vs GAP | Δ top-1 vs PCLE |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['name']} | {DESCRIPTIONS.get(r['name'], '')} | {','.join(map(str, r['seed_list']))} | "
                     f"{_cell(r['top1'], r['top1_std'])} | {_cell(r['top5'], r['top5_std'])} | "
                     f"{_cell(r['mean_class_accuracy'], r['mean_class_accuracy_std'])} | "
                     f"{paired_delta(records, r['name'], 'gap')} | {paired_delta(records, r['name'], 'pcle')} |")
    return "\n".join(lines) + "\n"


def to_csv(records: list[dict]) -> str:
    cols = ["name", "method", "seed", "top1", "top5", "mean_class_accuracy", "epochs", "train_samples_per_s", "run",
            "config_hash"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in records:
        writer.writerow(r)
    return buf.getvalue()


def write_tables(out: str | Path, records: list[dict], dataset: str = "", seeds: list[int] | None = None) -> None:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "ablation.md", to_markdown(records, dataset, seeds))
    atomic_write_text(out / "ablation.csv", to_csv(records))
