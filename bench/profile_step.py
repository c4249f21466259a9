"""Where a training step's time goes: torch.profiler over one mode of `bench/step.py`.

    .venv/bin/python -m bench.profile_step --mode pcle --encoder clip-b32-random --classes 60

Prints the top operators by self CPU time and the time spent inside the text encoder (the
`text_encoder` record) versus the rest of the step, and writes `bench/results/profile_<mode>.txt`.

With `--method gap|pcke|pcle` it profiles instead the real training step of the CPU protocol
(`configs/nw-ucla-cpu-fp32.yaml`, or `--config`: batch 32 of real NW-UCLA clips, the loader, the losses and
the SGD step included, as bench.peak times it), grouped by operator and input shapes, and writes
`bench/results/profile_cpu_<method>.txt`:

    .venv/bin/python -m bench.profile_step --method pcle [--config configs/nw-ucla-cpu.yaml]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

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
    ap.add_argument("--method", choices=["gap", "pcke", "pcle"], default=None,
                    help="profile this method's CPU-protocol step instead of a bench.step mode")
    ap.add_argument("--config", default=str(ROOT / "configs" / "nw-ucla-cpu-fp32.yaml"))
    ap.add_argument("--rows", type=int, default=15)
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="with --method: override a config key (e.g. prompt.hybrid=true)")
    ap.add_argument("--tag", default="",
                    help="with --method: suffix of the output file (profile_cpu_<method><tag>.txt)")
    args = ap.parse_args(argv)
    if args.method:
        return profile_protocol_step(args)
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
    table = events.table(sort_by="self_cpu_time_total", row_limit=args.rows)
    head = (f"mode {args.mode}, encoder {args.encoder}, {args.classes} classes, batch {args.batch}: "
            f"{wall * 1000:.0f} ms/step (profiled), text encoder forward {text_s * 1000:.0f} ms/step "
            f"({100 * text_s / wall:.0f} %; its backward runs inside autograd's share)")
    print(head)
    print(table)
    out = ROOT / "bench" / "results" / f"profile_{args.mode}_{args.encoder}.txt"
    out.write_text(head + "\n\n" + table + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


def profile_protocol_step(args) -> None:
    """Top operators (with input shapes) of one real CPU-protocol training step of `args.method`."""
    from bench.peak import build_step

    step, cfg, batch = build_step(args.method, "nw-ucla", Path(args.config), args.overrides)
    step()  # warm-up
    t = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(args.steps):
            step()
    wall = (time.perf_counter() - t) / args.steps
    # by operator first (where the time goes), then by operator and input shapes (which layer it is)
    by_op = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows, max_name_column_width=40)
    by_shape = prof.key_averages(group_by_input_shape=True).table(sort_by="self_cpu_time_total",
                                                                  row_limit=args.rows, max_name_column_width=40,
                                                                  max_shapes_column_width=60)
    table = by_op + "\n" + by_shape
    sets = f", --set {' '.join(args.overrides)}" if args.overrides else ""
    head = (f"method {args.method}, {Path(args.config).name}{sets} (amp {cfg.run.amp}, fused subsets "
            f"{cfg.model.fused_subsets}, compile {cfg.run.compile}), batch {batch}, threads "
            f"{torch.get_num_threads()}: {wall * 1000:.0f} ms/step (profiled, {args.steps} steps)")
    print(head)
    print(table)
    tag = args.tag or ("_fast" if "fast" in args.config else "")
    out = ROOT / "bench" / "results" / f"profile_cpu_{args.method}{tag}.txt"
    out.write_text(head + "\n\n" + table + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
