"""Where a training step's time goes: torch.profiler over one mode of `bench/step.py`.

    .venv/bin/python -m bench.profile_step --mode pcle --encoder clip-b32-random --classes 60

Prints the top operators by self CPU time and the time spent inside the text encoder (the
`text_encoder` record) versus the rest of the step, and writes `bench/results/profile_<mode>.txt`.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from bench.step import CORPUS, ROOT, build_modes
from corpus import load_corpus
from recognizer.method.text_bank import build_text_bank
from recognizer.method.text_encoder import TextConfig, build_text_encoder


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", default="pcle", choices=["floor", "pcke", "pcle", "pcle-subset", "naive"])
    ap.add_argument("--encoder", default="minilm")
    ap.add_argument("--classes", type=int, default=60)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=2)
    args = ap.parse_args(argv)
    encoder = build_text_encoder(TextConfig(encoder=args.encoder))
    corpus = load_corpus(CORPUS)
    bank = build_text_bank(encoder, corpus, ROOT / ".cache" / "text-embeddings")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 3, 64, 25, 2, generator=g)
    y = torch.randint(0, args.classes, (args.batch,), generator=g)
    original = encoder.encode_embeddings

    def traced(embeds, mask):  # marks the text encoder's share of the step
        with record_function("text_encoder"):
            return original(embeds, mask)

    encoder.encode_embeddings = traced
    step = build_modes(encoder, bank, corpus, args.classes, x, y, torch.device("cpu"))[args.mode]
    step()  # warm-up
    t = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.steps):
            step()
    wall = (time.perf_counter() - t) / args.steps
    events = prof.key_averages()
    text = next((e for e in events if e.key == "text_encoder"), None)
    text_s = text.cpu_time_total / 1e6 / args.steps if text else 0.0
    table = events.table(sort_by="self_cpu_time_total", row_limit=15)
    head = (f"mode {args.mode}, encoder {args.encoder}, {args.classes} classes, batch {args.batch}: "
            f"{wall * 1000:.0f} ms/step (profiled), text encoder forward {text_s * 1000:.0f} ms/step "
            f"({100 * text_s / wall:.0f} %; its backward runs inside autograd's share)")
    print(head)
    print(table)
    out = ROOT / "bench" / "results" / f"profile_{args.mode}_{args.encoder}.txt"
    out.write_text(head + "\n\n" + table + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
