"""PCLE's learnable prompt context (CoOp-style).

Each prompt is  [SOS] ctx_1 ... ctx_M <words> . [EOS]  at token-embedding level. The M context vectors
are the only text-side parameters: shared by all classes (default) or one set per class, optionally
initialised from words such as "a person is". The encoder runs on the prompts once per step, cut to
the longest real prompt, never on the B samples of a batch.

The words after the context are the class name (CoOp; one prompt per class) or, with the hybrid
prompt (`prompt.hybrid`), each of the class's LLM synonyms (one prompt per synonym, the PCKE corpus's
texts): "replaces the prompts' context words with learnable vectors" read literally, the learned
context on top of PCKE's knowledge. A class's embedding is then the mean of its normalised synonym
prompt embeddings, as PCKE's class text is the mean of its synonym embeddings.

Why the options exist (docs/method.md has the measurements): 16 random context vectors in front of a
short class name, mean-pooled over all tokens by MiniLM, make the class prompts nearly identical
(mean off-diagonal cosine 0.935 on NW-UCLA); `init_length=words` (CoOp: M = the number of init tokens)
and `pooling=name` (pool the class-name tokens and [SEP] only) keep them apart.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from recognizer.method.text_encoder import TextEncoder

POOLINGS = ("all", "name", "cls")  # BERT-style pooling of a prompt: every real token | name + [SEP] | [CLS]
INIT_LENGTHS = ("n_ctx", "words")  # ctx_init fills the first slots of n_ctx | M = number of init tokens (CoOp)


class PromptLearner(nn.Module):
    def __init__(self, encoder: TextEncoder, class_names: list[str], n_ctx: int = 16,
                 class_specific: bool = False, ctx_init: str = "", generator: torch.Generator | None = None,
                 texts: list[str] | None = None, owner: list[int] | None = None, pooling: str = "all",
                 init_length: str = "n_ctx"):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"prompt.pooling must be one of {', '.join(POOLINGS)}, not '{pooling}'")
        if pooling != "all" and encoder.causal:
            raise ValueError(f"prompt.pooling={pooling} needs a BERT-style encoder; '{encoder.name}' pools at its "
                             "end token (use prompt.pooling=all)")
        if init_length not in INIT_LENGTHS:
            raise ValueError(f"prompt.init_length must be one of {', '.join(INIT_LENGTHS)}, not '{init_length}'")
        emb = encoder.token_embedding()
        width = emb.weight.shape[1]
        init_ids = encoder.tokenizer(ctx_init, add_special_tokens=False)["input_ids"] if ctx_init else []
        if init_ids and init_length == "words":
            n_ctx = len(init_ids)
        if len(init_ids) > n_ctx:
            raise ValueError(f"prompt.ctx_init '{ctx_init}' is {len(init_ids)} tokens, more than n_ctx={n_ctx}")
        texts = list(class_names) if texts is None else list(texts)
        owner_t = torch.arange(len(texts)) if owner is None else torch.as_tensor(owner, dtype=torch.long)
        ids, mask = self._token_ids(encoder, texts, n_ctx)
        with torch.no_grad():
            base = emb(ids.to(emb.weight.device)).float().cpu()  # (S, L, W)
        # Frozen pieces around the context; rebuilt from the encoder, so not saved with the model.
        self.register_buffer("prefix", base[:, :1].clone(), persistent=False)  # (S, 1, W)  [SOS]
        self.register_buffer("suffix", base[:, 1 + n_ctx :].clone(), persistent=False)  # (S, L-1-M, W)
        self.register_buffer("mask", mask, persistent=False)  # (S, L)
        self.register_buffer("pool", self._pool_mask(mask, n_ctx, pooling), persistent=False)  # (S, L)
        self.register_buffer("owner", owner_t, persistent=False)  # (S,) class of each prompt
        n_cls = len(class_names)
        ctx = torch.randn(n_cls if class_specific else 1, n_ctx, width, generator=generator) * 0.02
        if init_ids:
            with torch.no_grad():
                ctx[:, : len(init_ids)] = emb(torch.tensor(init_ids, device=emb.weight.device)).float().cpu()
        self.ctx = nn.Parameter(ctx)  # (1 or C, M, W), kept in fp32 under autocast
        # the init, to log how far the context moved (rebuilt identically from the seed on resume)
        self.register_buffer("ctx_start", ctx.detach().clone(), persistent=False)
        self.n_ctx, self.num_classes, self.pooling = n_ctx, n_cls, pooling

    @staticmethod
    def _token_ids(encoder: TextEncoder, texts: list[str], n_ctx: int) -> tuple[torch.Tensor, torch.Tensor]:
        """[start] + M placeholders + tokens of 'text.' + [end], padded to the longest prompt."""
        tok = encoder.tokenizer
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        room = encoder.max_length - n_ctx - 2
        rows = [[encoder.start_id] + [pad] * n_ctx + tok(f"{t}.", add_special_tokens=False)["input_ids"][:room]
                + [encoder.end_id] for t in texts]
        length = max(len(r) for r in rows)
        ids = torch.full((len(rows), length), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), length), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = 1
        return ids, mask

    @staticmethod
    def _pool_mask(mask: torch.Tensor, n_ctx: int, pooling: str) -> torch.Tensor:
        """(S, L) tokens the prompt embedding averages: all real ones, the words + [SEP], or [CLS] alone."""
        pool = mask.clone()
        if pooling == "name":
            pool[:, : 1 + n_ctx] = 0
        elif pooling == "cls":
            pool.zero_()
            pool[:, 0] = 1
        return pool

    @property
    def one_per_class(self) -> bool:
        return len(self.owner) == self.num_classes and bool((self.owner == torch.arange(len(self.owner))).all())

    def prompts(self, rows: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(R, L', W) token embeddings and (R, L') mask of prompt `rows` (default: all), cut to the longest
        real prompt among them."""
        prefix, suffix, mask, owner = self.prefix, self.suffix, self.mask, self.owner
        if rows is not None:
            prefix, suffix, mask, owner = prefix[rows], suffix[rows], mask[rows], owner[rows]
        ctx = self.ctx.expand(prefix.shape[0], -1, -1) if self.ctx.shape[0] == 1 else self.ctx[owner]
        length = int(mask.sum(1).max())
        embeds = torch.cat([prefix, ctx.to(prefix.dtype), suffix], dim=1)[:, :length]
        return embeds, mask[:, :length]

    def encode_rows(self, encoder: TextEncoder, rows: torch.Tensor | None = None) -> torch.Tensor:
        """(R, D) embeddings of prompt `rows` (default: every prompt); gradients reach only `ctx`."""
        with torch.autocast(device_type=self.ctx.device.type, enabled=False):
            embeds, mask = self.prompts(rows)
        if self.pooling == "all":
            return encoder.encode_embeddings(embeds, mask).float()
        pool = (self.pool if rows is None else self.pool[rows])[:, : mask.shape[1]]  # (R, L')
        return encoder.encode_embeddings(embeds, mask, pool).float()

    def forward(self, encoder: TextEncoder, classes: torch.Tensor | None = None) -> torch.Tensor:
        """(C, D) class text embeddings, or (K, D) for a subset of classes. With one prompt per class that
        prompt's embedding; with several (hybrid), the mean of the class's normalised prompt embeddings."""
        if self.one_per_class:
            return self.encode_rows(encoder, classes)
        means = self.class_means(self.encode_rows(encoder))
        return means if classes is None else means[classes]

    def class_means(self, emb: torch.Tensor) -> torch.Tensor:
        """(S, D) embeddings of every prompt -> (C, D) mean of each class's normalised prompt embeddings."""
        emb = F.normalize(emb, dim=-1)
        means = torch.zeros(self.num_classes, emb.shape[1], device=emb.device, dtype=emb.dtype)
        means = means.index_add(0, self.owner, emb)
        return means / torch.bincount(self.owner, minlength=self.num_classes).clamp_min(1)[:, None]

    @torch.no_grad()
    def drift(self) -> float:
        """How far the context moved from its init: ||ctx - ctx_0|| / ||ctx_0||."""
        return float((self.ctx - self.ctx_start).norm() / self.ctx_start.norm().clamp_min(1e-12))


def build_prompt_learner(encoder: TextEncoder, class_names: list[str], prompt, seed: int,
                         synonyms: tuple[list[str], list[int]] | None = None) -> PromptLearner:
    """The run's prompt learner from `prompt` (a PromptConfig); `synonyms` = (texts, class of each) for the
    hybrid prompt. The random init follows the run's seed (the encoder seeds itself)."""
    texts, owner = synonyms if prompt.hybrid else (None, None)
    if prompt.hybrid and synonyms is None:
        raise ValueError("prompt.hybrid=true needs the corpus synonyms")
    return PromptLearner(encoder, class_names, prompt.n_ctx, prompt.class_specific, prompt.ctx_init,
                         generator=torch.Generator().manual_seed(seed), texts=texts, owner=owner,
                         pooling=prompt.pooling, init_length=prompt.init_length)
