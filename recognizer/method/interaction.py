"""Skeleton-language interaction: the bridger and cross-modality attention.

Bridger (language-aware, the default): the class text embeddings, projected, are the queries of a
cross-attention over the skeleton tokens (the T' x V cells of the last CTR-GCN feature map, projected
to D), followed by an MLP: one skeleton token per class, each pooled with that class's text in view. With
`model.bridger_residual=false` the query is not added back, so a bridged token is pooled skeleton only
and its similarity to a class text has to come from the skeleton (with the residual, the class text
sits inside its own token and the per-class similarity hardly depends on the skeleton).
`model.bridger_mode=learned` swaps the text queries for a few learnable text-free queries (the
ablation of "language-aware").

Cross-modality attention: the bridged skeleton tokens attend to the C class text embeddings, and the
class text embeddings attend to the skeleton tokens (two multi-head attention blocks with residuals
and layer norm), giving refined embeddings of both modalities per sample.
"""

from __future__ import annotations

import torch
from torch import nn


class Bridger(nn.Module):
    def __init__(self, skel_dim: int, dim: int, num_queries: int = 8, heads: int = 8, mlp_ratio: int = 2,
                 dropout: float = 0.0, queries: str = "text", residual: bool = True):
        super().__init__()
        if queries not in ("text", "learned"):
            raise ValueError(f"model.bridger_mode must be text or learned, not '{queries}'")
        self.mode, self.residual = queries, residual
        self.proj = nn.Linear(skel_dim, dim)
        if queries == "learned":
            self.queries = nn.Parameter(torch.randn(num_queries, dim) * 0.02)
        else:
            self.query_proj = nn.Linear(dim, dim)
        self.norm_q, self.norm_kv = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.mlp = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, mlp_ratio * dim), nn.GELU(),
                                 nn.Dropout(dropout), nn.Linear(mlp_ratio * dim, dim))

    def forward(self, tokens: torch.Tensor, text: torch.Tensor | None = None) -> torch.Tensor:
        """(B, N, C_skel) skeleton tokens (+ (C, D) class text) -> (B, Q, D) language-aware skeleton tokens,
        Q = C with text queries, else the number of learned queries."""
        kv = self.norm_kv(self.proj(tokens))  # (B, N, D)
        q = self.queries if self.mode == "learned" else self.query_proj(text.to(kv.dtype))  # (Q, D)
        q = q.unsqueeze(0).expand(tokens.shape[0], -1, -1)  # (B, Q, D)
        x = self.attn(self.norm_q(q), kv, kv, need_weights=False)[0]  # (B, Q, D) a weighted mean of skeleton tokens
        if self.residual:  # the query (class text) added back: the token then carries its class's text too
            x = q + x
        return x + self.mlp(x)


class CrossModalityAttention(nn.Module):
    def __init__(self, dim: int, heads: int = 8, dropout: float = 0.0):
        super().__init__()
        self.skel_from_text = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.text_from_skel = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm_skel, self.norm_text = nn.LayerNorm(dim), nn.LayerNorm(dim)

    def forward(self, skel: torch.Tensor, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """skel (B, Q, D), text (C, D) -> refined skel (B, Q, D), refined text per sample (B, C, D)."""
        text_b = text.unsqueeze(0).expand(skel.shape[0], -1, -1).to(skel.dtype)  # (B, C, D)
        skel_out = self.norm_skel(skel + self.skel_from_text(skel, text_b, text_b, need_weights=False)[0])
        text_out = self.norm_text(text_b + self.text_from_skel(text_b, skel, skel, need_weights=False)[0])
        return skel_out, text_out
