"""PCKE's text side: every corpus description embedded once by the frozen encoder, cached on disk.

Nothing here runs per step: a batch only gathers rows (one random synonym per sample, the four part
descriptions of its class). The cache file is keyed by the encoder's fingerprint and a hash of the
texts, so editing a corpus or switching encoders never reuses stale embeddings.

With a fine-tuned encoder (GAP's default) a step encodes, with gradients, only the distinct synonyms
its batch drew and the C x 4 part texts (`live_synonyms`, `live_parts`), not 5 x B padded prompts as
GAP's code; the stored embeddings are refreshed every epoch (`refresh`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import torch

from corpus import PART_GROUPS, ClassPrompts
from recognizer.checkpoint import atomic_torch_save
from recognizer.method.text_encoder import TextEncoder


@dataclass
class TextBank:
    synonyms: torch.Tensor  # (S, D) every class name and synonym
    offsets: torch.Tensor  # (C,) first synonym row of each class
    counts: torch.Tensor  # (C,) synonyms per class
    classes: torch.Tensor  # (C, D) mean of a class's normalised synonym embeddings
    parts: torch.Tensor  # (C, 4, D) part-group descriptions
    syn_texts: list[str] = field(default_factory=list)  # (S,) the texts behind `synonyms`
    part_texts: list[str] = field(default_factory=list)  # (C * 4,) the texts behind `parts`

    def to(self, device: torch.device) -> TextBank:
        moved = {f: getattr(self, f) for f in self.__dataclass_fields__}
        return TextBank(**{f: v.to(device) if torch.is_tensor(v) else v for f, v in moved.items()})

    def sample(self, labels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """One random synonym per sample: (B,) -> (B, D)."""
        return self.pick(labels, torch.rand(labels.shape, generator=generator).to(labels.device))

    def pick_index(self, labels: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Row of the synonym of each sample's class at fraction u in [0, 1) of that class's rows: (B,) -> (B,)."""
        return self.offsets[labels] + (u * self.counts[labels]).long().clamp_max(self.counts[labels] - 1)

    def pick(self, labels: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """The synonym of each sample's class at fraction u in [0, 1) of that class's rows: (B,) -> (B, D)."""
        return self.synonyms[self.pick_index(labels, u)]

    def live_synonyms(self, encoder: TextEncoder, idx: torch.Tensor) -> torch.Tensor:
        """(B,) synonym rows -> (B, D) embeddings with gradients; each distinct text is encoded once."""
        rows, inverse = torch.unique(idx, return_inverse=True)
        emb = encoder.encode([self.syn_texts[i] for i in rows.tolist()]).float()  # (U, D)
        return emb[inverse]

    def live_parts(self, encoder: TextEncoder) -> torch.Tensor:
        """(C, 4, D) part-description embeddings with gradients."""
        return encoder.encode(self.part_texts).float().view(self.parts.shape)

    @torch.no_grad()
    def refresh(self, encoder: TextEncoder) -> TextBank:
        """All embeddings recomputed with the encoder's current weights (after fine-tuning steps)."""
        syn = encoder.encode(self.syn_texts).float()
        owner = torch.repeat_interleave(torch.arange(len(self.counts), device=syn.device), self.counts.to(syn.device))
        return TextBank(syn, self.offsets, self.counts, class_means(syn, owner, len(self.counts)),
                        self.live_parts(encoder), self.syn_texts, self.part_texts)


def class_means(synonyms: torch.Tensor, owner: torch.Tensor, n_cls: int) -> torch.Tensor:
    """(S, D) synonym embeddings + (S,) class of each -> (C, D) mean of each class's normalised embeddings."""
    normed = torch.nn.functional.normalize(synonyms, dim=-1)
    counts = torch.bincount(owner, minlength=n_cls).clamp_min(1)
    return torch.zeros(n_cls, normed.shape[1], device=normed.device).index_add_(0, owner, normed) / counts[:, None]


def corpus_texts(corpus: list[ClassPrompts], part_prefix: bool = True) -> tuple[list[str], list[int], list[str]]:
    """Flatten a corpus: synonym texts with their class, then C x 4 part texts ("<name>, <parts>" as GAP
    when `part_prefix`, so two classes with the same leg description still get different targets)."""
    syn, owner, parts = [], [], []
    for rec in corpus:
        names = list(dict.fromkeys([rec.name, *rec.synonyms]))
        syn += names
        owner += [rec.class_id] * len(names)
        parts += [f"{rec.name}, {rec.part_text(g)}" if part_prefix else rec.part_text(g) for g in PART_GROUPS]
    return syn, owner, parts


def build_text_bank(encoder: TextEncoder, corpus: list[ClassPrompts], cache_dir: str | Path | None,
                    part_prefix: bool = True) -> TextBank:
    syn, owner, parts = corpus_texts(corpus, part_prefix)
    key = hashlib.sha256("\n".join([encoder.fingerprint(), *syn, "\x00", *parts]).encode()).hexdigest()[:24]
    path = Path(cache_dir) / f"{key}.pt" if cache_dir else None
    if path is not None and path.is_file():
        data = torch.load(path, map_location="cpu", weights_only=True)
    else:
        with torch.no_grad():
            data = {"synonyms": encoder.encode(syn).float().cpu(), "parts": encoder.encode(parts).float().cpu()}
        if path is not None:
            atomic_torch_save(data, path)
    owner_t = torch.tensor(owner)
    n_cls = len(corpus)
    counts = torch.bincount(owner_t, minlength=n_cls)
    offsets = torch.cumsum(counts, 0) - counts
    return TextBank(data["synonyms"], offsets, counts, class_means(data["synonyms"], owner_t, n_cls),
                    data["parts"].view(n_cls, len(PART_GROUPS), -1), syn, parts)
