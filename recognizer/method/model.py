"""The skeleton-text contrastive model: CTR-GCN + heads + (bridger, cross-modality attention).

The text encoder is not a submodule: it is frozen, rebuilt from the config, and never saved. What
the model owns on the text side is PCLE's prompt context and `class_text`, the final class text
embeddings written into the checkpoint so that inference needs no text encoder.
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
from recognizer.method.prompt_learner import PromptLearner
from recognizer.method.text_encoder import TextEncoder


class PromptedContrastiveModel(nn.Module):
    def __init__(self, cfg: ModelConfig, layout: Layout, num_classes: int, text_dim: int,
                 in_channels: int = 3, num_person: int = 2, prompt_learner: PromptLearner | None = None):
        super().__init__()
        self.cfg = cfg
        self.skeleton = CTRGCN(layout.adjacency(), in_channels, num_person, cfg.width, cfg.kernel, cfg.dilations)
        c = self.skeleton.out_channels
        self.classifier = nn.Linear(c, num_classes)
        nn.init.normal_(self.classifier.weight, 0, math.sqrt(2.0 / num_classes))
        self.global_head = nn.Linear(c, text_dim)
        self.part_heads = nn.ModuleList([nn.Linear(c, text_dim) for _ in PART_GROUP_NAMES])
        for name in PART_GROUP_NAMES:
            self.register_buffer(f"joints_{name}", torch.tensor(layout.parts[name]), persistent=False)
        self.bridger = (Bridger(c, text_dim, cfg.bridger_queries, cfg.heads, dropout=cfg.dropout)
                        if cfg.bridger else None)
        self.token_proj = None if cfg.bridger else nn.Linear(c, text_dim)
        self.interaction = CrossModalityAttention(text_dim, cfg.heads, cfg.dropout) if cfg.interaction else None
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / cfg.init_temperature)))
        self.prompt_learner = prompt_learner
        self.register_buffer("class_text", torch.zeros(num_classes, text_dim))  # (C, D), saved

    @property
    def scale(self) -> torch.Tensor:
        return self.logit_scale.clamp(max=math.log(self.cfg.max_logit_scale)).exp()

    def class_embeddings(self, encoder: TextEncoder | None = None, frozen: torch.Tensor | None = None,
                         classes: torch.Tensor | None = None) -> torch.Tensor:
        """(C, D): PCLE prompts through the encoder (only `classes`, if given: (K, D)), else the given
        frozen ones, else the stored ones."""
        if self.prompt_learner is not None and encoder is not None:
            return self.prompt_learner(encoder, classes)
        return frozen if frozen is not None else self.class_text

    def forward(self, x: torch.Tensor, encoder: TextEncoder | None = None,
                class_text: torch.Tensor | None = None, classes: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """x: (B, C_in, T, V, M). Returns logits (B, C) and the embeddings the losses need; with PCLE's
        `classes` (K,), the text side and the similarities cover only those classes: (K, D), (B, K)."""
        b, m = x.shape[0], x.shape[-1]
        fmap = self.skeleton(x)  # (B*M, C', T', V)
        fmap = fmap.view(b, m, *fmap.shape[1:]).mean(1)  # (B, C', T', V)
        pooled = fmap.mean((2, 3))  # (B, C')
        out: dict[str, torch.Tensor] = {"logits": self.classifier(pooled), "logit_scale": self.scale}
        out["skel_global"] = self.global_head(pooled)  # (B, D)
        joint_means = [fmap[..., getattr(self, f"joints_{n}")].mean((2, 3)) for n in PART_GROUP_NAMES]
        out["skel_parts"] = torch.stack([h(p) for h, p in zip(self.part_heads, joint_means)], 1)  # (B, 4, D)
        text = self.class_embeddings(encoder, class_text, classes)  # (C, D) or (K, D)
        out["class_text"] = text
        if self.interaction is not None or self.bridger is not None:
            out.update(self._interact(fmap, out["skel_global"], text))
        return out

    def _interact(self, fmap: torch.Tensor, skel_global: torch.Tensor, text: torch.Tensor) -> dict[str, torch.Tensor]:
        tokens = fmap.flatten(2).transpose(1, 2)  # (B, T'V, C')
        skel = self.bridger(tokens) if self.bridger is not None else self.token_proj(tokens)  # (B, Q, D)
        res = {"sim_before": F.normalize(skel_global.float(), dim=-1) @ F.normalize(text.float(), dim=-1).T}
        if self.interaction is None:
            res["sim_after"] = F.normalize(skel.mean(1).float(), dim=-1) @ F.normalize(text.float(), dim=-1).T
            return res
        skel_r, text_r = self.interaction(skel, text)  # (B, Q, D), (B, C, D)
        s = F.normalize(skel_r.mean(1).float(), dim=-1)  # (B, D)
        res["sim_after"] = torch.einsum("bd,bcd->bc", s, F.normalize(text_r.float(), dim=-1))  # (B, C)
        return res

    def scores(self, out: dict[str, torch.Tensor]) -> torch.Tensor:
        """Class scores for inference: classifier logits, fused with similarities after interaction."""
        logits = out["logits"].float()
        if self.cfg.fuse_weight and "sim_after" in out:
            logits = logits + self.cfg.fuse_weight * out["logit_scale"] * out["sim_after"]
        return logits
