"""`pcle curves RUN...`: test (and validation) top-1 per epoch from each run's log.jsonl, against epochs
and against training minutes, one line per run: how fast a schedule converges, on one PNG.

Runs whose epochs hold different numbers of passes over the training split (`optim.repeat`: the long CPU
protocol scores every 2 passes, the CPU protocol every pass) are drawn against passes instead of epochs,
so that a point at x = 16 is 16 passes for every line."""

from __future__ import annotations

import json
from pathlib import Path

from recognizer.analysis.report import save_figure
from recognizer.analysis.runs import read_run_config
from recognizer.checkpoint import atomic_write_text


def read_log(run: str | Path) -> list[dict]:
    path = Path(run) / "log.jsonl"
    if not path.is_file():
        raise ValueError(f"{run}: no log.jsonl (not a run folder)")
    try:
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not JSON lines ({e})") from None


def run_repeat(run: str | Path) -> int:
    """Passes over the training split per epoch (`optim.repeat` of the run's config.yaml; 1 without one)."""
    repeat = read_run_config(Path(run)).get("optim.repeat", 1)
    if not isinstance(repeat, int) or isinstance(repeat, bool) or repeat < 1:
        raise ValueError(f"{Path(run) / 'config.yaml'}: optim.repeat must be a whole number of at least 1, "
                         f"got {repeat!r}")
    return repeat


def curve(log: list[dict], repeat: int = 1) -> dict:
    """Epochs, passes over the training split (epoch x repeat), cumulative training minutes and the
    accuracies logged at each evaluated epoch."""
    minutes, total = [], 0.0
    for h in log:
        total += h.get("epoch_seconds", 0.0) / 60
        minutes.append(total)
    keep = [i for i, h in enumerate(log) if "test_top1" in h]
    trained = [h for h in log if "loss" in h]  # the training loss of every epoch, scored or not
    return {"repeat": repeat, "epoch": [log[i]["epoch"] for i in keep],
            "passes": [log[i]["epoch"] * repeat for i in keep],
            "minutes": [round(minutes[i], 2) for i in keep],
            "test_top1": [log[i]["test_top1"] for i in keep],
            "val_top1": [log[i].get("val_top1") for i in keep],
            "loss_epoch": [h["epoch"] for h in trained], "loss": [h["loss"] for h in trained]}


def run_names(runs: list[str | Path]) -> list[str]:
    """The shortest path tails (at least row/seed) that tell the runs apart: a/pcle/seed0, b/pcle/seed0."""
    parts = [Path(r).resolve().parts for r in runs]
    for n in range(2, max(map(len, parts)) + 1):
        names = ["/".join(p[-n:]) for p in parts]
        if len(set(names)) == len(names):
            return names
    return [str(r) for r in runs]


def plot_curves(runs: list[str | Path], out: str | Path, labels: list[str] | None = None) -> dict:
    """Three panels (top-1 vs epoch, vs training minutes, training loss vs epoch); writes OUT (PNG) and
    OUT.json (the numbers)."""
    if not runs:
        raise ValueError("give at least one run folder")
    names = labels or run_names(runs)
    if len(set(names)) != len(names):
        raise ValueError(f"--labels: give each run its own label (got {', '.join(names)})")
    data = {name: curve(read_log(r), run_repeat(r)) for name, r in zip(names, runs, strict=True)}
    out = save_figure(curves_figure(data), out)
    atomic_write_text(out.with_suffix(".json"), json.dumps(data, indent=1) + "\n")
    return data


def curves_figure(data: dict[str, dict]):
    """Top-1 per epoch (integer ticks: epochs are whole) and per training minute; per pass over the training
    split instead of per epoch when the runs' epochs differ in passes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    by_pass = len({c.get("repeat", 1) for c in data.values()}) > 1
    x_key, x_label = ("passes", "passes over the training split") if by_pass else ("epoch", "epoch")
    fig, axes = plt.subplots(1, 3, figsize=(16, 4))
    axes[1].sharey(axes[0])
    for name, c in data.items():
        x = c.get(x_key, c["epoch"])
        line = axes[0].plot(x, c["test_top1"], marker="o", ms=3, label=f"{name} test")[0]
        axes[1].plot(c["minutes"], c["test_top1"], marker="o", ms=3, color=line.get_color())
        if any(v is not None for v in c["val_top1"]):
            axes[0].plot(x, c["val_top1"], ls="--", color=line.get_color(), label=f"{name} val")
        loss_x = [e * (c.get("repeat", 1) if by_pass else 1) for e in c.get("loss_epoch", [])]
        axes[2].plot(loss_x, c.get("loss", []), color=line.get_color())
    unit = "pass" if by_pass else "epoch"
    axes[0].set(xlabel=x_label, ylabel="top-1 %", title=f"accuracy per {unit}")
    axes[1].set(xlabel="training minutes (sum of epoch times)", title="accuracy per minute")
    axes[2].set(xlabel=x_label, ylabel="training loss (all terms)", title=f"training loss per {unit}")
    for ax in axes:
        ax.grid(alpha=0.3)
    for ax in (axes[0], axes[2]):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].legend(fontsize=8)
    return fig


DIAGNOSTICS = (("contrastive_after", "contrastive loss after interaction / ln C (1 = chance)"),
               ("text_cos_mean", "mean off-diagonal cosine of the class text"),
               ("scale_after", "logit scale after interaction"))


def diagnostics_curve(log: list[dict], num_classes: int = 0) -> dict:
    """Per epoch: contrastive_after as a fraction of chance (ln C; logs from before the diagnostics take C
    from `num_classes`), the class text cosine and the after scale (None where a log has no value)."""
    import math

    fallback = math.log(num_classes) if num_classes > 1 else None
    out = {"epoch": [h["epoch"] for h in log]}
    out["contrastive_after"] = [h["contrastive_after"] / h.get("contrastive_after_chance", fallback)
                                if "contrastive_after" in h and h.get("contrastive_after_chance", fallback) else None
                                for h in log]
    for key in ("text_cos_mean", "scale_after"):
        out[key] = [h.get(key) for h in log]
    return out


def _num_classes(run: str | Path) -> int:
    """C from the run's metrics.json (per-class entries), 0 when it has none."""
    try:
        return len(json.loads((Path(run) / "metrics.json").read_text()).get("per_class_top1") or {})
    except (OSError, ValueError):
        return 0


def plot_diagnostics(runs: list[str | Path], out: str | Path, labels: list[str] | None = None) -> dict:
    """Three panels per epoch, one line per run: is the interaction above chance, are the class texts apart,
    what scale the after-interaction term learned. Writes OUT (PNG) and OUT.json."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = labels or run_names(runs)
    data = {name: diagnostics_curve(read_log(r), _num_classes(r)) for name, r in zip(names, runs, strict=True)}
    if not any(v is not None for c in data.values() for key, _ in DIAGNOSTICS for v in c[key]):
        raise ValueError("no run logs a diagnostic (contrastive_after, text_cos_mean, scale_after)")
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, c) in enumerate(data.items()):  # one colour per run in every panel
        for ax, (key, _) in zip(axes, DIAGNOSTICS):
            pts = [(e, v) for e, v in zip(c["epoch"], c[key]) if v is not None]
            if pts:
                ax.plot(*zip(*pts), marker="o", ms=3, label=name, color=colours[i % len(colours)])
    axes[0].axhline(1.0, color="grey", ls=":", lw=1)
    for ax, (_, title) in zip(axes, DIAGNOSTICS):
        ax.set(xlabel="epoch", title=title)
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
        if ax.lines[1:] or (ax.lines and ax is not axes[0]):
            ax.legend(fontsize=8)
    out = save_figure(fig, out)
    atomic_write_text(out.with_suffix(".json"), json.dumps(data, indent=1) + "\n")
    return data
