"""Every experimental choice as data: nested dataclasses, read from and written to YAML.

Resolution order: dataclass defaults -> `configs/<dataset>.yaml` preset -> the user's `--config`
file -> `--set key=value` overrides -> `--method` (pcke | pcle | gap). The resolved config is saved
as `config.yaml` in every run folder, so a run is reproducible from its folder alone.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from recognizer.cache import text_embedding_cache
from recognizer.datasets.base import ClipConfig
from recognizer.method.losses import LossConfig
from recognizer.method.text_encoder import TextConfig

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
METHODS = ("pcke", "pcle", "gap")


class ConfigError(ValueError):
    """A config file or override names an unknown key or a value of the wrong type."""


@dataclass
class DataConfig:
    dataset: str = "synthetic"
    root: str | None = None
    clip: ClipConfig = field(default_factory=ClipConfig)
    num_workers: int = 2
    persistent_workers: bool = False  # keep loader workers alive across epochs (no start-up per epoch)
    prefetch_factor: int = 2  # batches each worker loads ahead (torch's default)
    val_fraction: float = 0.0  # held out of train (stratified) for ensemble-weight search
    unseen: str = ""  # zero-shot: classes left out of training (names/ids, ntu60-55/5, random:K:SEED); docs/zeroshot.md
    options: dict = field(default_factory=dict)  # passed to the dataset builder


@dataclass
class ModelConfig:
    width: int = 64  # CTR-GCN base channels (64 -> 64/128/256)
    kernel: int = 5
    dilations: tuple[int, ...] = (1, 2)
    lst_k: dict = field(default_factory=dict)  # stream -> k of GAP's input transform (I - P^k) x; absent/0 = off
    bridger: bool = True
    bridger_mode: str = "text"  # text: class text embeddings are the queries (language-aware) | learned
    bridger_queries: int = 8  # number of learned queries (bridger_mode=learned)
    bridger_residual: bool = True  # add the (text) query back to the bridged token; false: the token is pooled skeleton
    interaction_grad: float = 1.0  # scale on the gradient the interaction sends into the backbone (0 = stop it)
    interaction_grad_epochs: int = 0  # > 0: interaction_grad applies for the first N epochs only, then 1
    interaction: bool = True
    heads: int = 8
    dropout: float = 0.0
    init_temperature: float = 0.07  # logit scales start at 1 / T (exp mode) or log(1 / T) (linear mode, GAP)
    max_logit_scale: float = 100.0  # exp mode clamp
    scale_mode: str = "exp"  # exp: scale = exp(parameter) (CLIP) | linear: scale = parameter (GAP's code)
    separate_scales: bool = True  # one scale per contrastive term (GAP: global + 4 parts)
    fused_subsets: bool = False  # the adjacency subsets' CTR-GC as one batched op (same maths and parameters)
    channels_last: bool = False  # skeleton feature maps (N, C, T, V) kept channels innermost (faster convs)
    inference: str = "auto"  # auto: chosen on the validation split (logits without one) | logits | similarity | fusion
    fuse_weight: float = 0.5  # inference=fusion: logits + w * scale * similarity after interaction


@dataclass
class PromptConfig:
    method: str = "pcle"  # pcke: corpus descriptions | pcle: learnable context
    corpus: str | None = None  # default: the dataset's curated corpus
    n_ctx: int = 16
    class_specific: bool = False
    ctx_init: str = ""  # e.g. "a person is"
    init_length: str = "n_ctx"  # n_ctx: ctx_init fills the first of n_ctx slots | words: n_ctx = its tokens (CoOp)
    pooling: str = "all"  # BERT-style prompt pooling: all tokens | name (class-name tokens + [SEP]) | cls
    hybrid: bool = False  # PCLE prompt = [learned context] + one LLM synonym drawn per sample (PCKE's corpus)
    hybrid_class_text: str = "draw"  # hybrid: class text per step = one drawn synonym prompt | mean of all of them
    ctx_lr: float = 0.002  # PCLE context's own learning rate (CoOp: 2e-3 with SGD), same schedule as the backbone
    part_prefix: bool = True  # part texts start with the class name, as GAP's ("<name>, head: ...")
    train_classes: int = 0  # PCLE: per step encode only the batch's classes + random others up to this many (0 = all)
    cache_dir: str = field(default_factory=text_embedding_cache)  # $PCLE_CACHE/text-embeddings


@dataclass
class OptimConfig:
    epochs: int = 110
    # > 0: a budget of optimizer steps instead: epochs = ceil(steps / steps per epoch), set when the run starts
    # from the training split's size, so a run's length does not grow with the dataset (configs/native-small.yaml).
    # A later layer (a config file, --set, --epochs) that sets optim.epochs and not optim.steps turns it off.
    steps: int = 0
    batch_size: int = 200
    lr: float = 0.1
    base_batch: int = 0  # >0: lr scales with global_batch / base_batch
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    warmup_epochs: int = 5
    schedule: str = "step"  # step: x gamma at each milestone (GAP) | cosine: half-cosine to 0 after warm-up
    milestones: tuple[int, ...] = (90, 100)
    gamma: float = 0.1
    repeat: int = 1  # passes over the training set per epoch (NW-UCLA: 5)
    interaction_lr_ratio: float = 1.0  # bridger + cross-modality attention: lr = optim.lr * this (SGD)
    interaction_optimizer: str = "sgd"  # sgd: in the backbone's SGD | adamw: their own AdamW group
    interaction_lr: float = 0.001  # interaction_optimizer=adamw: its base lr (same warm-up and decay)
    interaction_weight_decay: float = 0.05  # interaction_optimizer=adamw: its decoupled weight decay
    ema_decay: float = 0.0  # > 0: also keep an exponential moving average of the weights (per step), ema.pt


@dataclass
class RunConfig:
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:1
    amp: str = "auto"  # auto (bf16 on CUDA, off on CPU) | bf16 (CUDA and CPU: AVX512-BF16/AMX) | fp16 | off
    eval_every: int = 1
    compile: bool = False  # torch.compile the skeleton encoder (inductor; eager with one line where it fails)
    sync_bn: bool = False
    threads: int = 0  # torch CPU threads; 0 = torch's default


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    text: TextConfig = field(default_factory=TextConfig)
    prompt: PromptConfig = field(default_factory=PromptConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)
    method: str = "pcle"  # pcke | pcle | gap, as given on the command line


def _coerce(value: Any, typ: Any, where: str, path: str) -> Any:
    """`value` as `typ`; errors read '<where>: <key path>: expected ...'."""
    origin = typing.get_origin(typ)
    if dataclasses.is_dataclass(typ):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: {path}: expected a mapping")
        return merge(typ(), value, where, path)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: {path}: expected a list")
        inner = typing.get_args(typ)[0]
        return tuple(_coerce(v, inner, where, path) for v in value)
    args = typing.get_args(typ)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value is None and type(None) in args:
            return None
        typ = next(a for a in args if a is not type(None))
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if typ in (int, float, str, bool) and not isinstance(value, typ):
        raise ConfigError(f"{where}: {path}: expected {typ.__name__}, got {value!r}")
    if typ is int and isinstance(value, bool):
        raise ConfigError(f"{where}: {path}: expected int, got {value!r}")
    return value


def merge(obj: Any, values: dict, where: str = "config", path: str = "") -> Any:
    """A copy of dataclass `obj` with `values` (nested dict) applied; unknown keys are errors.

    `where` names the source (a file, `--set ...`); `path` is the dotted key of `obj` inside the config."""
    hints = typing.get_type_hints(type(obj))
    names = {f.name for f in dataclasses.fields(obj)}
    updates = {}
    for key, value in (values or {}).items():
        dotted = f"{path}.{key}" if path else str(key)
        if key not in names:
            raise ConfigError(f"{where}: unknown key '{dotted}' (known in {path or 'the config'}: "
                              f"{', '.join(sorted(names))})")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current) and isinstance(value, dict):
            updates[key] = merge(current, value, where, dotted)
        else:
            updates[key] = _coerce(value, hints[key], where, dotted)
    return dataclasses.replace(obj, **updates)


class ConfigLoader(yaml.SafeLoader):
    """YAML with YAML 1.2's booleans: only true/false are booleans. PyYAML's 1.1 rules also read on/off/yes/no
    as booleans, so `--set run.amp=off` or `amp: off` reached a string key as False and was refused."""


ConfigLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
ConfigLoader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                   list("tTfF"))


def load_config_yaml(text: str) -> Any:
    """`text` parsed as a config (ConfigLoader)."""
    return yaml.load(text, Loader=ConfigLoader)  # noqa: S506 - a SafeLoader subclass


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = load_config_yaml(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return data


def parse_override(item: str) -> dict:
    """'optim.lr=0.05' -> {'optim': {'lr': 0.05}} (the value is parsed as YAML)."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected key=value")
    key, raw = item.split("=", 1)
    value = load_config_yaml(raw) if raw else ""
    for part in reversed(key.strip().split(".")):
        value = {part: value}
    return value


def apply_method(cfg: Config, method: str) -> Config:
    """pcke / pcle select the prompt source; gap = PCKE prompts as GAP's code trains them (docs/method.md)."""
    if method not in METHODS:
        raise ConfigError(f"unknown method '{method}' (choose from {', '.join(METHODS)})")
    cfg = dataclasses.replace(cfg, method=method, prompt=dataclasses.replace(
        cfg.prompt, method="pcle" if method == "pcle" else "pcke"))
    if method == "gap":  # GAP's code: no interaction, no ranking, linear logit scales, text tower fine-tuned
        cfg = dataclasses.replace(
            cfg,
            model=dataclasses.replace(cfg.model, bridger=False, interaction=False, inference="logits",
                                      scale_mode="linear", separate_scales=True),
            loss=dataclasses.replace(cfg.loss, ranking=False, after=False),
            text=dataclasses.replace(cfg.text, frozen=cfg.text.frozen if cfg.text.gap_frozen else False),
        )
    return cfg


def dataset_named(config_file: str | Path | None, overrides: list[str] | None) -> str | None:
    """The dataset a config file or a `--set` item names (the last one wins), so that without a
    dataset argument its preset, not the default dataset's, is applied."""
    named = None
    if config_file:
        named = (read_yaml(config_file).get("data") or {}).get("dataset")
    for item in overrides or []:
        named = (parse_override(item).get("data") or {}).get("dataset", named) if "=" in item else named
    return named


def preset_path(dataset: str) -> Path | None:
    """configs/<dataset>.yaml, else the family's (ntu60-xsub -> configs/ntu.yaml)."""
    family = dataset.split("-")[0].rstrip("0123456789")
    for name in (dataset, family):
        if (CONFIG_DIR / f"{name}.yaml").is_file():
            return CONFIG_DIR / f"{name}.yaml"
    return None


def split_methods(data: dict, where: str) -> tuple[dict, dict]:
    """A config file's `methods:` block (method -> overrides for runs of that method) apart from the rest."""
    data = dict(data)
    blocks = data.pop("methods", None) or {}
    if not isinstance(blocks, dict) or any(m not in METHODS or not isinstance(v, dict) for m, v in blocks.items()):
        raise ConfigError(f"{where}.methods: expected a mapping of {', '.join(METHODS)} to overrides")
    return data, blocks


def epochs_win(layer: dict) -> dict:
    """A layer that sets optim.epochs and not optim.steps also turns an earlier layer's step budget off:
    `--epochs 2` over configs/native-small.yaml trains 2 epochs, not the preset's 400 steps."""
    optim = layer.get("optim") if isinstance(layer, dict) else None
    if isinstance(optim, dict) and "epochs" in optim and "steps" not in optim:
        return {**layer, "optim": {**optim, "steps": 0}}
    return layer


def resolve(dataset: str | None = None, method: str | None = None, config_file: str | None = None,
            overrides: list[str] | None = None) -> Config:
    """defaults -> preset -> --config -> their `methods:` blocks for the run's method -> --set -> --method.
    The preset is the dataset argument's, else the one the config file or a --set names (a grid run with
    `--config configs/nw-ucla-cpu.yaml` and no --dataset gets NW-UCLA's preset, not synthetic's)."""
    cfg = Config()
    dataset = dataset or dataset_named(config_file, overrides)
    if dataset:
        cfg = merge(cfg, {"data": {"dataset": dataset}})
    preset = preset_path(cfg.data.dataset)
    method_blocks: list[tuple[str, dict]] = []
    for path in [p for p in (preset, config_file) if p]:
        data, blocks = split_methods(read_yaml(path), str(path))
        cfg = merge(cfg, epochs_win(data), str(path))
        method_blocks.append((str(path), blocks))
    chosen = method or cfg.method
    for where, blocks in method_blocks:
        if chosen in blocks:
            cfg = merge(cfg, epochs_win(blocks[chosen]), f"{where}: methods.{chosen}")
    for item in overrides or []:
        cfg = merge(cfg, epochs_win(parse_override(item)), f"--set {item}")
    if dataset:  # the command line wins over a config file's dataset
        cfg = merge(cfg, {"data": {"dataset": dataset}})
    return apply_method(cfg, method or cfg.method)


def to_dict(cfg: Any) -> dict:
    def plain(v: Any) -> Any:
        if isinstance(v, tuple):
            return list(v)
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return {k: plain(v) for k, v in dataclasses.asdict(cfg).items()}


def to_yaml(cfg: Config) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def from_yaml_text(text: str) -> Config:
    return merge(Config(), load_config_yaml(text) or {}, "config.yaml")
