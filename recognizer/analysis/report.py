"""The evaluation report of a run: accuracies, per-class accuracy, confused pairs, confusion matrix.

`write_report(out_dir, scores, labels, class_names)` writes

    report.json      top1, top5, mean_class_accuracy, per_class (name, samples, top1), confused_pairs
    report.md        the same as Markdown tables
    confusion.png    row-normalised confusion matrix with class names on both axes

The figure grows with the class count (about 0.16 inch per class plus room for the longest name)
and the tick font shrinks (9 pt for 15 classes or fewer, down to 4 pt), so 120 NTU classes stay
readable (about 2200 x 2200 px at 100 dpi).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from recognizer.checkpoint import atomic_write_text


def confusion_matrix(pred: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """(C, C) counts: rows = true class, columns = predicted class."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (labels.astype(np.int64), pred.astype(np.int64)), 1)
    return cm


def confused_pairs(cm: np.ndarray, class_names: list[str], k: int = 10) -> list[dict]:
    """The k largest off-diagonal cells: true class, predicted class, count, share of the true class."""
    off = cm.copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(-off, axis=None, kind="stable")[:k]
    rows = cm.sum(1)
    out = []
    for flat in order:
        t, p = np.unravel_index(flat, cm.shape)
        if off[t, p] == 0:
            break
        out.append({"true": class_names[t], "predicted": class_names[p], "true_id": int(t), "predicted_id": int(p),
                    "count": int(off[t, p]), "percent_of_true": float(off[t, p] / max(rows[t], 1) * 100)})
    return out


def summarize(scores: np.ndarray, labels: np.ndarray, class_names: list[str], top_pairs: int = 10) -> dict:
    from recognizer.train import topk

    c = len(class_names)
    pred = scores.argmax(1)
    cm = confusion_matrix(pred, labels, c)
    per_class = []
    for i, name in enumerate(class_names):
        n = int(cm[i].sum())
        per_class.append({"id": i, "name": name, "samples": n, "top1": float(cm[i, i] / n * 100) if n else None})
    accs = [r["top1"] for r in per_class if r["top1"] is not None]
    return {
        "samples": int(len(labels)),
        "classes": c,
        "top1": topk(scores, labels, 1),
        "top5": topk(scores, labels, 5),
        "mean_class_accuracy": float(np.mean(accs)) if accs else 0.0,
        "per_class": per_class,
        "confused_pairs": confused_pairs(cm, class_names, top_pairs),
        "confusion_matrix": cm.tolist(),
    }


def to_markdown(summary: dict, title: str = "Evaluation report") -> str:
    s = summary
    lines = [f"# {title}", "",
             f"{s['samples']} test clips, {s['classes']} classes.", "",
             "| metric | value |", "|---|---:|",
             f"| top-1 | {s['top1']:.2f} |", f"| top-5 | {s['top5']:.2f} |",
             f"| mean class accuracy | {s['mean_class_accuracy']:.2f} |", "",
             "## Most confused class pairs", "",
             "| true class | predicted as | clips | % of true class |", "|---|---|---:|---:|"]
    for p in s["confused_pairs"]:
        lines.append(f"| {p['true']} | {p['predicted']} | {p['count']} | {p['percent_of_true']:.1f} |")
    if not s["confused_pairs"]:
        lines.append("| (none) | | | |")
    lines += ["", "## Per-class accuracy", "", "| id | class | clips | top-1 |", "|---:|---|---:|---:|"]
    for r in s["per_class"]:
        acc = "-" if r["top1"] is None else f"{r['top1']:.1f}"
        lines.append(f"| {r['id']} | {r['name']} | {r['samples']} | {acc} |")
    lines += ["", "![confusion matrix](confusion.png)", ""]
    return "\n".join(lines)


def tick_labels(class_names: list[str]) -> list[str]:
    """Class names on the axes; with more than 20 classes prefixed by their id."""
    return [f"{i} {n}" if len(class_names) > 20 else n for i, n in enumerate(class_names)]


def figure_size(class_names: list[str]) -> tuple[float, float]:
    """(side in inches, tick font in pt) of the square confusion-matrix figure for these classes.

    About 0.16 inch per class for the matrix (at least 4), plus room for the longest tick label.
    """
    c = len(class_names)
    font = float(np.clip(140.0 / max(c, 1), 4.0, 9.0))
    longest = max((len(n) for n in tick_labels(class_names)), default=0)
    side = max(4.0, 0.16 * c) + 2.0 + longest * font * 0.6 / 72
    return round(side, 2), font


def plot_confusion(cm: np.ndarray, class_names: list[str], path: str | Path, title: str = "", dpi: int = 100) -> Path:
    """Row-normalised confusion matrix PNG; counts written in the cells when there are few classes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = len(class_names)
    side, font = figure_size(class_names)
    rows = cm.sum(1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=float), where=rows > 0)
    fig, ax = plt.subplots(figsize=(side, side), dpi=dpi)
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks(range(c))
    ax.set_yticks(range(c))
    labels = tick_labels(class_names)
    ax.set_xticklabels(labels, rotation=90, fontsize=font)
    ax.set_yticklabels(labels, fontsize=font)
    ax.set_xlabel("predicted class", fontsize=font + 2)
    ax.set_ylabel("true class", fontsize=font + 2)
    if c <= 30:
        for t in range(c):
            for p in range(c):
                if cm[t, p]:
                    ax.text(p, t, str(cm[t, p]), ha="center", va="center", fontsize=font - 1,
                            color="white" if norm[t, p] > 0.5 else "black")
    if title:
        ax.set_title(title, fontsize=font + 3)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02, label="share of the true class")
    return save_figure(fig, path, dpi)


def save_figure(fig, path: str | Path, dpi: int = 100) -> Path:
    """Lay out, write (creating the folder) and close a matplotlib figure; returns the path."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def write_report(out_dir: str | Path, scores: np.ndarray, labels: np.ndarray, class_names: list[str],
                 title: str = "Evaluation report", top_pairs: int = 10) -> dict:
    """report.json, report.md and confusion.png in `out_dir`; returns the summary."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(scores, labels, class_names, top_pairs)
    atomic_write_text(out / "report.json", json.dumps(summary, indent=1) + "\n")
    atomic_write_text(out / "report.md", to_markdown(summary, title))
    top1 = summary["top1"]
    plot_confusion(np.asarray(summary["confusion_matrix"]), class_names, out / "confusion.png",
                   title=f"{title} (top-1 {top1:.1f} %)")
    return summary


def report_run(run: str | Path, data_root: str | None = None, device: str = "cpu") -> tuple[dict, dict]:
    """`evaluate_run` (scores_test.npy, eval.json) and then the report in RUN/report/."""
    from recognizer.analysis.evaluate import evaluate_run

    run = Path(run)
    result = evaluate_run(run, data_root, device)
    names = list(result["per_class_top1"])
    scores, labels = np.load(run / "scores_test.npy"), np.load(run / "labels_test.npy")
    done = result.get("unfinished")
    title = f"{run.name}: test split" + (f" (unfinished: epoch {done['epochs_done']} of {done['epochs']})"
                                         if done else "")
    summary = write_report(run / "report", scores, labels, names, title=title)
    return result, summary
