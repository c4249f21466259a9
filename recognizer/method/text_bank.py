"""PCKE's text side: every corpus description embedded once by the frozen encoder, cached on disk.

Nothing here runs per step: a batch only gathers rows (one random synonym per sample, the four part
descriptions of its class). The cache file is keyed by the encoder's fingerprint and a hash of the
texts, so editing a corpus or switching encoders never reuses stale embeddings.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch

from recognizer.checkpoint import atomic_torch_save
from recognizer.method.corpus import PART_GROUPS, ClassPrompts
from recognizer.method.text_encoder import TextEncoder


@dataclass
class TextBank:
    synonyms: torch.Tensor  # (S, D) every class name and synonym
    offsets: torch.Tensor  # (C,) first synonym row of each class
    counts: torch.Tensor  # (C,) synonyms per class
    classes: torch.Tensor  # (C, D) mean of a class's normalised synonym embeddings
    parts: torch.Tensor  # (C, 4, D) part-group descriptions

    def to(self, device: torch.device) -> TextBank:
        return TextBank(*(getattr(self, f).to(device) for f in self.__dataclass_fields__))

    def sample(self, labels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """One random synonym per sample: (B,) -> (B, D)."""
        return self.pick(labels, torch.rand(labels.shape, generator=generator).to(labels.device))

    def pick(self, labels: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """The synonym of each sample's class at fraction u in [0, 1) of that class's rows: (B,) -> (B, D)."""
        idx = self.offsets[labels] + (u * self.counts[labels]).long().clamp_max(self.counts[labels] - 1)
        return self.synonyms[idx]


def corpus_texts(corpus: list[ClassPrompts]) -> tuple[list[str], list[int], list[str]]:
    """Flatten a corpus: synonym texts with their class, then C x 4 part texts."""
    syn, owner, parts = [], [], []
    for rec in corpus:
        names = list(dict.fromkeys([rec.name, *rec.synonyms]))
        syn += names
        owner += [rec.class_id] * len(names)
        parts += [rec.part_text(g) for g in PART_GROUPS]
    return syn, owner, parts


def build_text_bank(encoder: TextEncoder, corpus: list[ClassPrompts], cache_dir: str | Path | None) -> TextBank:
    syn, owner, parts = corpus_texts(corpus)
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
    normed = torch.nn.functional.normalize(data["synonyms"], dim=-1)
    classes = torch.zeros(n_cls, normed.shape[1]).index_add_(0, owner_t, normed) / counts[:, None]
    return TextBank(data["synonyms"], offsets, counts, classes, data["parts"].view(n_cls, len(PART_GROUPS), -1))
