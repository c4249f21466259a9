"""The paper's Fig. 2: t-SNE of skeleton embeddings (dots) and class text embeddings (diamonds).

For each run: the test clips of the chosen classes go through the trained model (checkpoint only,
no text encoder); the skeleton embedding is the model's `skel_global` (B, D), the one the
contrastive loss aligns before the interaction (`--embedding global`), or `skel_after` (B, D), the
mean of the skeleton tokens after the bridger and cross-modality attention (`--embedding after`,
PCKE/PCLE only; a run without interaction falls back to `skel_global` and says so). The class text
embedding is the checkpoint's `class_text` (C, D) in both (after the interaction the text is refined
per sample, so there is no single class point to draw). Both are L2-normalised (the model compares
them by cosine) and embedded *jointly* by one scikit-learn t-SNE, so the diamonds sit in the same
2-D space as the dots. Each class has its own colour (and, past the palette's size, its own marker
shape); a misclassified clip (argmax over all classes != true class) is drawn hollow, an outline in
its true class's colour, so the figure shows where the errors sit without a colour of their own.
The class text diamonds are drawn above every dot, outlined in black.

Cluster separation is reported as silhouette scores of the skeleton embeddings grouped by their
true class, in two spaces: `silhouette_embedding` (cosine distance on the D-dim `skel_global`,
the number to trust) and `silhouette_tsne` (Euclidean in the 2-D t-SNE plane, what the eye sees).
Both lie in [-1, 1]; higher = tighter, better separated clusters.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from recognizer.checkpoint import atomic_write_text

DEFAULT_CLASSES = 9
# tab10, then 14 colours picked greedily from matplotlib's qualitative maps for the largest smallest CIELAB
# distance to those already chosen, none lighter than L* 78 (a pale dot vanishes on white): 20 classes differ
# by at least dE 27.7 (tab20: 16.6, its pale halves hard to tell from grey); more classes than colours
# cycle through MARKERS.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#ff00ff", "#a6761d", "#637939", "#ff9896", "#1b9e77", "#2b3d26", "#cab2d6", "#c2b280",
           "#e7298a", "#393b79", "#b3446c", "#e6ab02", "#882d17", "#7b4173")
MARKERS = ("o", "s", "^", "v", "P")


@dataclass
class Embedded:
    name: str  # a label for the panel (run folder name)
    method: str
    class_names: list[str]
    skel: np.ndarray  # (N, D) skel_global of the test clips
    labels: np.ndarray  # (N,)
    pred: np.ndarray  # (N,) argmax of the model's class scores
    text: np.ndarray  # (C, D) class text embeddings stored in the checkpoint
    unfinished: str | None = None  # the run did not finish: its last checkpoint (see analysis.evaluate)


@torch.no_grad()
def embed_run(run: str | Path, data_root: str | None = None, device: str = "cpu",
              embedding: str = "global") -> Embedded:
    """Test-split skeleton embeddings (`global` or `after` the interaction), predictions and the stored
    class text of a trained run."""
    if embedding not in ("global", "after"):
        raise ValueError(f"--embedding must be global or after, not '{embedding}'")
    from recognizer.analysis.evaluate import dataset_of, load_trained
    from recognizer.train import Env, make_loader_for

    run = Path(run)
    trained = load_trained(run, device)
    cfg, model = trained.cfg, trained.model
    bundle = dataset_of(trained, data_root)
    env = Env(torch.device(device), None)
    loader = make_loader_for(bundle.test, trained.layout, cfg, train=False, env=env)
    skel, labels, pred = [], [], []
    key = "skel_after" if embedding == "after" and model.interacts else "skel_global"
    for x, y, _ in loader:
        out = model(x.to(device))
        skel.append(out[key].float().cpu())
        pred.append(model.scores(out).argmax(1).cpu())
        labels.append(y)
    name = run.name if run.is_dir() else run.parent.name
    if embedding == "after":
        name += " (after interaction)" if key == "skel_after" else " (no interaction: global)"
    return Embedded(name, cfg.method, trained.class_names, torch.cat(skel).numpy(), torch.cat(labels).numpy(),
                    torch.cat(pred).numpy(), model.class_text.float().cpu().numpy(), trained.unfinished)


def pick_classes(spec: list[str] | None, class_names: list[str], default: int = DEFAULT_CLASSES) -> list[int]:
    """Class ids from names or ids (comma-separated items allowed); default: the first `default`."""
    if not spec:
        return list(range(min(default, len(class_names))))
    lower = {n.lower(): i for i, n in enumerate(class_names)}
    out: list[int] = []
    for item in (s.strip() for part in spec for s in part.split(",")):
        if not item:
            continue
        if item.isdigit():
            i = int(item)
            if not 0 <= i < len(class_names):
                raise ValueError(f"class id {i} outside 0..{len(class_names) - 1}")
        elif item.lower() in lower:
            i = lower[item.lower()]
        else:
            raise ValueError(f"unknown class '{item}' (known: {', '.join(class_names)})")
        if i not in out:
            out.append(i)
    if len(out) < 2:
        raise ValueError("choose at least two classes")
    return out


def _normalise(a: np.ndarray) -> np.ndarray:
    return F.normalize(torch.from_numpy(np.asarray(a, dtype=np.float32)), dim=-1).numpy()


def silhouette(points: np.ndarray, labels: np.ndarray, metric: str) -> float | None:
    from sklearn.metrics import silhouette_score

    if len(np.unique(labels)) < 2 or len(labels) <= len(np.unique(labels)):
        return None
    return float(silhouette_score(points, labels, metric=metric))


def project(emb: Embedded, classes: list[int], per_class: int = 100, seed: int = 0) -> dict:
    """Joint t-SNE of the chosen classes' skeleton embeddings and their class text embeddings."""
    from sklearn.manifold import TSNE

    rng = np.random.default_rng(seed)
    keep = []
    for c in classes:
        idx = np.flatnonzero(emb.labels == c)
        keep.append(np.sort(rng.permutation(idx)[:per_class]))
    keep = np.concatenate(keep)
    if len(keep) < 3:
        raise ValueError(f"{emb.name}: only {len(keep)} test clips of the chosen classes")
    skel = _normalise(emb.skel[keep])
    text = _normalise(emb.text[classes])
    points = np.concatenate([skel, text])
    perplexity = float(min(30.0, max(2.0, (len(points) - 1) / 3)))
    xy = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed,
              metric="euclidean").fit_transform(points)
    labels, pred = emb.labels[keep], emb.pred[keep]
    return {
        "skel_xy": xy[: len(keep)], "text_xy": xy[len(keep):], "labels": labels, "pred": pred,
        "silhouette_embedding": silhouette(skel, labels, "cosine"),
        "silhouette_tsne": silhouette(xy[: len(keep)], labels, "euclidean"),
        "accuracy": float((pred == labels).mean() * 100),
        "samples": int(len(keep)),
    }


def class_styles(n: int) -> list[tuple[str, str]]:
    """(colour, marker) per class, all pairs distinct: PALETTE's colours, the marker changing each time they run
    out (no grey stands for anything: misclassified clips are hollow, not grey)."""
    return [(PALETTE[i % len(PALETTE)], MARKERS[(i // len(PALETTE)) % len(MARKERS)]) for i in range(n)]


LEGEND_INCHES = 2.8


def plot(panels: list[tuple[Embedded, dict]], classes: list[int], path: str | Path, dpi: int = 100) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    styles = class_styles(len(classes))
    n = len(panels)
    width = 4.6 * n + LEGEND_INCHES
    fig, axes = plt.subplots(1, n, figsize=(width, 5.0), dpi=dpi, squeeze=False)
    for ax, (emb, res) in zip(axes[0], panels):
        wrong = res["pred"] != res["labels"]
        for k, c in enumerate(classes):
            colour, marker = styles[k]
            sel = res["labels"] == c
            ax.scatter(*res["skel_xy"][sel & ~wrong].T, s=12, color=colour, marker=marker, alpha=0.85,
                       linewidths=0, zorder=2)
            ax.scatter(*res["skel_xy"][sel & wrong].T, s=16, facecolors="none", edgecolors=colour, marker=marker,
                       linewidths=0.9, zorder=3)  # misclassified: hollow, in the true class's colour
        for k in range(len(classes)):  # the class text above every dot
            ax.scatter(*res["text_xy"][k], s=150, marker="D", color=styles[k][0], edgecolors="black",
                       linewidths=1.4, zorder=10)
        sil = res["silhouette_embedding"]
        ax.set_title(f"{emb.name} ({emb.method}{', unfinished' if emb.unfinished else ''})\n"
                     f"acc {res['accuracy']:.1f} %  silhouette "
                     f"{'-' if sil is None else f'{sil:.3f}'}", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    names = panels[0][0].class_names
    handles = [Line2D([], [], marker=m, ls="", color=col, label=names[c]) for (col, m), c in zip(styles, classes)]
    handles += [Line2D([], [], marker="o", ls="", markerfacecolor="none", markeredgecolor="black",
                       label="misclassified (hollow)"),
                Line2D([], [], marker="D", ls="", color="white", markeredgecolor="black", label="class text")]
    fig.legend(handles=handles, loc="center right", fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 1 - LEGEND_INCHES / width, 1))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def tsne_figure(runs: list[str | Path], classes: list[str] | None, out: str | Path, per_class: int = 100,
                seed: int = 0, data_root: str | None = None, device: str = "cpu", embedding: str = "global") -> dict:
    """Draw the figure for one or more runs side by side; writes OUT (png) and OUT.json (numbers)."""
    if not runs:
        raise ValueError("give at least one run folder")
    embedded = [embed_run(r, data_root, device, embedding) for r in runs]
    ids = pick_classes(classes, embedded[0].class_names)
    chosen = [embedded[0].class_names[i] for i in ids]
    for emb in embedded[1:]:
        if emb.class_names != embedded[0].class_names:
            raise ValueError(f"{emb.name}: its classes differ from {embedded[0].name}'s; compare runs of one dataset")
    panels = [(emb, project(emb, ids, per_class, seed)) for emb in embedded]
    path = plot(panels, ids, out)
    summary = {
        "figure": str(path),
        "classes": chosen,
        "embedding": embedding,
        "silhouette_note": f"silhouette of the {embedding} skeleton embedding by true class: 'embedding' = cosine "
                           "distance in the "
                           "D-dim embedding space, 'tsne' = Euclidean in the 2-D t-SNE plane",
        "runs": [{"run": str(r), "name": emb.name, "method": emb.method, "samples": res["samples"],
                  "accuracy_on_shown": res["accuracy"], "silhouette_embedding": res["silhouette_embedding"],
                  "silhouette_tsne": res["silhouette_tsne"], **({"unfinished": emb.unfinished} if emb.unfinished
                                                                  else {})}
                 for r, (emb, res) in zip(runs, panels)],
    }
    atomic_write_text(Path(path).with_suffix(".json"), json.dumps(summary, indent=1) + "\n")
    return summary
