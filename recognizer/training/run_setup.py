"""What is settled before a run's first step: which config governs it, on which device, in which folder.

`prepare_run` reads a resumed run's own config from its checkpoint *before* the environment is set up,
so `run.threads`, `run.device` and every other key come from the run itself, never from the command
line that resumed it (the cause of resumed runs drifting and slowing down). It also refuses folders
that hold an earlier run and configs that cannot train, with one line naming what is wrong.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import math
import shutil
from contextlib import contextmanager
from pathlib import Path

import torch

from recognizer.checkpoint import load_checkpoint
from recognizer.config import Config, ConfigError, from_yaml_text

RUN_MARKERS = ("config.yaml", "log.jsonl")  # files an earlier run leaves before its first checkpoint


def resolve_device(want: str) -> torch.device:
    """'auto' | 'cpu' | 'cuda' | 'cuda:N' -> a device this torch can use, or a one-line error."""
    if want == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(want)
    except RuntimeError:
        raise ValueError(f"device '{want}': expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            build = "a CPU-only build" if torch.version.cuda is None else "a CUDA build, but no GPU is visible"
            raise ValueError(f"device '{want}': this torch {torch.__version__} is {build}; use cpu "
                             "(--set run.device=cpu for pcle train; --device cpu for evaluate, predict, tsne, "
                             "zeroshot) or install a CUDA build (README: TORCH_INDEX)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device '{want}': only {torch.cuda.device_count()} GPU(s) visible")
    return device


# (section, key, lowest allowed value): values below it make a model or a schedule that cannot train
_MINIMUM = [("model", "width", 1), ("model", "kernel", 1), ("model", "heads", 1), ("model", "bridger_queries", 1),
            ("optim", "epochs", 1), ("optim", "steps", 0), ("optim", "batch_size", 1), ("optim", "repeat", 1),
            ("optim", "warmup_epochs", 0),
            ("run", "eval_every", 1), ("run", "threads", 0), ("data", "num_workers", 0),
            ("prompt", "n_ctx", 1), ("prompt", "train_classes", 0)]


# keys whose value is one of a few names: checked before anything is built or any folder is made
CHOICES = {
    "data.clip.stream": ("joint", "bone", "joint_motion", "bone_motion"),
    "data.clip.mode": ("crop", "sample"),
    "data.clip.normalize": ("none", "minmax"),
    "model.bridger_mode": ("text", "learned"),
    "model.scale_mode": ("exp", "linear"),
    "model.inference": ("auto", "logits", "similarity", "fusion"),
    "text.encoder": ("minilm", "clip", "bert", "tiny-bert", "tiny-clip", "clip-b32-random"),
    "optim.schedule": ("step", "cosine"),
    "run.amp": ("auto", "bf16", "fp16", "off"),
}
# (key, test, what it must be): values that train without an error but mean nothing (a negative margin)
_RANGES = [
    ("loss.margin", lambda v: v >= 0, "at least 0 (a cosine-similarity margin)"),
    ("loss.label_smoothing", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("loss.alpha", lambda v: v >= 0, "at least 0"), ("loss.alpha_after", lambda v: v >= 0, "at least 0"),
    ("loss.beta", lambda v: v >= 0, "at least 0"),
    ("model.init_temperature", lambda v: v > 0, "positive"), ("model.max_logit_scale", lambda v: v > 0, "positive"),
    ("optim.momentum", lambda v: 0 <= v < 1, "in [0, 1)"), ("optim.weight_decay", lambda v: v >= 0, "at least 0"),
    ("optim.gamma", lambda v: v > 0, "positive"), ("prompt.ctx_lr", lambda v: v >= 0, "at least 0"),
    ("text.lr_ratio", lambda v: v >= 0, "at least 0"), ("text.max_length", lambda v: v >= 1, "at least 1"),
    ("text.tiny_dim", lambda v: v >= 1, "at least 1"),
]


def _value(cfg: Config, dotted: str):
    value = cfg
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def text_width(cfg: Config) -> int | None:
    """The text embedding width the run's encoder will have (None when its checkpoint cannot tell)."""
    import json

    kind = cfg.text.encoder
    if kind in ("tiny-bert", "tiny-clip"):
        return cfg.text.tiny_dim
    fixed = {"minilm": 384, "clip-b32-random": 512}
    if kind in fixed:
        return fixed[kind]
    try:
        conf = json.loads((Path(cfg.text.path or "").expanduser() / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # build_text_encoder names the missing checkpoint
    conf = conf.get("text_config", conf) if kind == "clip" and "projection_dim" not in conf else conf
    return conf.get("projection_dim" if kind == "clip" else "hidden_size")


def check_heads(cfg: Config) -> None:
    """Bridger and cross-modality attention split the text width over model.heads heads."""
    width = text_width(cfg)
    if not (cfg.model.bridger or cfg.model.interaction) or width is None or width % cfg.model.heads == 0:
        return
    allowed = ", ".join(str(h) for h in range(1, min(width, 64) + 1) if width % h == 0)
    raise ConfigError(f"model.heads={cfg.model.heads}: must divide the text embedding width {width} of "
                      f"text.encoder={cfg.text.encoder} (allowed: {allowed}, ...)")


def check_config(cfg: Config) -> None:
    """Reject values that would crash deep inside torch (a zero-width model, negative epochs), or that would
    fail only after the run folder is made (an unknown stream, a misspelt inference rule), or mean nothing."""
    for section, key, low in _MINIMUM:
        value = getattr(getattr(cfg, section), key)
        if value < low:
            raise ConfigError(f"{section}.{key}={value}: must be at least {low}")
    for key, allowed in CHOICES.items():
        if _value(cfg, key) not in allowed:
            raise ConfigError(f"{key}={_value(cfg, key)!r}: must be one of {', '.join(allowed)}")
    for key, ok, what in _RANGES:
        if not ok(_value(cfg, key)):
            raise ConfigError(f"{key}={_value(cfg, key)}: must be {what}")
    if set(cfg.data.clip.rotation_axes) - set("xyz"):
        raise ConfigError(f"data.clip.rotation_axes={cfg.data.clip.rotation_axes!r}: use only the letters x, y, z")
    check_heads(cfg)
    if cfg.data.clip.window < 1:
        raise ConfigError(f"data.clip.window={cfg.data.clip.window}: must be at least 1")
    if not cfg.optim.lr > 0:
        raise ConfigError(f"optim.lr={cfg.optim.lr}: must be positive")
    if not 0 <= cfg.data.val_fraction < 1:
        raise ConfigError(f"data.val_fraction={cfg.data.val_fraction}: must be in [0, 1)")
    if not 0 <= cfg.model.dropout < 1:
        raise ConfigError(f"model.dropout={cfg.model.dropout}: must be in [0, 1)")
    _check_dataset_options(cfg.data.dataset, cfg.data.options)


def _check_dataset_options(dataset: str, options: dict) -> None:
    """`data.options` must name parameters of the dataset's builder (a typo would be a TypeError deep inside)."""
    from recognizer.datasets import BUILDERS, MODULES

    if dataset not in BUILDERS and dataset in MODULES:
        importlib.import_module(MODULES[dataset])
    if dataset not in BUILDERS:
        return  # build_dataset reports the unknown dataset
    params = inspect.signature(BUILDERS[dataset]).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    bad = [k for k in options if k not in params or k == "root"]
    if bad:
        known = ", ".join(k for k in params if k != "root")
        raise ConfigError(f"data.options: '{dataset}' has no option {', '.join(map(repr, bad))} (known: {known}); "
                          "write mappings as {key: value}, with a space after the colon")


def default_root(dataset: str) -> str | None:
    """The folder a dataset reads when `data.root` is unset (None for generated data)."""
    from recognizer.datasets import MODULES

    module = MODULES.get(dataset)
    root = getattr(importlib.import_module(module), "DEFAULT_ROOT", None) if module else None
    return str(root) if root is not None else None


def with_data_root(cfg: Config) -> Config:
    """Save the data location a run really read (absolute), so config.yaml never says `root: null`."""
    root = cfg.data.root or default_root(cfg.data.dataset)
    if root is None:
        return cfg
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, root=str(Path(root).expanduser().resolve())))


def with_epochs(cfg: Config, epochs: int) -> Config:
    return dataclasses.replace(cfg, optim=dataclasses.replace(cfg.optim, epochs=epochs))


def with_step_budget(cfg: Config, steps_per_epoch: int) -> Config:
    """`optim.steps` > 0: the epochs that make about that many optimizer steps with this training split
    (at least 1, and never fewer than the warm-up needs plus one), so a 600-clip run takes as long as a
    300-clip one. The run's config.yaml records both the budget and the epochs it gave."""
    if cfg.optim.steps <= 0:
        return cfg
    epochs = max(math.ceil(cfg.optim.steps / max(steps_per_epoch, 1)), cfg.optim.warmup_epochs + 1)
    return with_epochs(cfg, epochs)


def check_folder(run: Path) -> None:
    """A new run never overwrites a folder that holds another run, finished or stopped early."""
    if (run / "checkpoint.pt").is_file():
        raise FileExistsError(f"{run}: already holds a run (use --resume to continue, or another --out)")
    left = [name for name in RUN_MARKERS if (run / name).is_file()]
    if left:
        raise FileExistsError(f"{run}: holds {' and '.join(left)} of an earlier run that ended before its first "
                              "checkpoint; delete the folder or choose another --out")


@contextmanager
def discard_unstarted(run: Path, keep: bool = False):
    """If the body fails (an error, Ctrl-C, SIGTERM) before the run's first checkpoint, remove what it wrote
    into `run` (config.yaml, logs, tb/: nothing a rerun needs), so that the same command can start again.
    Files that were there before are left alone; `keep` turns this off (a resumed run, a DDP worker)."""
    run = Path(run)
    before = set(run.iterdir()) if run.is_dir() else None
    try:
        yield
    except BaseException:
        if not keep and not (run / "checkpoint.pt").is_file() and run.is_dir():
            for path in set(run.iterdir()) - (before or set()):
                shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
            if before is None and not any(run.iterdir()):
                run.rmdir()
        raise


def resumed_config(run: Path, extend_to: int | None = None) -> tuple[Config, dict]:
    """The run's own config (and its checkpoint), optionally extended to `extend_to` epochs."""
    ckpt = run / "checkpoint.pt"
    if not ckpt.is_file():
        raise FileNotFoundError(f"{ckpt}: nothing to resume (train without --resume first)")
    state = load_checkpoint(ckpt)
    cfg = from_yaml_text(state["config"])
    if extend_to is not None and extend_to != cfg.optim.epochs:
        if extend_to < state["epoch"]:
            raise ValueError(f"{run}: {state['epoch']} epochs are done already; --epochs {extend_to} cannot shorten "
                             "the run (give more epochs to extend it)")
        cfg = with_epochs(cfg, extend_to)  # the schedule (warm-up, milestones) goes on unchanged
    return cfg, state


def prepare_run(cfg: Config, run: Path, resume: bool, extend_to: int | None = None) -> tuple[Config, dict | None]:
    """(the config that governs the run, the checkpoint to continue from or None); call before setup_env."""
    state = None
    if resume:
        cfg, state = resumed_config(run, extend_to)
    else:
        check_folder(run)
        cfg = with_data_root(cfg)
    check_config(cfg)
    return cfg, state


def method_overrides(overrides: list[str], cfg: Config) -> list[str]:
    """The `--set key=value` items whose value the resolved config does not hold (`--method` set the key again)."""
    from recognizer.config import parse_override, to_dict

    final = to_dict(cfg)
    last = {item.split("=", 1)[0].strip(): item for item in overrides if "=" in item}  # a later --set wins
    found = []
    for key, item in last.items():
        value = parse_override(item)
        path = key.split(".")
        if path[:2] == ["data", "dataset"] or path[:1] == ["method"]:
            continue  # --dataset / --method are meant to win over these
        got, want = final, value
        for part in path:
            if not isinstance(got, dict) or part not in got:
                break
            got, want = got[part], want[part]
        else:
            if got != (list(want) if isinstance(want, tuple) else want):
                found.append(f"--method {cfg.method} sets {key}={got!r}, overriding --set {item}")
    return found
