"""Benchmark the training step: floor, PCKE, PCLE and a naive (GAP-style) text path, side by side.

One process, one fixed batch (NTU shape B x (3, 64, 25, 2), labels drawn from C classes), the same
full-width CTR-GCN (width 64) in every mode. Modes:

  floor   bare CTR-GCN step: forward, cross-entropy, backward, SGD step (no text, no heads)
  pcke    our full model (bridger + cross-modality attention, CE + contrastive + ranking) on the
          cached text bank: no text forward per step
  pcle    the same model with learnable context: the text encoder runs once per step over the C
          class prompts, cut to the longest real prompt, gradients reach only the context
  pcle-subset  PCLE with prompt.train_classes=24: only the batch's classes plus random others are
          encoded per step (an option, not the default)
  gap     GAP's recipe (no interaction, no ranking, linear logit scales) on the cached text bank
  gap-finetune  the same with the text tower fine-tuned as GAP's code does (text.frozen=false, the
          default of --method gap): per step the encoder encodes, with gradients, the distinct synonyms
          the batch drew and the C x 4 part texts, and is updated by SGD
  naive   the reference text path: per step the frozen encoder encodes the 5 x B per-sample texts
          (one random synonym + the 4 part texts of each sample, as GAP does), padded to 77 tokens
          (CLIP's full context; MiniLM is padded to 77 too, it could take 128+), then the PCKE losses

Modes of one (encoder, classes) group are interleaved repetition by repetition, so drifting load
on a shared machine hits all of them alike; each mode gets its own warm-up steps first. Reported:
median step time, samples/s, and peak resident memory during a step above the resident memory
before it (Linux VmHWM, reset through /proc/self/clear_refs; on CUDA torch.cuda.max_memory_allocated).

    .venv/bin/python -m bench.step [--reps 5] [--classes 60 120] [--encoders minilm clip-b32-random]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table
from torch import nn

from bench._env import ROOT  # sets sys.path and the offline switches: first of the project imports
from corpus import PART_GROUPS, load_corpus
from recognizer.config import ModelConfig
from recognizer.method.ctrgcn import CTRGCN
from recognizer.method.graph import NTU25
from recognizer.method.losses import LossConfig, total_loss
from recognizer.method.model import PromptedContrastiveModel
from recognizer.method.prompt_learner import PromptLearner
from recognizer.method.text_bank import TextBank, build_text_bank
from recognizer.method.text_encoder import TextConfig, build_text_encoder
from recognizer.train import class_subset, positions_in

RESULTS = ROOT / "bench" / "results" / "step.json"
CORPUS = ROOT / "prompts" / "ntu120.jsonl"
NAIVE_LENGTH = 77
SUBSET = 24  # classes encoded per step in the pcle-subset mode (prompt.train_classes)
console = Console()


# ----------------------------------------------------------------------------- measuring
def _rss_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


class Meter:
    """Peak memory of one call: CUDA allocator peak, else the peak RSS above the RSS before."""

    def __init__(self, device: torch.device):
        self.device = device
        self.how = "torch.cuda.max_memory_allocated" if device.type == "cuda" else (
            "peak RSS above RSS before the step (VmHWM via /proc/self/clear_refs)" if _reset_peak()
            else "getrusage maxrss growth (lifetime peak: later modes may read 0)")

    def __call__(self, fn) -> tuple[float, float]:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            t = time.perf_counter()
            fn()
            torch.cuda.synchronize()
            return time.perf_counter() - t, torch.cuda.max_memory_allocated() / 2**20
        import resource

        before_max = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        reset = _reset_peak()
        before = _rss_kib("VmRSS") or 0
        t = time.perf_counter()
        fn()
        dt = time.perf_counter() - t
        if reset:
            return dt, max((_rss_kib("VmHWM") or 0) - before, 0) / 1024
        return dt, max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before_max, 0) / 1024


# ----------------------------------------------------------------------------- the modes
class Floor(nn.Module):
    """The bare skeleton classifier: CTR-GCN, global mean pool, linear classifier."""

    def __init__(self, cfg: ModelConfig, num_classes: int):
        super().__init__()
        self.skeleton = CTRGCN(NTU25.adjacency(), 3, 2, cfg.width, cfg.kernel, cfg.dilations)
        self.classifier = nn.Linear(self.skeleton.out_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, m = x.shape[0], x.shape[-1]
        fmap = self.skeleton(x)
        return self.classifier(fmap.view(b, m, *fmap.shape[1:]).mean((1, 3, 4)))


def _sgd(params) -> torch.optim.Optimizer:
    # A small lr keeps repeated steps on one batch finite; the cost of a step does not depend on it.
    return torch.optim.SGD([p for p in params if p.requires_grad], lr=1e-3, momentum=0.9, nesterov=True,
                           weight_decay=5e-4)


def _stepper(model: nn.Module, opt, loss_fn):
    def step() -> float:
        opt.zero_grad(set_to_none=True)
        loss = loss_fn()
        loss.backward()
        opt.step()
        return loss.item()

    model.train()
    return step


def slice_bank(bank: TextBank, n: int) -> TextBank:
    """The first n classes of a bank (NTU60 is the first 60 classes of the NTU120 corpus)."""
    end = int(bank.offsets[n - 1] + bank.counts[n - 1])
    return TextBank(bank.synonyms[:end], bank.offsets[:n], bank.counts[:n], bank.classes[:n], bank.parts[:n],
                    bank.syn_texts[:end], bank.part_texts[: n * bank.parts.shape[1]])


def build_modes(encoder, bank: TextBank, corpus, n_cls: int, x, y, dev) -> dict:
    mcfg, lcfg = ModelConfig(), LossConfig()
    names = [r.name for r in corpus[:n_cls]]
    bank = slice_bank(bank, n_cls)
    modes = {}

    torch.manual_seed(0)
    floor = Floor(mcfg, n_cls).to(dev)
    modes["floor"] = _stepper(floor, _sgd(floor.parameters()), lambda: F.cross_entropy(floor(x), y))

    def full_model(learner=None):
        torch.manual_seed(0)
        return PromptedContrastiveModel(mcfg, NTU25, n_cls, encoder.dim, prompt_learner=learner).to(dev)

    gen = torch.Generator().manual_seed(0)
    pcke = full_model()

    def pcke_loss():
        out = pcke(x, class_text=bank.classes)
        out["text_sample"] = bank.sample(y, gen)
        out["text_parts"] = bank.parts[y]
        return total_loss(out, y, lcfg)["loss"]

    modes["pcke"] = _stepper(pcke, _sgd(pcke.parameters()), pcke_loss)

    pcle = full_model(PromptLearner(encoder, names, n_ctx=16).to(dev))

    def pcle_loss():
        out = pcle(x, encoder=encoder)
        out["text_sample"] = out["class_text"][y]
        out["text_parts"] = bank.parts[y]
        return total_loss(out, y, lcfg)["loss"]

    modes["pcle"] = _stepper(pcle, _sgd(pcle.parameters()), pcle_loss)

    # prompt.train_classes = SUBSET: the batch's classes plus random others, SUBSET prompts per step
    pcle_sub = full_model(PromptLearner(encoder, names, n_ctx=16).to(dev))
    gen_cls = torch.Generator().manual_seed(2)

    def pcle_subset_loss():
        classes = class_subset(y, n_cls, SUBSET, gen_cls)
        out = pcle_sub(x, encoder=encoder, classes=classes)
        out["sim_labels"] = positions_in(classes, y, n_cls)
        out["text_sample"] = out["class_text"][out["sim_labels"]]
        out["text_parts"] = bank.parts[y]
        return total_loss(out, y, lcfg)["loss"]

    if SUBSET < n_cls:
        modes["pcle-subset"] = _stepper(pcle_sub, _sgd(pcle_sub.parameters()), pcle_subset_loss)

    naive = full_model()
    tok = encoder.tokenizer
    labels = y.tolist()
    syn_rng = torch.Generator().manual_seed(1)

    def naive_loss():
        # What GAP does every step: tokenize and encode 5 texts per sample, padded to the full length.
        picks = torch.randint(0, 1 << 30, (len(labels),), generator=syn_rng).tolist()
        syn = [corpus[c].synonyms[p % len(corpus[c].synonyms)] for c, p in zip(labels, picks)]
        parts = [corpus[c].part_text(g) for c in labels for g in PART_GROUPS]
        enc = tok(syn + parts, padding="max_length", truncation=True, max_length=NAIVE_LENGTH, return_tensors="pt")
        ids, mask = enc["input_ids"].to(dev), enc["attention_mask"].to(dev)
        with torch.no_grad():
            emb = encoder.encode_embeddings(encoder.token_embedding()(ids), mask).float()
        out = naive(x, class_text=bank.classes)
        out["text_sample"] = emb[: len(labels)]
        out["text_parts"] = emb[len(labels):].view(len(labels), len(PART_GROUPS), -1)
        return total_loss(out, y, lcfg)["loss"]

    modes["naive"] = _stepper(naive, _sgd(naive.parameters()), naive_loss)
    modes.update(gap_modes(encoder, bank, n_cls, x, y, dev))
    return modes


def gap_modes(encoder, bank: TextBank, n_cls: int, x, y, dev) -> dict:
    """GAP with the frozen bank, and GAP fine-tuning a copy of the text encoder (its default)."""
    from recognizer.config import resolve

    cfg = resolve("synthetic", "gap")
    modes = {}
    for name, tune in (("gap", False), ("gap-finetune", True)):
        torch.manual_seed(0)
        model = PromptedContrastiveModel(cfg.model, NTU25, n_cls, encoder.dim).to(dev)
        params = list(model.parameters())
        enc = None
        if tune:
            enc = build_text_encoder(TextConfig(encoder=_kind(encoder), frozen=False)).to(dev)
            params += list(enc.parameters())
        gen = torch.Generator().manual_seed(0)

        def loss(model=model, enc=enc, gen=gen):
            out = model(x, class_text=bank.classes)
            idx = bank.pick_index(y, torch.rand(y.shape, generator=gen).to(dev))
            if enc is None:
                out["text_sample"], out["text_parts"] = bank.synonyms[idx], bank.parts[y]
            else:
                enc.train()
                out["text_sample"], out["text_parts"] = bank.live_synonyms(enc, idx), bank.live_parts(enc)[y]
            return total_loss(out, y, cfg.loss)["loss"]

        modes[name] = _stepper(model, _sgd(params), loss)
    return modes


def _kind(encoder) -> str:
    """The `text.encoder` name that rebuilds `encoder` (its name, without the tiny/random suffixes)."""
    return "clip-b32-random" if encoder.name.startswith("clip-b32-random") else encoder.name


def run_group(modes: dict, meter: Meter, warmup: int, reps: int) -> dict:
    for step in modes.values():
        for _ in range(warmup):
            step()
    times = {m: [] for m in modes}
    mem = {m: 0.0 for m in modes}
    for _ in range(reps):
        for m, step in modes.items():
            dt, peak = meter(step)
            times[m].append(dt)
            mem[m] = max(mem[m], peak)
    return {m: {"median_s": statistics.median(t), "min_s": min(t), "times_s": [round(v, 4) for v in t],
                "peak_mib": round(mem[m], 1)} for m, t in times.items()}


# ----------------------------------------------------------------------------- report
def machine(dev: torch.device) -> dict:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(), "platform": platform.platform(),
            "device": str(dev)}
    if dev.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(dev)
    try:
        info["load_avg_at_start"] = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        pass
    return info


def ratios(r: dict) -> dict:
    med = {m: v["median_s"] for m, v in r.items()}
    pairs = {"pcke/floor": ("pcke", "floor"), "pcle/floor": ("pcle", "floor"), "naive/pcke": ("naive", "pcke")}
    out = {k: med[a] / med[b] for k, (a, b) in pairs.items() if a in med and b in med}
    if "pcle-subset" in med:
        out["pcle-subset/floor"] = med["pcle-subset"] / med["floor"]
    if "gap-finetune" in med:
        out["gap-finetune/gap"] = med["gap-finetune"] / med["gap"]
    return {k: round(v, 3) for k, v in out.items()}


def print_table(groups: list[dict], batch: int) -> None:
    table = Table(title=f"training step, batch {batch}, NTU shape (3, 64, 25, 2), CTR-GCN width 64")
    for c in ("encoder", "classes", "mode", "median ms", "samples/s", "peak MiB", "ratio"):
        table.add_column(c, justify="right")
    for g in groups:
        rat = g["ratios"]
        names = {"pcke": ("b/a", "pcke/floor"), "pcle": ("c/a", "pcle/floor"), "naive": ("d/b", "naive/pcke"),
                 "pcle-subset": ("/a", "pcle-subset/floor"), "gap-finetune": ("/gap", "gap-finetune/gap")}
        label = {m: f"{tag} {rat[key]:.2f}" for m, (tag, key) in names.items() if key in rat}
        for m, v in g["modes"].items():
            table.add_row(g["encoder"], str(g["classes"]), m, f"{v['median_s'] * 1000:.0f}",
                          f"{batch / v['median_s']:.1f}", f"{v['peak_mib']:.0f}", label.get(m, ""))
    console.print(table)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description="training-step benchmark (see the module docstring)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--classes", type=int, nargs="+", default=[60, 120])
    ap.add_argument("--encoders", nargs="+", default=["minilm", "clip-b32-random"])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--modes", nargs="+", default=None, help="only these modes (default: all)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    dev = torch.device(args.device)
    meter = Meter(dev)
    corpus = load_corpus(CORPUS)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 3, 64, 25, 2, generator=g).to(dev)
    results = {"command": "python -m bench.step " + " ".join(argv if argv is not None else sys.argv[1:]),
               "machine": machine(dev), "batch": args.batch, "input": [3, 64, 25, 2], "width": 64,
               "naive_length": NAIVE_LENGTH, "reps": args.reps, "warmup": args.warmup, "memory": meter.how,
               "groups": []}
    t0 = time.perf_counter()
    for kind in args.encoders:
        encoder = build_text_encoder(TextConfig(encoder=kind)).to(dev)
        t = time.perf_counter()
        bank = build_text_bank(encoder, corpus, ROOT / ".cache" / "text-embeddings").to(dev)
        console.print(f"[dim]{kind}: text bank of {len(bank.synonyms) + bank.parts.shape[0] * 4} texts "
                      f"in {time.perf_counter() - t:.1f} s (cached after the first run)[/dim]")
        for n_cls in args.classes:
            y = torch.randint(0, n_cls, (args.batch,), generator=g).to(dev)
            modes = build_modes(encoder, bank, corpus, n_cls, x, y, dev)
            if args.modes:
                modes = {m: f for m, f in modes.items() if m in args.modes}
            res = run_group(modes, meter, args.warmup, args.reps)
            group = {"encoder": kind, "text_dim": encoder.dim, "classes": n_cls, "modes": res, "ratios": ratios(res)}
            results["groups"].append(group)
            console.print(f"[dim]{kind} C={n_cls}: " + ", ".join(
                f"{m} {v['median_s'] * 1000:.0f} ms" for m, v in res.items()) + f"  {group['ratios']}[/dim]")
    results["wall_s"] = round(time.perf_counter() - t0, 1)
    print_table(results["groups"], args.batch)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    console.print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return results


if __name__ == "__main__":
    main()
