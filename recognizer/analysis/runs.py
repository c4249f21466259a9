"""`pcle runs DIR...`: many run folders side by side, the way experiments are compared.

Each DIR is a run folder (it holds `metrics.json`) or a folder searched recursively for them (an
ablation grid, a `runs/` directory). Runs whose resolved configs differ only in `run.seed` (and in
bookkeeping keys that do not change results, `IGNORED`) form one row: its top-1/top-5 are the mean
± sample std over the seeds. The last column lists how a row's config differs from the first row's.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

# keys that never change a result: left out of grouping and of the differences column
IGNORED = {"run.seed", "run.threads", "run.device", "run.eval_every", "data.num_workers", "data.persistent_workers",
           "data.prefetch_factor", "prompt.cache_dir"}
NUMERIC = {"epochs": "epochs", "top1": "top1", "top5": "top5", "samples": "samples_per_s", "seeds": "runs"}
TEXT = {"run": "run", "method": "method", "dataset": "dataset", "stream": "stream"}
SORT_KEYS = tuple(TEXT) + tuple(NUMERIC)


@dataclass
class RunInfo:
    path: Path
    config: dict  # flattened: {"optim.lr": 0.1, ...}
    metrics: dict


def flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v and key != "data.options":
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def find_runs(paths: list[str | Path]) -> list[Path]:
    """Run folders in the order given; a folder without metrics.json is searched recursively."""
    found: list[Path] = []
    for p in map(Path, paths):
        if (p / "metrics.json").is_file():
            found.append(p)
        elif p.is_dir():
            inner = sorted(m.parent for m in p.rglob("metrics.json"))
            if not inner:
                raise FileNotFoundError(f"{p}: no finished run inside (no metrics.json)")
            found += inner
        else:
            raise FileNotFoundError(f"{p}: not a run folder")
    return list(dict.fromkeys(found))


def read_run_config(path: Path) -> dict:
    """A run folder's config.yaml, flattened ({"optim.lr": 0.1, ...}); {} without one, so that an
    unfinished run (log.jsonl, no metrics.json) can be read too (the curves do)."""
    cfg_path = Path(path) / "config.yaml"
    try:
        config = yaml.safe_load(cfg_path.read_text(encoding="utf-8")) or {} if cfg_path.is_file() else {}
    except (OSError, yaml.YAMLError) as e:
        raise ValueError(f"{cfg_path}: not valid YAML ({e})") from None
    return flatten(config) if isinstance(config, dict) else {}


def read_run(path: Path) -> RunInfo:
    try:
        metrics = json.loads((path / "metrics.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path / 'metrics.json'}: not readable JSON ({e})") from None
    config = read_run_config(path)
    if not isinstance(metrics, dict) or "top1" not in metrics:
        raise ValueError(f"{path / 'metrics.json'}: has no 'top1' (not a finished run)")
    if "top1_logits" not in metrics and (head := last_epoch_head_top1(path, metrics.get("epochs"))) is not None:
        metrics = {**metrics, "top1_logits": head}
    inference = metrics.get("inference")
    if isinstance(inference, dict) and "val_top1" not in inference and (val := saved_val_top1(path)) is not None:
        head = {"val_top1_logits": val} if inference.get("rule") == "logits" else {}
        metrics = {**metrics, "inference": {**inference, "val_top1": val, **head}}
    return RunInfo(path, config, metrics)


def saved_val_top1(path: Path) -> float | None:
    """Validation top-1 of the chosen rule for runs whose metrics.json predates recording it for a fixed
    logits rule (GAP): from the validation scores training saved with that rule (scores_val.npy)."""
    from recognizer.analysis.ensemble import EnsembleError, load_run, topk

    try:
        val = load_run(path, "val")
    except EnsembleError:  # no validation split, or unreadable: unknown, shown as such
        return None
    return topk(val.scores, val.labels, 1) if len(val.labels) else None


def last_epoch_head_top1(path: Path, epochs: int | None) -> float | None:
    """Test top-1 of the classification head alone for runs whose metrics.json predates `top1_logits`:
    the last epoch's line in log.jsonl, which training scores with the head before the rule is chosen."""
    from recognizer.analysis.curves import read_log

    try:
        log = read_log(path)
    except (OSError, ValueError):  # no log.jsonl, or not JSON lines: unknown, shown as such
        return None
    last = log[-1] if log else {}
    return float(last["test_top1"]) if last.get("epoch") == epochs and "test_top1" in last else None


def _no_interaction(c: dict) -> bool:
    """No bridger and no cross-modality attention (GAP, bare CTR-GCN heads): the interaction group is empty."""
    return c.get("model.bridger") is False and c.get("model.interaction") is False


# keys a run cannot use, with the test that says so: (key prefix, unused when this returns True)
UNUSED_WHEN = (
    ("optim.interaction_lr_ratio",
     lambda c: _no_interaction(c) or c.get("optim.interaction_optimizer", "sgd") == "adamw"),
    # no learnable context (PCKE, GAP): the context's rate, length, init and class subset do nothing
    ("prompt.ctx_lr", lambda c: c.get("prompt.method") == "pcke"),
    ("prompt.n_ctx", lambda c: c.get("prompt.method") == "pcke"),
    ("prompt.ctx_init", lambda c: c.get("prompt.method") == "pcke"),
    ("prompt.class_specific", lambda c: c.get("prompt.method") == "pcke"),
    ("prompt.train_classes", lambda c: c.get("prompt.method") == "pcke"),
    ("prompt.init_length", lambda c: c.get("prompt.method") == "pcke"),
    ("prompt.pooling", lambda c: c.get("prompt.method") == "pcke"),
    ("prompt.hybrid", lambda c: c.get("prompt.method") == "pcke"),
    ("prompt.hybrid_class_text", lambda c: c.get("prompt.method") == "pcke" or not c.get("prompt.hybrid")),
    ("loss.prompt_pull", lambda c: c.get("prompt.method") == "pcke"),
    # the interaction's optimizer and its gradient into the backbone: nothing to act on without one
    ("optim.interaction_optimizer", _no_interaction),
    ("optim.interaction_lr", lambda c: _no_interaction(c) or c.get("optim.interaction_optimizer", "sgd") == "sgd"),
    ("optim.interaction_weight_decay",
     lambda c: _no_interaction(c) or c.get("optim.interaction_optimizer", "sgd") == "sgd"),
    ("model.bridger_residual", lambda c: c.get("model.bridger") is False),
    ("model.interaction_grad", _no_interaction),
    ("model.interaction_grad_epochs", _no_interaction),
    # a fixed fusion weight matters only to the fusion rule (GAP scores with the head alone)
    ("model.fuse_weight", lambda c: c.get("model.inference") not in ("fusion", None)),
    # keys added after runs were committed, at the value that was the behaviour before them: the runs made
    # before they existed keep their hash (the fused forward has the same parameters, tests/test_speed.py)
    ("model.fused_subsets", lambda c: c.get("model.fused_subsets") is False),
    ("model.channels_last", lambda c: c.get("model.channels_last") is False),
    ("text.attn_implementation", lambda c: c.get("text.attn_implementation") == "sdpa"),
    # a step budget (optim.steps > 0) sets optim.epochs from the training split when the run starts: the
    # budget, not the epochs that an unstarted config still holds, names the experiment. Without one (0, the
    # only behaviour before the key existed) the epochs do, and runs made before it keep their hash
    ("optim.steps", lambda c: not c.get("optim.steps")),
    ("optim.epochs", lambda c: bool(c.get("optim.steps"))),
)


def comparable(config: dict) -> dict:
    """A flattened config without the keys that never change a result: bookkeeping (IGNORED) and keys
    this run cannot use (UNUSED_WHEN), so that e.g. adding optim.interaction_lr_ratio to a config file
    leaves the GAP runs made without it valid (tests/test_train.py checks they train bit-for-bit alike)."""
    unused = {key for key, test in UNUSED_WHEN if test(config)}
    return {k: v for k, v in config.items() if k not in IGNORED and k not in unused}


def config_hash(cfg) -> str:
    """SHA-256 (first 16 hex digits) of a resolved Config without bookkeeping keys: same hash, same experiment."""
    from recognizer.config import to_dict

    text = json.dumps(comparable(flatten(to_dict(cfg))), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def config_differences(old, new) -> str:
    """'key: old -> new, ...' between two resolved Configs (bookkeeping keys left out)."""
    from recognizer.config import to_dict

    a, b = comparable(flatten(to_dict(old))), comparable(flatten(to_dict(new)))
    return ", ".join(f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k))


def _key(run: RunInfo) -> str:
    return json.dumps(comparable(run.config), sort_keys=True, default=str)


def group_runs(runs: list[RunInfo]) -> list[list[RunInfo]]:
    """Runs that differ only in seed (and bookkeeping) form one group, in order of first appearance."""
    groups: dict[str, list[RunInfo]] = {}
    for r in runs:
        groups.setdefault(_key(r), []).append(r)
    return list(groups.values())


def differences(config: dict, reference: dict) -> str:
    keys = sorted((set(config) | set(reference)) - IGNORED)
    return ", ".join(f"{k}={config.get(k)!r}".replace("'", "") for k in keys if config.get(k) != reference.get(k))


def _mean_std(values: list[float]) -> tuple[float, float | None]:
    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else None


def _label(paths: list[Path]) -> str:
    if len(paths) == 1:
        return str(paths[0])
    try:
        return os.path.commonpath([str(p) for p in paths])
    except ValueError:  # different drives
        return str(paths[0])


def summarize(groups: list[list[RunInfo]]) -> list[dict]:
    """One row per group, with the differences from the first group's config."""
    reference = groups[0][0].config if groups else {}
    rows = []
    for group in groups:
        first = group[0]
        m = first.metrics
        top1, top1_std = _mean_std([r.metrics["top1"] for r in group])
        top5, top5_std = _mean_std([r.metrics.get("top5", float("nan")) for r in group])
        head, head_std = _mean_std([r.metrics.get("top1_logits", float("nan")) for r in group])
        seeds = sorted({r.config.get("run.seed") for r in group}, key=str)
        val, val_std = _mean_std([r.metrics.get("inference", {}).get("val_top1", float("nan")) for r in group])
        diag = [interaction_diagnostics(r.path, len(r.metrics.get("per_class_top1") or {})) for r in group]
        rows.append({
            "run": _label([r.path for r in group]),
            "method": m.get("method", first.config.get("method", "")),
            "dataset": m.get("dataset", first.config.get("data.dataset", "")),
            "stream": m.get("stream", first.config.get("data.clip.stream", "")),
            "seeds": ",".join(str(s) for s in seeds),
            "runs": len(group),
            "epochs": int(m.get("epochs", first.config.get("optim.epochs", 0))),
            "top1": top1, "top1_std": top1_std, "top5": top5, "top5_std": top5_std,
            "top1_logits": head, "top1_logits_std": head_std,
            "samples_per_s": float(np.mean([r.metrics.get("train_samples_per_s", 0.0) for r in group])),
            "val_top1": val, "val_top1_std": val_std,
            # the epoch each seed's interaction left chance ("–": never, or no interaction), final text cosine
            "left_chance": ",".join("–" if d["left_chance"] is None else str(d["left_chance"]) for d in diag),
            "text_cos": float(np.mean([d["text_cos_mean"] for d in diag])),
            "differences": "" if group is groups[0] else differences(first.config, reference),
        })
    return rows


def sort_rows(rows: list[dict], key: str | None) -> list[dict]:
    """Numbers sort best (largest) first, text alphabetically; None keeps the given order."""
    if key is None:
        return rows
    if key not in SORT_KEYS:
        raise ValueError(f"--sort {key!r}: choose from {', '.join(SORT_KEYS)}")
    if key in NUMERIC:
        return sorted(rows, key=lambda r: -r[NUMERIC[key]])
    return sorted(rows, key=lambda r: str(r[TEXT[key]]))


def cell(mean: float, std: float | None) -> str:
    return f"{mean:.2f}" if std is None else f"{mean:.2f} ± {std:.2f}"


COLUMNS = ("run", "method", "dataset", "stream", "seeds", "epochs", "top-1", "top-5", "top-1 head only",
           "samples/s", "val top-1", "leaves chance", "text cos", "differences")
NUMERIC_COLUMNS = ("epochs", "top-1", "top-5", "top-1 head only", "samples/s", "val top-1", "leaves chance",
                   "text cos")


def display_row(r: dict) -> list[str]:
    head = "–" if np.isnan(r["top1_logits"]) else cell(r["top1_logits"], r["top1_logits_std"])
    val = "–" if np.isnan(r["val_top1"]) else cell(r["val_top1"], r["val_top1_std"])
    cos = "–" if np.isnan(r["text_cos"]) else f"{r['text_cos']:.3f}"
    return [r["run"], r["method"], r["dataset"], r["stream"], r["seeds"], str(r["epochs"]),
            cell(r["top1"], r["top1_std"]), cell(r["top5"], r["top5_std"]), head, f"{r['samples_per_s']:.1f}",
            val, r["left_chance"], cos, r["differences"]]


def to_markdown(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * 4 + "---:|" * 9 + "---|"]
    for r in rows:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in display_row(r)) + " |")
    return "\n".join(lines) + "\n"


def to_csv(rows: list[dict]) -> str:
    cols = ["run", "method", "dataset", "stream", "seeds", "runs", "epochs", "top1", "top1_std", "top5", "top5_std",
            "top1_logits", "top1_logits_std", "samples_per_s", "val_top1", "val_top1_std", "left_chance", "text_cos",
            "differences"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if r[k] is None else r[k]) for k in cols})
    return buf.getvalue()


def interaction_diagnostics(path: Path, num_classes: int = 0) -> dict:
    """From log.jsonl: the first epoch whose contrastive_after fell below CHANCE_MARGIN x ln C (None: never, or
    no interaction), and the last epoch's mean off-diagonal class text cosine. Logs from before the diagnostics
    lack ln C: `num_classes` (metrics.json's per-class entries) stands in for it."""
    import math

    from recognizer.analysis.curves import read_log
    from recognizer.training.diagnostics import at_chance

    try:
        log = read_log(path)
    except ValueError:
        log = []
    if num_classes > 1:
        log = [{"contrastive_after_chance": math.log(num_classes), **h} if "contrastive_after" in h else h
               for h in log]
    left = next((h["epoch"] for h in log if "contrastive_after_chance" in h and not at_chance(h)), None)
    cos = next((h["text_cos_mean"] for h in reversed(log) if "text_cos_mean" in h), float("nan"))
    return {"left_chance": left, "text_cos_mean": cos}


def compare_runs(paths: list[str | Path], sort: str | None = None) -> list[dict]:
    """Rows of the comparison table for these run folders (or folders of runs)."""
    if sort is not None and sort not in SORT_KEYS:
        raise ValueError(f"--sort {sort!r}: choose from {', '.join(SORT_KEYS)}")
    runs = [read_run(p) for p in find_runs(paths)]
    return sort_rows(summarize(group_runs(runs)), sort)
