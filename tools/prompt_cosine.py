"""The static check of PCLE's text side: how alike the class prompts are before any training.

    python tools/prompt_cosine.py [--corpus prompts/nw-ucla.jsonl] [--out results/pcle-screen/cosine.md]

Builds each prompt variant at its initialisation (random context from seed 0, or words) with the run's
text encoder (MiniLM by default) and prints the mean / min / max off-diagonal cosine of the C class text
embeddings, beside the bare class names and PCKE's synonym means. Prompts that start nearly identical
(cosine near 1) give the interaction nothing to tell classes apart with; seconds on a CPU, no training.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from corpus import load_corpus  # noqa: E402
from recognizer.method.prompt_learner import PromptLearner  # noqa: E402
from recognizer.method.text_bank import build_text_bank  # noqa: E402
from recognizer.method.text_encoder import TextConfig, build_text_encoder  # noqa: E402
from recognizer.training.diagnostics import text_cosines  # noqa: E402

# (label, PromptLearner keyword arguments); hybrid=True puts the corpus synonyms after the context
VARIANTS: list[tuple[str, dict]] = [
    ("16 random ctx, all-token pooling (first grid)", dict(n_ctx=16)),
    ("16 random ctx, name pooling", dict(n_ctx=16, pooling="name")),
    ("16 random ctx, [CLS] pooling", dict(n_ctx=16, pooling="cls")),
    ("'a person is' in 16 slots, all-token pooling", dict(n_ctx=16, ctx_init="a person is")),
    ("'a person is', n_ctx = 3 (CoOp)", dict(n_ctx=16, ctx_init="a person is", init_length="words")),
    ("'a person is', n_ctx = 3, name pooling", dict(n_ctx=16, ctx_init="a person is", init_length="words",
                                                   pooling="name")),
    ("hybrid: 16 random ctx + synonyms, all-token pooling", dict(n_ctx=16, hybrid=True)),
    ("hybrid: 'a person is' (n_ctx = 3) + synonyms", dict(n_ctx=16, ctx_init="a person is", init_length="words",
                                                          hybrid=True)),
    ("hybrid: 'a person is' (n_ctx = 3) + synonyms, name pooling",
     dict(n_ctx=16, ctx_init="a person is", init_length="words", pooling="name", hybrid=True)),
]


def rows(corpus_path: str, encoder_name: str) -> list[tuple[str, dict]]:
    encoder = build_text_encoder(TextConfig(encoder=encoder_name))
    corpus = load_corpus(corpus_path)
    names = [r.name for r in corpus]
    bank = build_text_bank(encoder, corpus, None)
    owner = torch.repeat_interleave(torch.arange(len(names)), bank.counts).tolist()
    out = [("bare class names", text_cosines(encoder.encode(names).detach())),
           ("PCKE: mean of the synonym embeddings", text_cosines(bank.classes))]
    for label, kw in VARIANTS:
        kw = dict(kw)
        hybrid = kw.pop("hybrid", False)
        learner = PromptLearner(encoder, names, generator=torch.Generator().manual_seed(0),
                                texts=bank.syn_texts if hybrid else None, owner=owner if hybrid else None, **kw)
        with torch.no_grad():
            out.append((label, text_cosines(learner(encoder))))
    return out


def markdown(table: list[tuple[str, dict]], corpus: str, encoder: str) -> str:
    lines = [f"Off-diagonal cosine of the class text embeddings at initialisation ({corpus}, encoder {encoder}):", "",
             "| class text | mean | min | max |", "|---|---:|---:|---:|"]
    lines += [f"| {label} | {s['text_cos_mean']:.3f} | {s['text_cos_min']:.3f} | {s['text_cos_max']:.3f} |"
              for label, s in table]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default="prompts/nw-ucla.jsonl")
    ap.add_argument("--encoder", default="minilm")
    ap.add_argument("--out", default=None, help="also write the markdown table here")
    args = ap.parse_args()
    text = markdown(rows(args.corpus, args.encoder), args.corpus, args.encoder)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
