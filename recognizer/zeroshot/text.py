"""The text side of zero-shot evaluation: class text embeddings for any class names, and the score.

`class_text_embeddings` is the one place that turns class names into text embeddings with a trained
run's own text side (the frozen encoder rebuilt from the run's config, PCLE's learned context from
its checkpoint); `zeroshot_scores` is the one place that turns skeleton embeddings and those class
embeddings into class scores. Text modes:

- ``mean`` (PCKE/GAP's class embedding): the mean of the L2-normalised embeddings of the class name and its
  corpus synonyms, exactly the class embedding PCKE trains and infers with;
- ``best``: best-of the same synonyms: a clip's score for a class is its highest cosine over the class's synonyms;
- ``name``: the class name alone in a template (default "a person is {}."): the no-description baseline;
- ``learned`` (PCLE): the learned context vectors + the class name through the encoder, as in training
  (a run with class-specific context has nothing to give unseen classes and is refused).

With ``parts_weight`` w > 0, the four part-group descriptions of the corpus join in: score =
(cos(global, class) + w * mean over parts of cos(part embedding, part description)) / (1 + w).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from corpus import ClassPrompts, CorpusError, load_corpus, norm_class_name, select_classes
from recognizer.config import Config

TEXT_MODES = ("mean", "best", "name", "learned")
DEFAULT_TEMPLATE = "a person is {}."


@dataclass
class ClassText:
    """Class text embeddings (all L2-normalised) for a list of class names."""

    names: list[str]
    classes: torch.Tensor  # (C, D)
    synonyms: torch.Tensor | None = None  # (S, D) best-of mode only
    owner: torch.Tensor | None = None  # (S,) class of each synonym row
    parts: torch.Tensor | None = None  # (C, 4, D) part-group descriptions, when parts are used


def corpus_for(path: str | Path, names: list[str]) -> list[ClassPrompts]:
    """The corpus records of `names` (in that order); every missing class is listed in one error."""
    records = load_corpus(path)
    have = {norm_class_name(r.name) for r in records}
    missing = [n for n in names if norm_class_name(n) not in have]
    if missing:
        raise CorpusError(f"{path}: no prompts for {len(missing)} class(es): {'; '.join(missing)} "
                          f"(add them, e.g. `pcle prompts generate --classes FILE`, or pass --prompts CORPUS)")
    return select_classes(records, names, Path(path))


def _unit(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x.float(), dim=-1)


@torch.no_grad()
def class_text_embeddings(cfg: Config, ckpt: dict, names: list[str], mode: str, corpus: str | Path | None,
                          encoder=None, parts: bool = False, template: str = DEFAULT_TEMPLATE) -> ClassText:
    """Embed classes `names` with a trained run's text side (see the module docstring for `mode`).

    cfg/ckpt: the run's config and checkpoint dict; corpus: the prompt corpus (needed by mean, best and
    parts); encoder: a text encoder built from cfg.text (built here if None).
    """
    from recognizer.method.prompt_learner import PromptLearner
    from recognizer.method.text_bank import build_text_bank
    from recognizer.method.text_encoder import build_text_encoder

    if mode not in TEXT_MODES:
        raise ValueError(f"unknown text mode '{mode}' (choose from {', '.join(TEXT_MODES)})")
    encoder = encoder if encoder is not None else build_text_encoder(cfg.text)
    bank = None
    if mode in ("mean", "best") or parts:
        if corpus is None:
            raise ValueError(f"text mode '{mode}'{' with parts' if parts else ''} needs a prompt corpus (--prompts)")
        bank = build_text_bank(encoder, corpus_for(corpus, names), cfg.prompt.cache_dir)
    out = ClassText(list(names), torch.empty(0))
    if mode in ("mean", "best"):
        out.classes = _unit(bank.classes)
        if mode == "best":
            out.synonyms = _unit(bank.synonyms)
            out.owner = torch.repeat_interleave(torch.arange(len(names)), bank.counts)
    elif mode == "name":
        out.classes = _unit(encoder.encode([template.format(n) for n in names]))
    else:
        out.classes = _unit(_learned(cfg, ckpt, names, encoder, PromptLearner))
    if parts:
        out.parts = _unit(bank.parts)
    return out


def _learned(cfg: Config, ckpt: dict, names: list[str], encoder, learner_cls) -> torch.Tensor:
    """PCLE: the checkpoint's context vectors in front of each class name, through the encoder."""
    ctx = ckpt["model"].get("prompt_learner.ctx")
    if ctx is None:
        raise ValueError(f"text mode 'learned' needs a PCLE run; this run is {cfg.method} (use mean, best or name)")
    if cfg.prompt.class_specific:
        raise ValueError("this PCLE run learned class-specific context (prompt.class_specific=true): unseen classes "
                         "have none; use text mode 'name' or a run with shared context")
    # the context's own length (prompt.init_length=words sets it from ctx_init), its pooling; the class name
    # follows it (a hybrid run's synonyms are not known for unseen classes)
    learner = learner_cls(encoder, names, int(ctx.shape[1]), False, cfg.prompt.ctx_init,
                          pooling=cfg.prompt.pooling).to(encoder.device)
    learner.ctx.data.copy_(ctx.to(learner.ctx.dtype))
    return learner(encoder)


def zeroshot_scores(skel_global: torch.Tensor, skel_parts: torch.Tensor | None, text: ClassText,
                    parts_weight: float = 0.0) -> torch.Tensor:
    """(N, C) cosine scores of skeleton embeddings against class text (before any interaction)."""
    g = _unit(skel_global)
    if text.synonyms is not None:  # best-of synonyms
        sims = g @ text.synonyms.T  # (N, S)
        idx = text.owner.expand(len(g), -1)
        scores = torch.full((len(g), len(text.names)), -2.0).scatter_reduce(1, idx, sims, "amax")
    else:
        scores = g @ text.classes.T
    if parts_weight and text.parts is not None and skel_parts is not None:
        part = torch.einsum("npd,cpd->ncp", _unit(skel_parts), text.parts).mean(-1)  # (N, C)
        scores = (scores + parts_weight * part) / (1 + parts_weight)
    return scores
