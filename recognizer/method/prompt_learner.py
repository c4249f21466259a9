"""PCLE's learnable prompt context (CoOp-style).

Each class prompt is  [SOS] ctx_1 ... ctx_M <class name tokens> . [EOS]  at token-embedding level.
The M context vectors are the only text-side parameters: shared by all classes (default) or one set
per class, optionally initialised from words such as "a person is". The encoder runs on the C class
prompts once per step, cut to the longest real prompt, never on the B samples of a batch.
"""

from __future__ import annotations

import torch
from torch import nn

from recognizer.method.text_encoder import TextEncoder


class PromptLearner(nn.Module):
    def __init__(self, encoder: TextEncoder, class_names: list[str], n_ctx: int = 16,
                 class_specific: bool = False, ctx_init: str = "", generator: torch.Generator | None = None):
        super().__init__()
        emb = encoder.token_embedding()
        width = emb.weight.shape[1]
        ids, mask = self._class_token_ids(encoder, class_names, n_ctx)
        with torch.no_grad():
            base = emb(ids.to(emb.weight.device)).float().cpu()  # (C, L, W)
        # Frozen pieces around the context; rebuilt from the encoder, so not saved with the model.
        self.register_buffer("prefix", base[:, :1].clone(), persistent=False)  # (C, 1, W)  [SOS]
        self.register_buffer("suffix", base[:, 1 + n_ctx :].clone(), persistent=False)  # (C, L-1-M, W)
        self.register_buffer("mask", mask, persistent=False)  # (C, L)
        n_cls = len(class_names)
        ctx = torch.randn(n_cls if class_specific else 1, n_ctx, width, generator=generator) * 0.02
        if ctx_init:
            init_ids = encoder.tokenizer(ctx_init, add_special_tokens=False)["input_ids"]
            if len(init_ids) > n_ctx:
                raise ValueError(f"prompt.ctx_init '{ctx_init}' is {len(init_ids)} tokens, more than n_ctx={n_ctx}")
            with torch.no_grad():
                ctx[:, : len(init_ids)] = emb(torch.tensor(init_ids, device=emb.weight.device)).float().cpu()
        self.ctx = nn.Parameter(ctx)  # (1 or C, M, W), kept in fp32 under autocast
        self.n_ctx = n_ctx

    @staticmethod
    def _class_token_ids(encoder: TextEncoder, names: list[str], n_ctx: int) -> tuple[torch.Tensor, torch.Tensor]:
        """[start] + M placeholders + tokens of 'name.' + [end], padded to the longest prompt."""
        tok = encoder.tokenizer
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        room = encoder.max_length - n_ctx - 2
        rows = [[encoder.start_id] + [pad] * n_ctx + tok(f"{n}.", add_special_tokens=False)["input_ids"][:room]
                + [encoder.end_id] for n in names]
        length = max(len(r) for r in rows)
        ids = torch.full((len(rows), length), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), length), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = 1
        return ids, mask

    def prompts(self, classes: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(K, L', W) token embeddings and (K, L') mask of the prompts of `classes` (default: all C),
        cut to the longest real prompt among them."""
        prefix, suffix, mask, ctx = self.prefix, self.suffix, self.mask, self.ctx
        if classes is not None:
            prefix, suffix, mask = prefix[classes], suffix[classes], mask[classes]
            ctx = ctx if ctx.shape[0] == 1 else ctx[classes]
        ctx = ctx.expand(prefix.shape[0], -1, -1)
        length = int(mask.sum(1).max())
        embeds = torch.cat([prefix, ctx.to(prefix.dtype), suffix], dim=1)[:, :length]
        return embeds, mask[:, :length]

    def forward(self, encoder: TextEncoder, classes: torch.Tensor | None = None) -> torch.Tensor:
        """(C, D) class text embeddings, or (K, D) for a subset of classes; gradients reach only `ctx`."""
        with torch.autocast(device_type=self.ctx.device.type, enabled=False):
            embeds, mask = self.prompts(classes)
        return encoder.encode_embeddings(embeds, mask).float()
