"""The skeleton-text contrastive model: CTR-GCN + heads + (bridger, cross-modality attention).

The text encoder is not a submodule: it is rebuilt from the config (and, when fine-tuned, its weights
travel in the checkpoint separately). What the model owns on the text side is PCLE's prompt context
and `class_text`, the final class text embeddings written into the checkpoint so that inference needs
no text encoder. Shapes: B batch, C classes (or a subset K), D text dim, Q bridged tokens.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from recognizer.config import ModelConfig
from recognizer.method.ctrgcn import CTRGCN
from recognizer.method.graph import PART_GROUP_NAMES, Layout
from recognizer.method.interaction import Bridger, CrossModalityAttention
from recognizer.method.lst import lst_matrix
from recognizer.method.prompt_learner import PromptLearner
from recognizer.method.text_encoder import TextEncoder

SCALE_TERMS = ("global", *PART_GROUP_NAMES, "after")  # one logit scale per contrastive term (GAP: 5)
LOGITS_ONLY = (1.0, 0.0)  # `fusion` weights (logits, similarity): the classification head alone, GAP's rule


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine similarity along the last axis (broadcasting)."""
    return (F.normalize(a.float(), dim=-1) * F.normalize(b.float(), dim=-1)).sum(-1)


def scale_grad(x: torch.Tensor, scale: float) -> torch.Tensor:
    """x in the forward pass; its gradient times `scale` in the backward pass (0: a stop-gradient)."""
    if scale == 0.0:
        return x.detach()
    return x.detach() + scale * (x - x.detach())


class PromptedContrastiveModel(nn.Module):
    def __init__(self, cfg: ModelConfig, layout: Layout, num_classes: int, text_dim: int,
                 in_channels: int = 3, num_person: int = 2, prompt_learner: PromptLearner | None = None,
                 lst_k: int = 0):
        super().__init__()
        self.cfg = cfg
        self.register_buffer("lst", torch.from_numpy(lst_matrix(layout, lst_k)), persistent=False)  # (V, V)
        self.skeleton = CTRGCN(layout.adjacency(), in_channels, num_person, cfg.width, cfg.kernel, cfg.dilations)
        c = self.skeleton.out_channels
        self.classifier = nn.Linear(c, num_classes)
        nn.init.normal_(self.classifier.weight, 0, math.sqrt(2.0 / num_classes))
        self.global_head = nn.Linear(c, text_dim)
        self.part_heads = nn.ModuleList([nn.Linear(c, text_dim) for _ in PART_GROUP_NAMES])
        for name in PART_GROUP_NAMES:
            self.register_buffer(f"joints_{name}", torch.tensor(layout.parts[name]), persistent=False)
        self.bridger = (Bridger(c, text_dim, cfg.bridger_queries, cfg.heads, dropout=cfg.dropout,
                                queries=cfg.bridger_mode, residual=cfg.bridger_residual) if cfg.bridger else None)
        self.token_proj = nn.Linear(c, text_dim) if cfg.interaction and not cfg.bridger else None
        self.interaction = CrossModalityAttention(text_dim, cfg.heads, cfg.dropout) if cfg.interaction else None
        if cfg.scale_mode not in ("exp", "linear"):
            raise ValueError(f"model.scale_mode must be exp or linear, not '{cfg.scale_mode}'")
        n_scales = len(SCALE_TERMS) if cfg.separate_scales else 1
        self.logit_scale = nn.Parameter(torch.full((n_scales,), math.log(1.0 / cfg.init_temperature)))
        self.prompt_learner = prompt_learner
        self.register_buffer("class_text", torch.zeros(num_classes, text_dim))  # (C, D), saved
        # Inference: scores = fusion[0] * logits + fusion[1] * scale_after * sim_after; set from validation.
        self.register_buffer("fusion", torch.tensor(LOGITS_ONLY))
        self.interaction_grad = cfg.interaction_grad  # set per epoch by training (model.interaction_grad_epochs)

    @property
    def interacts(self) -> bool:
        return self.bridger is not None or self.interaction is not None

    def scales(self) -> torch.Tensor:
        """(len(SCALE_TERMS),) logit scales: exp(parameter) clamped (CLIP), or the parameter itself (GAP)."""
        s = self.logit_scale
        s = s.clamp(max=math.log(self.cfg.max_logit_scale)).exp() if self.cfg.scale_mode == "exp" else s
        # always a view, never the bare parameter: an output that is a leaf is invisible to DDP's search for
        # unused parameters, which then marks it ready twice (GAP's linear scales under torchrun failed so)
        return s.expand(len(SCALE_TERMS))

    @property
    def scale(self) -> torch.Tensor:
        return self.scales()[0]

    def class_embeddings(self, encoder: TextEncoder | None = None, frozen: torch.Tensor | None = None,
                         classes: torch.Tensor | None = None) -> torch.Tensor:
        """(C, D): PCLE prompts through the encoder (only `classes`, if given: (K, D)), else the given
        frozen ones, else the stored ones."""
        if self.prompt_learner is not None and encoder is not None:
            return self.prompt_learner(encoder, classes)
        return frozen if frozen is not None else self.class_text

    def skeleton_features(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C_in, T, V, M) -> last feature map averaged over persons (B, C', T', V)."""
        b, m = x.shape[0], x.shape[-1]
        x = torch.einsum("uv,bctvm->bctum", self.lst.to(x.dtype), x)  # GAP's (I - P^k) x per frame
        fmap = self.skeleton(x)  # (B*M, C', T', V)
        return fmap.view(b, m, *fmap.shape[1:]).mean(1)

    def pool_parts(self, fmap: torch.Tensor) -> torch.Tensor:
        """(B, C', T', V) -> (B, 4, C'): the mean over each part group's joints (GAP's part pooling)."""
        return torch.stack([fmap[..., getattr(self, f"joints_{n}")].mean((2, 3)) for n in PART_GROUP_NAMES], 1)

    def forward(self, x: torch.Tensor, encoder: TextEncoder | None = None,
                class_text: torch.Tensor | None = None, classes: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """x: (B, C_in, T, V, M). Returns logits (B, C) and the embeddings the losses need; with PCLE's
        `classes` (K,), the text side and the similarities cover only those classes: (K, D), (B, K)."""
        fmap = self.skeleton_features(x)  # (B, C', T', V)
        pooled = fmap.mean((2, 3))  # (B, C')
        out: dict[str, torch.Tensor] = {"logits": self.classifier(pooled), "logit_scales": self.scales()}
        out["skel_global"] = self.global_head(pooled)  # (B, D)
        parts = self.pool_parts(fmap)  # (B, 4, C')
        out["skel_parts"] = torch.stack([h(parts[:, g]) for g, h in enumerate(self.part_heads)], 1)  # (B, 4, D)
        text = self.class_embeddings(encoder, class_text, classes)  # (C, D) or (K, D)
        out["class_text"] = text
        out["sim_before"] = cosine(out["skel_global"][:, None], text[None])  # (B, C)
        if self.interacts:
            out.update(self._interact(fmap, text))
        return out

    def _interact(self, fmap: torch.Tensor, text: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.interaction_grad != 1.0:  # same values; the gradient into the backbone scaled (0: stopped)
            fmap = scale_grad(fmap, self.interaction_grad)
        tokens = fmap.flatten(2).transpose(1, 2)  # (B, T'V, C')
        skel = self.bridger(tokens, text) if self.bridger is not None else self.token_proj(tokens)  # (B, Q, D)
        per_class = self.bridger is not None and self.bridger.mode == "text"  # token c was queried by class c
        text_b = text[None].expand(skel.shape[0], -1, -1)  # (B, C, D)
        if self.interaction is not None:
            skel, text_b = self.interaction(skel, text)  # (B, Q, D), (B, C, D)
        if per_class:
            sim = cosine(skel, text_b)  # (B, C): class-c skeleton token against class-c text
        else:
            sim = cosine(skel.mean(1, keepdim=True), text_b)  # (B, C)
        return {"sim_after": sim, "skel_after": skel.mean(1)}

    def scores(self, out: dict[str, torch.Tensor]) -> torch.Tensor:
        """Class scores for inference: fusion[0] * logits + fusion[1] * scale * similarity after interaction."""
        scores = self.fusion[0] * out["logits"].float()
        if "sim_after" in out and float(self.fusion[1]) != 0.0:
            scores = scores + self.fusion[1] * out["logit_scales"][-1].float() * out["sim_after"]
        return scores

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        state_dict.setdefault(prefix + "fusion", torch.tensor(LOGITS_ONLY))  # checkpoints from before the buffer
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
