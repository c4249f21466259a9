"""Training, top to bottom: data, text side, model, SGD with warm-up and steps, checkpoint every epoch.

A run folder holds `config.yaml`, `log.jsonl`, `checkpoint.pt`, `metrics.json`, the test scores
(`scores_test.npy`, `labels_test.npy`, `samples_test.txt`) and TensorBoard events (`tb/`).
`resume=True` continues from `checkpoint.pt` exactly: every random draw depends only on
(seed, epoch, sample), so an interrupted and resumed run ends with the same weights as one that
never stopped. Under `torchrun` the same code runs DDP; only rank 0 writes.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch.utils.data import DataLoader, Sampler

from corpus import load_corpus
from recognizer.checkpoint import atomic_save_array, atomic_torch_save, atomic_write_text
from recognizer.config import Config, to_yaml
from recognizer.datasets import DatasetBundle, SkeletonDataset, Split
from recognizer.datasets.splits import build_run_dataset
from recognizer.method.graph import Layout
from recognizer.method.losses import total_loss
from recognizer.method.model import LOGITS_ONLY, PromptedContrastiveModel
from recognizer.method.prompt_learner import build_prompt_learner
from recognizer.method.text_bank import TextBank, build_text_bank
from recognizer.method.text_encoder import TextEncoder, build_text_encoder
from recognizer.training.best_checkpoint import best_summary, is_new_best, usable_for_inference
from recognizer.training.diagnostics import epoch_diagnostics, interaction_warning
from recognizer.training.distributed import all_gather_plain, gather_outputs, sync_batchnorm
from recognizer.training.ema import WeightAverage
from recognizer.training.optimizers import Optimizers, split_groups, step_all
from recognizer.training.provenance import data_record, write_provenance
from recognizer.training.run_log import EpochLog, StepLog, bars_wanted
from recognizer.training.run_setup import prepare_run, resolve_device, with_step_budget
from recognizer.training.speed import amp_dtype, apply_fast_path, autocast, bf16_warning, fp32_outputs, loader_options

console = Console(stderr=True)


# ----------------------------------------------------------------------------- environment
@dataclass
class Env:
    device: torch.device
    amp: torch.dtype | None
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_env(cfg: Config) -> Env:
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    want = str(resolve_device(cfg.run.device))
    if world > 1:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if want.startswith("cuda"):
            torch.cuda.set_device(local)
            want = f"cuda:{local}"
        if not dist.is_initialized():
            dist.init_process_group("nccl" if want.startswith("cuda") else "gloo")
    device = torch.device(want)
    return Env(device, amp_dtype(cfg.run.amp, device), rank, world)


class EpochSampler(Sampler[int]):
    """A permutation per epoch drawn from (seed, epoch), `repeat` passes long, sliced per rank.

    Pass r yields keys r * n + i, so each copy of a clip gets its own augmentation (SkeletonDataset).

    Rank r takes positions r, r+W, r+2W, ...: with a per-rank batch of B/W, the ranks' batches at
    step k together are exactly the single-process batch k of size B.
    """

    def __init__(self, n: int, seed: int, repeat: int = 1, rank: int = 0, world: int = 1):
        self.n, self.seed, self.repeat, self.rank, self.world = n, seed, repeat, rank, world
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n * self.repeat // self.world

    def __iter__(self):
        """Position keys `copy * n + i`: the dataset reads sample i and seeds its draw by the key."""
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        perm = torch.cat([torch.randperm(self.n, generator=g) + r * self.n for r in range(self.repeat)])
        perm = perm[: len(self) * self.world]
        return iter(perm[self.rank :: self.world].tolist())


def lr_factor(cfg: Config, epoch: int, world_batch: int) -> float:
    """Linear warm-up over `warmup_epochs`, then x gamma at each milestone (per epoch, as GAP) or a cosine
    decay (`optim.schedule`); with
    `optim.base_batch`, scaled by world_batch / base_batch. Every parameter group's lr is its base lr times this."""
    o = cfg.optim
    scale = world_batch / o.base_batch if o.base_batch else 1.0
    if epoch < o.warmup_epochs:
        return scale * (epoch + 1) / o.warmup_epochs
    if o.schedule == "cosine":  # from 1 after warm-up down towards 0 at the last epoch
        span = max(o.epochs - o.warmup_epochs, 1)
        return scale * 0.5 * (1 + math.cos(math.pi * (epoch - o.warmup_epochs) / span))
    if o.schedule != "step":
        raise ValueError(f"optim.schedule must be step or cosine, not '{o.schedule}'")
    return scale * o.gamma ** sum(epoch >= m for m in o.milestones)


def lr_at(cfg: Config, epoch: int, world_batch: int) -> float:
    """The backbone's learning rate at `epoch`."""
    return cfg.optim.lr * lr_factor(cfg, epoch, world_batch)


def param_groups(model: PromptedContrastiveModel, encoder: TextEncoder, cfg: Config) -> list[dict]:
    """Backbone and heads at optim.lr; bridger and cross-modality attention at optim.lr *
    optim.interaction_lr_ratio; PCLE's context at prompt.ctx_lr (CoOp); a fine-tuned text encoder
    at optim.lr * text.lr_ratio (GAP). Each group keeps its base lr in 'base_lr'."""
    ctx = [p for n, p in model.named_parameters() if n.startswith("prompt_learner.") and p.requires_grad]
    inter = [p for n, p in model.named_parameters()
             if n.startswith(("bridger.", "interaction.", "token_proj.")) and p.requires_grad]
    taken = {id(p) for p in ctx + inter}
    groups = [{"name": "backbone", "base_lr": cfg.optim.lr,
               "params": [p for p in model.parameters() if p.requires_grad and id(p) not in taken]}]
    if inter:
        groups.append({"name": "interaction", "base_lr": cfg.optim.lr * cfg.optim.interaction_lr_ratio,
                       "params": inter})
    if ctx:
        groups.append({"name": "context", "base_lr": cfg.prompt.ctx_lr, "params": ctx})
    if not encoder.frozen:
        groups.append({"name": "text_encoder", "base_lr": cfg.optim.lr * cfg.text.lr_ratio,
                       "params": [p for p in encoder.parameters() if p.requires_grad]})
    return groups


# ----------------------------------------------------------------------------- building blocks
def build_optimizer(model, parts: Parts, cfg: Config, env: Env) -> tuple[torch.optim.SGD | Optimizers,
                                                                        torch.amp.GradScaler]:
    """SGD over the run's parameter groups (the interaction's in AdamW with optim.interaction_optimizer=adamw)
    and the loss scaler (active only under fp16)."""
    opt = split_groups(param_groups(unwrap(model), parts.encoder, cfg), cfg.optim)
    return opt, torch.amp.GradScaler(env.device.type, enabled=env.amp == torch.float16)


def holdout(split: Split, fraction: float, seed: int) -> tuple[Split, Split | None]:
    """Stratified validation split taken out of train (for ensemble-weight search)."""
    if fraction <= 0:
        return split, None
    rng = np.random.default_rng(seed)
    val = []
    for c in np.unique(split.labels):
        members = np.flatnonzero(split.labels == c)
        val.append(rng.permutation(members)[: max(1, int(fraction * len(members)))])
    val = np.concatenate(val)
    keep = np.setdiff1d(np.arange(len(split)), val)
    return split.take(keep), split.take(np.sort(val))


@dataclass
class Parts:
    bundle: DatasetBundle
    val: Split | None
    encoder: TextEncoder
    bank: TextBank
    model: PromptedContrastiveModel


def build_parts(cfg: Config, env: Env) -> Parts:
    bundle = build_run_dataset(cfg)  # without the classes of data.unseen (zero-shot), if any
    train_split, val = holdout(bundle.train, cfg.data.val_fraction, cfg.run.seed)
    bundle.train = train_split
    corpus_path = cfg.prompt.corpus or bundle.corpus
    if corpus_path is None:
        raise ValueError(f"dataset '{bundle.name}' has no default corpus: set prompt.corpus")
    corpus = load_corpus(corpus_path, bundle.class_names)
    encoder = build_text_encoder(cfg.text).to(env.device)
    bank = build_text_bank(encoder, corpus, cfg.prompt.cache_dir, cfg.prompt.part_prefix).to(env.device)
    learner = None
    if cfg.prompt.method == "pcle":  # the context's random init follows run.seed (the encoder seeds itself)
        if cfg.prompt.hybrid and cfg.prompt.train_classes:
            raise ValueError("prompt.hybrid=true encodes the drawn synonyms, not a class subset: "
                             "set prompt.train_classes=0")
        owner = torch.repeat_interleave(torch.arange(len(bank.counts)), bank.counts.cpu()).tolist()
        learner = build_prompt_learner(encoder, bundle.class_names, cfg.prompt, cfg.run.seed,
                                       synonyms=(bank.syn_texts, owner))
    sample = bundle.train.data[0]  # (C, T, V, M)
    torch.manual_seed(cfg.run.seed)
    model = PromptedContrastiveModel(cfg.model, bundle.layout, len(bundle.class_names), encoder.dim,
                                     in_channels=sample.shape[0], num_person=sample.shape[-1],
                                     prompt_learner=learner,
                                     lst_k=int(cfg.model.lst_k.get(cfg.data.clip.stream, 0))).to(env.device)
    return Parts(bundle, val, encoder, bank, model)


def make_loader_for(split: Split, layout: Layout, cfg: Config, train: bool, env: Env) -> DataLoader:
    ds = SkeletonDataset(split, layout, cfg.data.clip, train=train, seed=cfg.run.seed)
    if train and cfg.optim.batch_size % env.world:
        raise ValueError(f"optim.batch_size={cfg.optim.batch_size} (the global batch) must divide by the "
                         f"{env.world} processes")
    batch = cfg.optim.batch_size // env.world if train else cfg.optim.batch_size  # eval runs on rank 0 alone
    sampler = EpochSampler(len(ds), cfg.run.seed, cfg.optim.repeat, env.rank, env.world) if train else None
    return DataLoader(ds, batch_size=batch, sampler=sampler, shuffle=False, drop_last=False,
                      num_workers=cfg.data.num_workers, pin_memory=env.device.type == "cuda",
                      **loader_options(cfg.data.num_workers, cfg.data.persistent_workers, cfg.data.prefetch_factor))


def forward(model, parts: Parts, cfg: Config, x: torch.Tensor, env: Env,
            classes: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Run the model with the text side of the configured method."""
    pcle = cfg.prompt.method == "pcle"
    with autocast(env.device, env.amp):  # the outputs (and so the losses) in fp32
        return fp32_outputs(model(x, encoder=parts.encoder if pcle else None,
                                  class_text=None if pcle else parts.bank.classes, classes=classes))


def class_subset(labels: torch.Tensor, num_classes: int, size: int, gen: torch.Generator) -> torch.Tensor | None:
    """PCLE's `prompt.train_classes`: the classes of the (global) batch plus random others, `size` in all.

    Every rank passes the same global labels and generator, so all ranks encode the same subset.
    Returns the sorted class ids (K,), or None when the subset would hold every class.
    """
    order = torch.randperm(num_classes, generator=gen)  # drawn every step: the stream stays aligned
    if not 0 < size < num_classes:
        return None
    present = torch.zeros(num_classes, dtype=torch.bool)
    present[labels.cpu()] = True
    others = order[~present[order]][: max(size - int(present.sum()), 0)]
    present[others] = True
    return present.nonzero().squeeze(1).to(labels.device)


def positions_in(classes: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(B,) position of each sample's class inside the class subset `classes` (K,)."""
    pos = torch.full((num_classes,), -1, dtype=torch.long, device=labels.device)
    pos[classes] = torch.arange(len(classes), device=labels.device)
    return pos[labels]


def unwrap(model) -> PromptedContrastiveModel:
    return model.module if hasattr(model, "module") else model


# ----------------------------------------------------------------------------- evaluation
@torch.no_grad()
def predict(model: PromptedContrastiveModel, loader: DataLoader, env: Env, class_text: torch.Tensor | None = None,
            progress: bool = False, with_logits: bool = False) -> tuple[np.ndarray, ...]:
    """(N, C) scores and (N,) labels over a loader, with fixed class text embeddings; `with_logits` adds
    the (N, C) classification-head logits alone (GAP's test rule), from the same forward passes."""
    model.eval()
    scores, labels, logits = [], [], []
    for x, y, _ in _track(loader, "evaluate", progress):
        with autocast(env.device, env.amp):
            out = fp32_outputs(model(x.to(env.device, non_blocking=True), class_text=class_text))
        scores.append(model.scores(out).float().cpu())
        labels.append(y)
        if with_logits:
            logits.append(out["logits"].float().cpu())
    result = (torch.cat(scores).numpy(), torch.cat(labels).numpy())
    return (*result, torch.cat(logits).numpy()) if with_logits else result


def topk(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    k = min(k, scores.shape[1])
    top = np.argsort(-scores, axis=1)[:, :k]
    return float((top == labels[:, None]).any(1).mean() * 100)


def per_class_accuracy(scores: np.ndarray, labels: np.ndarray, num_classes: int) -> list[float | None]:
    pred = scores.argmax(1)
    return [float((pred[labels == c] == c).mean() * 100) if (labels == c).any() else None for c in range(num_classes)]


def accuracy_summary(scores: np.ndarray, labels: np.ndarray, class_names: list[str]) -> dict:
    """top1, top5, mean class accuracy and per-class top-1: what metrics.json and eval.json share."""
    per_class = per_class_accuracy(scores, labels, len(class_names))
    return {
        "top1": topk(scores, labels, 1),
        "top5": topk(scores, labels, 5),
        "mean_class_accuracy": float(np.mean([a for a in per_class if a is not None])),
        "per_class_top1": dict(zip(class_names, per_class)),
    }


def final_class_text(model: PromptedContrastiveModel, parts: Parts, cfg: Config) -> torch.Tensor:
    """(C, D) class text embeddings to store with the model: learned prompts (PCLE) or the corpus."""
    parts.encoder.eval()
    with torch.no_grad():
        if cfg.prompt.method == "pcle":
            return model.prompt_learner(parts.encoder).float()
        return parts.bank.classes.float()


INFERENCE_WEIGHTS = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0)  # fusion weights tried on the validation split


@torch.no_grad()
def choose_inference(model: PromptedContrastiveModel, cfg: Config, env: Env, val_loader: DataLoader | None) -> dict:
    """Set `model.fusion` by `model.inference`: a rule fixed before training (`logits`, `similarity`, `fusion`
    at model.fuse_weight), or `auto`, which picks on the validation split only the best of logits,
    logits + w * similarity (w in INFERENCE_WEIGHTS) and similarity alone (ties: the simpler rule). With a
    validation split the record also holds the rule's and the head's validation top-1 (never test); for a
    fixed logits rule the caller adds them from its validation scores (`record_head_val_top1`)."""
    rule = cfg.model.inference
    if rule not in ("auto", "logits", "similarity", "fusion"):
        raise ValueError(f"model.inference must be auto, logits, similarity or fusion, not '{rule}'")
    if not model.interacts or rule == "logits" or (rule == "auto" and val_loader is None):
        chosen = {"rule": "logits", "weight": 0.0, "chosen_on": "fixed" if rule != "auto" else "no validation split"}
    elif rule == "similarity":
        chosen = {"rule": "similarity", "weight": 1.0, "chosen_on": "fixed"}
    elif rule == "fusion":
        chosen = {"rule": "fusion", "weight": cfg.model.fuse_weight, "chosen_on": "fixed"}
    if model.interacts and val_loader is not None and (rule != "logits"):
        candidates = _validation_candidates(model, env, val_loader)
        if rule == "auto":
            chosen = _best_candidate(candidates)
        else:  # the fixed rule's validation top-1 beside the head's, for the record
            chosen.update(val_top1=_rule_top1(candidates, chosen["rule"], chosen["weight"]),
                          val_top1_logits=_rule_top1(candidates, "logits", 0.0))
    model.fusion.copy_(torch.tensor([0.0 if chosen["rule"] == "similarity" else 1.0, chosen["weight"]]))
    return chosen


def record_head_val_top1(inference: dict, scores: np.ndarray, labels: np.ndarray) -> None:
    """A fixed logits rule (GAP) is not scored on validation to be chosen: its record gets the final model's
    validation top-1 from the (N, C) validation scores under that rule, as a chosen rule's record has it."""
    if "val_top1" not in inference:
        head = topk(scores, labels, 1)
        inference.update(val_top1=head, val_top1_logits=head)


def _validation_candidates(model: PromptedContrastiveModel, env: Env,
                           loader: DataLoader) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Validation logits (N, C), scale * similarity after interaction (N, C) and labels (N,)."""
    model.eval()
    logits, sims, labels = [], [], []
    for x, y, _ in loader:
        with autocast(env.device, env.amp):
            out = fp32_outputs(model(x.to(env.device)))
        logits.append(out["logits"].float().cpu())
        sims.append((out["logit_scales"][-1].float() * out["sim_after"].float()).cpu())
        labels.append(y)
    lg, sm, lb = torch.cat(logits), torch.cat(sims), torch.cat(labels)
    return lg, sm, lb


def _rule_top1(candidates: tuple, rule: str, weight: float) -> float:
    """Validation top-1 of one rule from (logits, scale * similarity, labels); logits = fusion at weight 0."""
    lg, sm, lb = candidates
    scores = sm if rule == "similarity" else lg + weight * sm
    return float((scores.argmax(1) == lb).float().mean() * 100)


def _best_candidate(candidates: tuple) -> dict:
    rules = [("logits" if w == 0 else "fusion", w) for w in INFERENCE_WEIGHTS] + [("similarity", 1.0)]
    scored = [(_rule_top1(candidates, rule, w), -i, rule, w) for i, (rule, w) in enumerate(rules)]
    acc, _, rule, w = max(scored)
    return {"rule": rule, "weight": float(w), "chosen_on": "validation", "val_top1": acc,
            "val_top1_logits": scored[0][0]}


# ----------------------------------------------------------------------------- the loop
def _track(iterable, description: str, enabled: bool):
    if not bars_wanted(enabled, console):
        yield from iterable
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        yield from bar.track(iterable, description=description)


def train_one_epoch(model, parts: Parts, cfg: Config, env: Env, loader: DataLoader, opt, scaler,
                    epoch: int, progress: bool, ema: WeightAverage | None = None,
                    steps: StepLog | None = None) -> dict[str, float]:
    model.train()
    if steps is not None:
        steps.start_epoch(epoch)
    parts.encoder.train()  # a frozen encoder stays in eval mode
    loader.sampler.set_epoch(epoch)
    loader.dataset.set_epoch(epoch)
    # Synonym draws: the same stream on every rank, drawn for the global batch (see `_synonyms`).
    gen = torch.Generator().manual_seed(cfg.run.seed * 7919 + epoch)
    gen_classes = torch.Generator().manual_seed(cfg.run.seed * 104_729 + epoch)  # PCLE class subsets
    n_cls = len(parts.bundle.class_names)
    sums: dict[str, float] = {}
    n_seen, t0 = 0, time.perf_counter()
    for x, y, _ in _track(loader, f"epoch {epoch + 1}/{cfg.optim.epochs}", progress and env.main):
        x, y = x.to(env.device, non_blocking=True), y.to(env.device, non_blocking=True)
        classes = None
        if cfg.prompt.method == "pcle" and cfg.prompt.train_classes:
            classes = class_subset(all_gather_plain(y), n_cls, cfg.prompt.train_classes, gen_classes)
        hybrid = cfg.prompt.method == "pcle" and cfg.prompt.hybrid
        if hybrid:  # learned context + one synonym per sample (and one per class for the class text)
            with autocast(env.device, env.amp):  # the prompts run through the tower in the step's precision,
                text_sample, class_text = _hybrid_text(  # their embeddings come back in fp32 (encode_rows)
                    unwrap(model), parts, y, gen, env, cfg.prompt.hybrid_class_text)
                out = fp32_outputs(model(x, class_text=class_text))
            out["text_sample"] = text_sample
        else:
            out = forward(model, parts, cfg, x, env, classes)
        if cfg.prompt.method == "pcle" and cfg.loss.prompt_pull:  # KgCoOp's target: the class's synonym mean
            out["prompt_target"] = parts.bank.classes if classes is None else parts.bank.classes[classes]
        if cfg.prompt.method == "pcle" and not hybrid:
            pos = y
            if classes is not None:  # positions of each sample's class inside the subset
                pos = out["sim_labels"] = positions_in(classes, y, n_cls)
            out["text_sample"] = out["class_text"][pos]  # (B, D) the learned prompt of each sample's class
        elif not hybrid:
            out["text_sample"] = _synonyms(parts, y, gen, env)  # (B, D) one random synonym per sample
        # (B, 4, D): the part descriptions of each sample's class (encoded live when the encoder is fine-tuned)
        out["text_parts"] = (parts.bank.parts if parts.encoder.frozen else parts.bank.live_parts(parts.encoder))[y]
        # Under DDP every rank computes the loss of the global batch (the contrastive term does not split).
        terms = total_loss(*gather_outputs(out, y), cfg.loss)
        opt.zero_grad(set_to_none=True)
        scaler.scale(terms["loss"]).backward()
        step_all(opt, scaler)
        if ema is not None:
            ema.update(unwrap(model))
        if not math.isfinite(terms["loss"].item()):
            raise FloatingPointError(f"loss became {terms['loss'].item()} at epoch {epoch + 1}: lower optim.lr")
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + v.item() * len(y)
        sums["correct"] = sums.get("correct", 0.0) + (out["logits"].argmax(1) == y).sum().item()
        n_seen += len(y)
        if steps is not None:  # the expected-duration line, and progress lines in a log
            steps.step(len(y) * env.world)
    elapsed = time.perf_counter() - t0
    if env.world > 1:  # train accuracy over all ranks' samples (the loss terms are global already)
        counts = torch.tensor([sums.get("correct", 0.0), float(n_seen)], dtype=torch.float64)
        dist.all_reduce(counts)
        sums["correct"] = float(counts[0]) * n_seen / max(float(counts[1]), 1.0)
    stats = {k: v / max(n_seen, 1) for k, v in sums.items()}
    stats["train_top1"] = stats.pop("correct", 0.0) * 100
    stats["samples_per_s"] = n_seen * env.world / max(elapsed, 1e-9)
    stats["epoch_seconds"] = elapsed
    return stats


def _synonyms(parts: Parts, y: torch.Tensor, gen: torch.Generator, env: Env) -> torch.Tensor:
    """One random synonym per sample; under DDP the draws of the global batch, sliced like the sampler.

    Rank r holds global positions r, r+W, ... of the batch, so it takes u[r::W] of the B draws one
    process would make: the ranks together draw exactly what a single process draws. A fine-tuned
    encoder embeds the drawn texts live (with gradients).
    """
    bank = parts.bank
    u = torch.rand(len(y) * env.world, generator=gen)[env.rank :: env.world].to(y.device)
    idx = bank.pick_index(y, u)
    return bank.synonyms[idx] if parts.encoder.frozen else bank.live_synonyms(parts.encoder, idx)


def _hybrid_text(model: PromptedContrastiveModel, parts: Parts, y: torch.Tensor, gen: torch.Generator,
                 env: Env, class_text: str = "draw") -> tuple[torch.Tensor, torch.Tensor]:
    """PCLE's hybrid prompt for one step: (B, D) the learned context + one synonym drawn per sample (the draw
    PCKE makes), and (C, D) the class text: the learned context + one synonym drawn per class
    (`prompt.hybrid_class_text=draw`; every distinct prompt encoded once) or the mean of all the class's
    synonym prompts, as at test (`mean`)."""
    bank = parts.bank
    u = torch.rand(len(y) * env.world, generator=gen)[env.rank :: env.world].to(y.device)
    n_cls = len(bank.counts)
    u_cls = torch.rand(n_cls, generator=gen).to(y.device)
    if class_text == "mean":  # every synonym prompt: the class text as at test, the samples' rows from it
        emb = model.prompt_learner.encode_rows(parts.encoder)  # (S, D)
        return emb[bank.pick_index(y, u)], model.prompt_learner.class_means(emb)
    if class_text != "draw":
        raise ValueError(f"prompt.hybrid_class_text must be draw or mean, not '{class_text}'")
    rows = torch.cat([bank.pick_index(y, u), bank.pick_index(torch.arange(n_cls, device=y.device), u_cls)])
    uniq, inverse = torch.unique(rows, return_inverse=True)
    emb = model.prompt_learner.encode_rows(parts.encoder, uniq)[inverse]  # (B + C, D)
    return emb[: len(y)], emb[len(y):]


def _strip_module(state: dict) -> dict:
    """Accept state dicts saved from a DDP-wrapped (or compiled) model: drop 'module.'/'_orig_mod.'."""
    out = {}
    for k, v in state.items():
        for prefix in ("module.", "_orig_mod."):
            while k.startswith(prefix):
                k = k[len(prefix):]
        out[k] = v
    return out


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoint_state(model, opt, scaler, cfg: Config, parts: Parts, epoch: int, history: list) -> dict:
    from recognizer.checkpoint import dataset_entries

    net = unwrap(model)
    return {
        "format": 1,
        "model": {k: v for k, v in net.state_dict().items()},
        "optimizer": opt.state_dict(),
        "scaler": scaler.state_dict(),
        "epoch": epoch,  # epochs completed
        "rng": _rng_state(),
        "config": to_yaml(cfg),
        "class_names": parts.bundle.class_names,
        **dataset_entries(parts.bundle),  # layout (whole) and centring: inference needs no dataset
        "text_encoder": parts.encoder.name,
        "text_dim": parts.encoder.dim,
        # a fine-tuned text tower (GAP) is part of the run's state; a frozen one is rebuilt from the config
        "text_encoder_state": None if parts.encoder.frozen else parts.encoder.state_dict(),
        "input_shape": list(parts.bundle.train.data.shape[1:]),  # (C, T_max, V, M)
        "history": history,
    }


def write_scores(run: Path, tag: str, scores: np.ndarray, labels: np.ndarray, names: list[str]) -> None:
    atomic_save_array(run / f"scores_{tag}.npy", scores.astype(np.float32))
    atomic_save_array(run / f"labels_{tag}.npy", labels.astype(np.int64))
    atomic_write_text(run / f"samples_{tag}.txt", "\n".join(names) + "\n")


def train(cfg: Config, out: str | Path, resume: bool = False, stop_after: int | None = None,
          progress: bool = True, extend_to: int | None = None, progress_every: float = 30.0) -> dict:
    """Train (or resume) a run in folder `out`; returns the metrics written to metrics.json.

    With `resume`, the run's own config (from its checkpoint) governs everything, the environment
    included; `extend_to` then continues a run to that many epochs (the schedule goes on unchanged).
    `progress_every`: seconds between the progress lines inside an epoch when the output is not a terminal.
    """
    run = Path(out)
    cfg, state = prepare_run(cfg, run, resume, extend_to)  # every rank checks: no rank is left waiting
    env = setup_env(cfg)
    ckpt_path = run / "checkpoint.pt"
    torch.manual_seed(cfg.run.seed)
    parts = build_parts(cfg, env)
    model = parts.model
    if cfg.run.sync_bn and env.world > 1:  # BatchNorm statistics of the global batch (CPU/gloo too)
        model = sync_batchnorm(model, env.device)
    opt, scaler = build_optimizer(model, parts, cfg, env)
    start, history = 0, []
    if state is not None:
        unwrap(model).load_state_dict(_strip_module(state["model"]))
        unwrap(model).fusion.copy_(torch.tensor(LOGITS_ONLY))  # epochs score the head; `finish` picks the rule again
        if state.get("text_encoder_state") is not None:
            parts.encoder.load_state_dict(state["text_encoder_state"])
            parts.bank = parts.bank.refresh(parts.encoder)
        opt.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        start, history = state["epoch"], list(state["history"])
        _set_rng_state(state["rng"])
    ema = WeightAverage(unwrap(model), cfg.optim.ema_decay) if cfg.optim.ema_decay else None
    if ema is not None and state is not None and state.get("ema") is not None:
        ema.load_state_dict(state["ema"])
    if env.world > 1:
        ids = [env.device.index] if env.device.type == "cuda" else None
        # GAP (no bridger, no interaction) or switched-off loss terms leave parameters unused.
        unused = not (cfg.model.bridger or cfg.model.interaction) or not (
            cfg.loss.contrastive and cfg.loss.parts and cfg.loss.after)
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=unused)
    apply_fast_path(unwrap(model), cfg.model.fused_subsets, cfg.run.compile, cfg.model.channels_last,
                    warn=console.print)
    train_loader = make_loader_for(parts.bundle.train, parts.bundle.layout, cfg, True, env)
    if state is None:  # a step budget (optim.steps) fixes the epochs now that the split's size is known
        cfg = with_step_budget(cfg, len(train_loader))
    test_loader = make_loader_for(parts.bundle.test, parts.bundle.layout, cfg, False, env)
    val_loader = make_loader_for(parts.val, parts.bundle.layout, cfg, False, env) if parts.val is not None else None
    writer, epoch_log = None, EpochLog(run, cfg.optim.epochs, start)
    if env.main:
        run.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run / "config.yaml", to_yaml(cfg))
        write_provenance(run, _data_provenance(cfg, parts), env.device, resumed=state is not None)
        budget = f" (optim.steps {cfg.optim.steps}: {len(train_loader)} steps per epoch)" if cfg.optim.steps else ""
        epoch_log.note(f"{'resumed after epoch ' + str(start) if start else 'started'}: {cfg.method} on "
                       f"{parts.bundle.name}, {cfg.optim.epochs} epochs{budget}, device {env.device}")
        if (slow := bf16_warning(env.device, env.amp)) is not None:
            epoch_log.note(slow)
        writer = _tensorboard(run)
    end = cfg.optim.epochs if stop_after is None else min(cfg.optim.epochs, start + stop_after)
    steps = StepLog(epoch_log, len(train_loader), end, start, periodic=not bars_wanted(progress, console),
                    every_s=progress_every) if env.main else None
    for epoch in range(start, end):
        factor = lr_factor(cfg, epoch, cfg.optim.batch_size)
        for g in opt.param_groups:
            g["lr"] = g["base_lr"] * factor
        lr = cfg.optim.lr * factor
        grad_epochs = cfg.model.interaction_grad_epochs
        unwrap(model).interaction_grad = cfg.model.interaction_grad if not grad_epochs or epoch < grad_epochs else 1.0
        stats = train_one_epoch(model, parts, cfg, env, train_loader, opt, scaler, epoch, progress, ema, steps)
        if not parts.encoder.frozen:  # class and part embeddings from the fine-tuned weights
            parts.bank = parts.bank.refresh(parts.encoder)
        stats.update(epoch=epoch + 1, lr=lr, logit_scale=float(unwrap(model).scale.detach()))
        last = epoch + 1 == cfg.optim.epochs
        class_text = None  # (C, D), encoded once per evaluated epoch (PCLE runs its prompts through the encoder)
        if env.main:  # text cosines, every logit scale, contrastive_after against chance, context drift
            class_text = final_class_text(unwrap(model), parts, cfg)
            stats.update(epoch_diagnostics(unwrap(model), class_text, len(parts.bundle.class_names)))
        if env.main and ((epoch + 1) % cfg.run.eval_every == 0 or last):
            net = unwrap(model)
            scores, labels = predict(net, test_loader, env, class_text)
            stats.update(test_top1=topk(scores, labels, 1), test_top5=topk(scores, labels, 5))
            if val_loader is not None:  # best.pt is chosen on validation, never on test
                scores, labels = predict(net, val_loader, env, class_text)
                stats.update(val_top1=topk(scores, labels, 1), val_top5=topk(scores, labels, 5))
        history.append(stats)
        if env.main:
            _log_epoch(run, writer, history)
            epoch_log.epoch(stats)
            warning = interaction_warning(stats, cfg.optim.epochs)
            if warning:
                epoch_log.note(warning)
            saved = checkpoint_state(model, opt, scaler, cfg, parts, epoch + 1, history)
            if ema is not None:
                saved["ema"] = ema.state_dict()
            atomic_torch_save(saved, ckpt_path)
            if is_new_best(history):  # only after an evaluated epoch, so class_text is set
                atomic_torch_save(usable_for_inference(saved, class_text), run / "best.pt")
    if env.world > 1:
        dist.barrier()
    if end < cfg.optim.epochs:
        return {"epochs": end, "stopped": True}
    if not env.main:  # under torchrun only rank 0 evaluates and writes
        return {"epochs": end, "worker": True}
    return finish(run, unwrap(model), opt, scaler, cfg, parts, env, test_loader, val_loader, history, progress, ema)


def finish_average(run: Path, ema: WeightAverage, opt, scaler, cfg: Config, parts: Parts, env: Env,
                   test_loader: DataLoader, val_loader: DataLoader | None, history: list) -> dict:
    """The EMA weights with their own class text and the same inference rule: ema.pt and their test numbers."""
    model = ema.model
    model.class_text.copy_(final_class_text(model, parts, cfg))
    inference = choose_inference(model, cfg, env, val_loader)
    if val_loader is not None and "val_top1" not in inference:
        record_head_val_top1(inference, *predict(model, val_loader, env))
    state = checkpoint_state(model, opt, scaler, cfg, parts, cfg.optim.epochs, history)
    state["inference"] = inference
    atomic_torch_save(state, run / "ema.pt")
    scores, labels, logits = predict(model, test_loader, env, with_logits=True)
    summary = accuracy_summary(scores, labels, parts.bundle.class_names)
    return {"top1": summary["top1"], "top5": summary["top5"], "top1_logits": topk(logits, labels, 1),
            "inference": inference, "decay": cfg.optim.ema_decay}


def finish(run: Path, model: PromptedContrastiveModel, opt, scaler, cfg: Config, parts: Parts, env: Env,
           test_loader: DataLoader, val_loader: DataLoader | None, history: list, progress: bool,
           ema: WeightAverage | None = None) -> dict:
    """Store the final class text in the checkpoint, write scores and metrics.json."""
    model.class_text.copy_(final_class_text(model, parts, cfg))
    inference = choose_inference(model, cfg, env, val_loader)  # never looks at the test split
    if val_loader is not None:  # scored under the rule just set: scores_val.npy, and a fixed rule's record
        v_scores, v_labels = predict(model, val_loader, env)
        write_scores(run, "val", v_scores, v_labels, parts.val.names)
        record_head_val_top1(inference, v_scores, v_labels)
    state = checkpoint_state(model, opt, scaler, cfg, parts, cfg.optim.epochs, history)
    state["inference"] = inference
    atomic_torch_save(state, run / "checkpoint.pt")
    # stored class text: no encoder
    scores, labels, logits = predict(model, test_loader, env, progress=progress, with_logits=True)
    write_scores(run, "test", scores, labels, parts.bundle.test.names)
    speeds = [h["samples_per_s"] for h in history]
    metrics = {
        "method": cfg.method,
        "dataset": parts.bundle.name,
        "stream": cfg.data.clip.stream,
        **accuracy_summary(scores, labels, parts.bundle.class_names),
        "top1_logits": topk(logits, labels, 1),  # the head alone: every method under GAP's test rule
        "epochs": cfg.optim.epochs,
        "train_samples_per_s": float(np.median(speeds)) if speeds else 0.0,
        "text_encoder": parts.encoder.name,
        "inference": inference,
        "device": str(env.device),
        "parameters": sum(p.numel() for p in model.parameters()),
        **best_summary(history),
    }
    if ema is not None:  # the averaged weights scored beside the final ones, written as ema.pt
        metrics["ema"] = finish_average(run, ema, opt, scaler, cfg, parts, env, test_loader, val_loader, history)
    atomic_write_text(run / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    return metrics


def _data_provenance(cfg: Config, parts: Parts) -> dict:
    splits = {"train": parts.bundle.train, **({"val": parts.val} if parts.val is not None else {}),
              "test": parts.bundle.test}
    return data_record(parts.bundle.name, cfg.data.root, splits, cfg.prompt.corpus or parts.bundle.corpus)


def _tensorboard(run: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is a dependency; stay usable without it
        return None
    return SummaryWriter(str(run / "tb"))


def _log_epoch(run: Path, writer, history: list[dict]) -> None:
    """log.jsonl is rewritten from the history the checkpoint holds, so a resumed run never repeats a line."""
    atomic_write_text(run / "log.jsonl", "".join(json.dumps(h) + "\n" for h in history))
    stats = history[-1]
    if writer is not None:
        for k, v in stats.items():
            if k != "epoch":
                writer.add_scalar(k.replace("_", "/", 1) if k.startswith(("test_", "train_")) else f"train/{k}",
                                  v, stats["epoch"])
        writer.flush()
