"""`pcle zeroshot RUN_DIR...`: ZSL, GZSL and base-to-new numbers of runs trained with `data.unseen`.

For each run: the full test split (seen and unseen classes) goes through the trained skeleton encoder
once; its global (and part) embeddings are scored against text embeddings of every class, computed
with the run's own text side in each requested text mode (`recognizer.zeroshot.text`). Several runs
(e.g. one per random split) are summarised as mean ± sample std per (method, text mode).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from recognizer.checkpoint import atomic_write_text
from recognizer.datasets.splits import keep_classes, resolve_unseen
from recognizer.zeroshot.diagnostics import centroid_diagnostics, mean_pairwise_cosine
from recognizer.zeroshot.metrics import all_metrics
from recognizer.zeroshot.text import DEFAULT_TEMPLATE, class_text_embeddings, zeroshot_scores

METRICS = ("zsl_top1", "zsl_top5", "gzsl_seen", "gzsl_unseen", "gzsl_h", "gzsl_ausuc", "base", "new", "base_new_h")
HEADERS = ("ZSL top-1", "ZSL top-5", "GZSL seen", "GZSL unseen", "GZSL H", "GZSL AUSUC", "base", "new",
           "base-new H")  # one per METRICS entry


@dataclass
class Embeddings:
    """The run's skeleton side on the full test split."""

    skel_global: torch.Tensor  # (N, D)
    skel_parts: torch.Tensor  # (N, 4, D)
    model_scores: torch.Tensor  # (N, S) the model's own closed-set scores over the seen classes
    labels: np.ndarray  # (N,) labels over all classes


def default_modes(method: str) -> list[str]:
    return ["learned"] if method == "pcle" else ["mean"]


def pick_unseen(unseen: list[int], names: list[str], classes: list[str] | None) -> list[int]:
    """The unseen ids to evaluate: all of the run's, or the subset named/numbered in `classes`."""
    if not classes:
        return unseen
    lower = {n.lower(): i for i, n in enumerate(names)}
    out = []
    for item in (s.strip() for part in classes for s in part.split(",") if s.strip()):
        i = int(item) if item.isdigit() else lower.get(item.lower(), -1)
        if i not in unseen:
            raise ValueError(f"--classes: '{item}' is not an unseen class of this run "
                             f"(unseen: {', '.join(names[j] for j in unseen)})")
        out.append(i)
    return sorted(set(out))


@torch.no_grad()
def embed_test(model, bundle, cfg, device: str) -> Embeddings:
    from recognizer.train import Env, make_loader_for

    loader = make_loader_for(bundle.test, bundle.layout, cfg, train=False, env=Env(torch.device(device), None))
    g, p, s, y = [], [], [], []
    for x, labels, _ in loader:
        out = model(x.to(device))
        g.append(out["skel_global"].float().cpu())
        p.append(out["skel_parts"].float().cpu())
        s.append(model.scores(out).float().cpu())
        y.append(labels)
    return Embeddings(torch.cat(g), torch.cat(p), torch.cat(s), torch.cat(y).numpy())


def find_runs(paths: list[str | Path]) -> list[Path]:
    """Finished run folders (metrics.json; folders are searched) and checkpoint files, in the order given."""
    from recognizer.analysis.runs import find_runs as finished_runs

    runs: list[Path] = []
    for p in map(Path, paths):
        runs += [p] if p.suffix == ".pt" and p.is_file() else finished_runs([p])
    return runs


def evaluate_or_reuse(run: Path, modes: list[str] | None = None, gamma: float = 0.0, parts_weight: float = 0.0,
                      template: str = DEFAULT_TEMPLATE, log=print, **options) -> list[dict]:
    """`evaluate_zeroshot` where the run has its checkpoint; else the evaluation RUN/zeroshot.json stored with
    the same options (committed results keep only small files), so their tables can be rebuilt anywhere."""
    if run.suffix == ".pt" or (run / "checkpoint.pt").is_file():
        return evaluate_zeroshot(run, modes, gamma=gamma, parts_weight=parts_weight, template=template, **options)
    asked = [flag for key, flag in (("corpus", "--prompts"), ("classes", "--classes")) if options.get(key)]
    if asked:
        raise ValueError(f"{run}: no checkpoint.pt, so {' and '.join(asked)} cannot be applied (only the stored "
                         "evaluation can be read); retrain the run to evaluate it with them")
    if not modes:
        from recognizer.config import from_yaml_text

        modes = default_modes(from_yaml_text((run / "config.yaml").read_text()).prompt.method)
    log(f"{run}: no checkpoint.pt; its stored evaluation is reused")
    return stored_evaluation(run, modes, gamma, parts_weight, template)


def evaluate_zeroshot(run: str | Path, modes: list[str] | None = None, corpus: str | None = None,
                      classes: list[str] | None = None, gamma: float = 0.0, parts_weight: float = 0.0,
                      template: str = DEFAULT_TEMPLATE, data_root: str | None = None,
                      device: str = "cpu") -> list[dict]:
    """One record per text mode: the run's ZSL/GZSL/base-to-new numbers; also written to RUN/zeroshot.json."""
    from recognizer.analysis.evaluate import load_trained
    from recognizer.datasets import build_dataset
    from recognizer.method.text_encoder import build_text_encoder

    run = Path(run)
    trained = load_trained(run, device)
    cfg, ckpt = trained.cfg, trained.meta
    if not cfg.data.unseen:
        raise ValueError(f"{run}: trained on every class (data.unseen is empty): nothing is unseen; train with "
                         "--set data.unseen=... (docs/zeroshot.md)")
    bundle = build_dataset(cfg.data.dataset, data_root or cfg.data.root, **cfg.data.options)
    names = bundle.class_names
    unseen_all = resolve_unseen(cfg.data.unseen, names)
    seen = [i for i in range(len(names)) if i not in unseen_all]
    if [names[i] for i in seen] != trained.class_names:
        raise ValueError(f"{run}: data.unseen={cfg.data.unseen} no longer gives the classes the run was trained on")
    unseen = pick_unseen(unseen_all, names, classes)
    keep = sorted(seen + unseen)
    bundle.test = keep_classes(bundle.test, keep)  # drop unseen classes not asked for; labels -> positions in keep
    eval_names = [names[i] for i in keep]
    unseen_cols = [keep.index(i) for i in unseen]
    emb = embed_test(trained.model, bundle, cfg, device)
    skeleton = centroid_diagnostics(emb.skel_global.numpy(), emb.labels, unseen_cols)  # the same for every mode
    encoder = build_text_encoder(cfg.text).to(device)
    corpus = corpus or cfg.prompt.corpus or bundle.corpus
    records = []
    for mode in modes or default_modes(cfg.prompt.method):
        text = class_text_embeddings(cfg, ckpt, eval_names, mode, corpus, encoder, parts=parts_weight > 0,
                                     template=template)
        scores = zeroshot_scores(emb.skel_global, emb.skel_parts, text, parts_weight).numpy()
        seen_rows = ~np.isin(emb.labels, unseen_cols)
        seen_pos = np.searchsorted(np.setdiff1d(np.arange(len(keep)), unseen_cols), emb.labels[seen_rows])
        model_top1 = float((emb.model_scores[seen_rows].argmax(1).numpy() == seen_pos).mean() * 100)
        records.append({
            "run": str(run), "method": cfg.method, "dataset": bundle.name, "split": cfg.data.unseen,
            "text": mode, "parts_weight": parts_weight, "corpus": str(corpus) if mode != "learned" else None,
            "template": template if mode == "name" else None,
            "unseen_classes": [names[i] for i in unseen], **all_metrics(scores, emb.labels, unseen_cols, gamma),
            "base_model_top1": model_top1,  # the model's own inference (classifier + fusion) on the seen classes
            "unseen_text_cos": mean_pairwise_cosine(text.classes[unseen_cols].numpy()) if len(unseen) > 1 else None,
            **skeleton,
            "samples_seen": int(seen_rows.sum()), "samples_unseen": int((~seen_rows).sum()),
        })
    if run.is_dir():
        keep_earlier(run / "zeroshot.json", records)
    return records


def _options_key(record: dict) -> tuple:
    """The options an evaluation was asked with that a later call can name: text mode, part weight, gamma,
    template (`name` only; read with .get: files written before the field existed)."""
    return record["text"], record["parts_weight"], record["gamma"], record.get("template")


def _evaluation_key(record: dict) -> tuple:
    return (*_options_key(record), record["corpus"], tuple(record["unseen_classes"]))


def read_records(path: Path) -> list[dict]:
    """The evaluations a RUN/zeroshot.json holds ([] when there is none yet)."""
    if not path.is_file():
        return []
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err}); move it away to start it afresh") from err


def keep_earlier(path: Path, records: list[dict]) -> None:
    """Write `records` to RUN/zeroshot.json, keeping earlier evaluations made with other options.

    A run is often scored several ways (text modes, part weights, gamma); each call replaces only the
    records it recomputes, so scoring with `--parts 1` does not erase the grid's numbers.
    """
    earlier = read_records(path)
    fresh = {_evaluation_key(r) for r in records}
    merged = [r for r in earlier if _evaluation_key(r) not in fresh] + records
    atomic_write_text(path, json.dumps(merged, indent=1) + "\n")


def stored_evaluation(run: Path, modes: list[str], gamma: float = 0.0, parts_weight: float = 0.0,
                      template: str = DEFAULT_TEMPLATE) -> list[dict]:
    """The records RUN/zeroshot.json holds for these options, one per mode: how a finished run whose
    checkpoint is gone (committed results keep only small files) still joins a grid's tables.

    Records are matched on text mode, part weight, gamma and (mode `name`) template; a mode stored with
    several corpora is ambiguous and refused, like a mode never stored with these options.
    """
    path = run / "zeroshot.json"
    stored = read_records(path)
    out, missing = [], []
    for mode in modes:
        want = (mode, parts_weight, gamma, template if mode == "name" else None)
        found = [r for r in stored if _options_key(r) == want]
        if len(found) != 1:
            missing.append(mode if not found else f"{mode} (stored with {len(found)} corpora)")
        else:
            out += found
    if missing:
        raise ValueError(f"{run}: no checkpoint.pt to evaluate and no single stored evaluation in {path.name} for "
                         f"text {', '.join(missing)} (parts {parts_weight:g}, gamma {gamma:g}); retrain the run "
                         "(move the folder away and rerun) to evaluate it with these options")
    return out


def aggregate(records: list[dict]) -> list[dict]:
    """Mean and sample std of every metric per (method, text mode), in first-seen order."""
    rows = []
    for key in dict.fromkeys((r["method"], r["text"]) for r in records):
        group = [r for r in records if (r["method"], r["text"]) == key]
        row = {"method": key[0], "text": key[1], "runs": len(group)}
        for m in METRICS:
            vals = np.array([r[m] for r in group], dtype=np.float64)
            row[m] = float(vals.mean())
            row[f"{m}_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else None
        rows.append(row)
    return rows


TEXT_LABELS = {"mean": "corpus synonyms, mean", "best": "corpus synonyms, best-of", "name": "class name only",
               "learned": "learned context + name"}


def to_markdown(records: list[dict], title: str = "Zero-shot") -> str:
    splits = list(dict.fromkeys(r["split"] for r in records))
    gamma = records[0]["gamma"] if records else 0.0
    lines = [f"# {title}", "", f"Splits ({len(splits)}): {', '.join(splits)}. GZSL calibration gamma = {gamma:g}. "
             "Cells: mean ± sample std over splits (per-sample top-1 %).", "", *summary_table(records)]
    return "\n".join(lines + ["", *per_run_markdown(records)]) + "\n"


def summary_table(records: list[dict]) -> list[str]:
    """The summary's Markdown lines, one row per (method, text mode); docs/results.md reuses them (pcle tables)."""
    def cell(row: dict, m: str) -> str:
        std = row[f"{m}_std"]
        return f"{row[m]:.1f}" if std is None else f"{row[m]:.1f} ± {std:.1f}"

    lines = ["| method | unseen-class text | runs | " + " | ".join(HEADERS) + " |",
             "|---|---|---:|" + "---:|" * len(HEADERS)]
    for row in aggregate(records):
        lines.append(f"| {row['method']} | {TEXT_LABELS.get(row['text'], row['text'])} | {row['runs']} | "
                     + " | ".join(cell(row, m) for m in METRICS) + " |")
    return lines


PER_RUN = (("zsl_top1", "ZSL top-1", ".1f"), ("gzsl_ausuc", "GZSL AUSUC", ".1f"),
           ("base_model_top1", "closed-set top-1", ".1f"), ("unseen_text_cos", "text cos", ".2f"),
           ("unseen_skeleton_cos", "skeleton cos", ".2f"), ("unseen_oracle_top1", "oracle top-1", ".1f"))


def per_run_markdown(records: list[dict]) -> list[str]:
    """One row per evaluation, with the text/skeleton diagnostics (`recognizer.zeroshot.diagnostics`)."""
    def fmt(value, spec: str) -> str:
        return "–" if value is None else format(value, spec)

    lines = ["## Per run", "", "text cos / skeleton cos: mean cosine between the unseen classes' text embeddings / "
             "skeleton centroids; oracle top-1: leave-one-out nearest skeleton centroid among the unseen classes "
             "(what a perfect text side would reach with this skeleton encoder). closed-set top-1: the run's own "
             "inference on its seen classes.", "",
             "| method | split | unseen classes | unseen-class text | " + " | ".join(h for _, h, _ in PER_RUN) + " |",
             "|---|---|---|---|" + "---:|" * len(PER_RUN)]
    for r in records:
        text = TEXT_LABELS.get(r["text"], r["text"])
        text += f" + parts (w {r['parts_weight']:g})" if r["parts_weight"] else ""
        lines.append(f"| {r['method']} | {r['split']} | {', '.join(r['unseen_classes'])} | {text} | "
                     + " | ".join(fmt(r.get(k), spec) for k, _, spec in PER_RUN) + " |")
    return lines


def to_csv(records: list[dict]) -> str:
    cols = ["method", "text", "split", *METRICS, "gamma", "parts_weight", "base_model_top1", "unseen_text_cos",
            "unseen_skeleton_cos", "unseen_oracle_top1", "samples_seen", "samples_unseen", "run"]
    lines = [",".join(cols)]
    for r in records:
        values = [r.get(c) for c in cols]
        lines.append(",".join("" if v is None else f"{v:.4f}" if isinstance(v, float) else f'"{v}"' if "," in str(v)
                              else str(v) for v in values))
    return "\n".join(lines) + "\n"


def write_tables(out: str | Path, records: list[dict], title: str = "Zero-shot") -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "zeroshot.md", to_markdown(records, title))
    atomic_write_text(out / "zeroshot.csv", to_csv(records))
    atomic_write_text(out / "zeroshot.json", json.dumps(records, indent=1) + "\n")
    return out / "zeroshot.md"
