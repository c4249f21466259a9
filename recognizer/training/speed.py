"""The fast path of a step: mixed precision, fused graph convolutions, torch.compile, loader overlap.

Each piece is a config key whose default is the behaviour before it existed, so a committed run keeps
its config hash and trains as it did; the CPU protocol (`configs/nw-ucla-cpu.yaml`) switches them on
together (its fp32 twin, `configs/nw-ucla-cpu-fp32.yaml`, leaves them off) and docs/benchmarks.md has the
measured gain. Training, evaluation and `pcle predict` call the same
functions here, so a run is scored on the path it was trained on.
"""

from __future__ import annotations

import re
from contextlib import nullcontext
from pathlib import Path

import torch
from torch import nn

from recognizer.method.ctrgcn import set_channels_last, set_fused_subsets

AMP = {"bf16": torch.bfloat16, "fp16": torch.float16, "off": None}


def amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """`run.amp` -> autocast dtype on `device`: auto is bf16 on CUDA and off on CPU; bf16 works on both."""
    if amp == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    if amp not in AMP:
        raise ValueError(f"run.amp must be auto, bf16, fp16 or off, not '{amp}'")
    return AMP[amp]


def cpu_has_native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool | None:
    """Whether this CPU computes bf16 in hardware (x86 AVX512-BF16 or AMX-BF16, Arm's `bf16` feature); None where
    `cpuinfo` cannot tell.

    Without either, oneDNN emulates bf16 and autocast is far slower than fp32: on an AVX2-only AMD EPYC
    (Zen 3) a bf16 GEMM ran at 0.3 GFLOP/s against 93 in fp32 and the fast-path GAP step took 5x the
    fp32 step (docs/benchmarks.md), so a config that asks for bf16 there must say so before training.
    """
    try:
        text = cpuinfo.read_text()
    except OSError:
        return None
    flags = [line for line in text.splitlines() if line.startswith(("flags", "Features"))]
    if not flags:
        return None
    return any(re.search(r"\b(avx512_bf16|amx_bf16|bf16)\b", line) for line in flags)  # `_` is a word character


def bf16_warning(device: torch.device, dtype: torch.dtype | None,
                 cpuinfo: Path = Path("/proc/cpuinfo")) -> str | None:
    """One line for a bf16 autocast on a CPU without native bf16, else None (GPU, fp32, or unknown CPU)."""
    if device.type != "cpu" or dtype != torch.bfloat16 or cpu_has_native_bf16(cpuinfo) is not False:
        return None
    return ("run.amp=bf16: this CPU has no native bf16 (no avx512_bf16, amx_bf16 or bf16 in /proc/cpuinfo), so "
            "bf16 autocast is emulated and several times slower than fp32 here; train with --set run.amp=off (for the "
            "NW-UCLA CPU protocol: --config configs/nw-ucla-cpu-fp32.yaml)")


def autocast(device: torch.device, dtype: torch.dtype | None):
    """torch.autocast for `dtype` on `device`, or a no-op context without mixed precision."""
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


def fp32_outputs(out: dict) -> dict:
    """Floating outputs of a forward under autocast, back in fp32: the losses and scores run in fp32."""
    return {k: v.float() if torch.is_tensor(v) and v.is_floating_point() else v for k, v in out.items()}


class CompiledOrEager:
    """A module's forward through torch.compile, falling back to eager once, with one line, on failure.

    Installed as the instance's `forward`, so parameters, buffers and state_dict keys are untouched
    (checkpoints of a compiled run load into an eager model and back). Compilation happens on the first
    call (tracing runs on fake tensors, so a failed attempt has changed nothing).
    """

    def __init__(self, module: nn.Module, name: str, warn=print):
        self.eager, self.name, self.warn = module.forward, name, warn
        self.compiled = torch.compile(module.forward)
        self.failed = False

    def __call__(self, *args, **kwargs):
        if not self.failed:
            try:
                return self.compiled(*args, **kwargs)
            except Exception as e:  # noqa: BLE001 - any compiler failure means: run eagerly
                self.failed = True
                first = (str(e).strip().splitlines() or [""])[0][:160]
                self.warn(f"run.compile: torch.compile of the {self.name} failed ({type(e).__name__}: {first}); "
                          "running it eagerly")
        return self.eager(*args, **kwargs)


def compile_module(module: nn.Module, name: str, warn=print) -> nn.Module:
    """Compile `module`'s forward in place (see CompiledOrEager); returns the module itself."""
    module.forward = CompiledOrEager(module, name, warn)
    return module


def uncompile(module: nn.Module) -> nn.Module:
    """Back to the class's own forward (undoes compile_module)."""
    if isinstance(module.__dict__.get("forward"), CompiledOrEager):
        del module.forward
    return module


def apply_fast_path(model: nn.Module, fused: bool, compile_: bool, channels_last: bool = False,
                    warn=print) -> nn.Module:
    """Fused subsets (`model.fused_subsets`), channels-last feature maps (`model.channels_last`) and
    compilation of the skeleton encoder (`run.compile`).

    Only the skeleton encoder is compiled: it is where the time goes (docs/benchmarks.md), and the
    text side's per-step shapes (PCLE's prompts, class subsets) would make a whole-model graph recompile.
    """
    skeleton = getattr(model, "skeleton", model)
    set_fused_subsets(skeleton, fused)
    set_channels_last(skeleton, channels_last)
    if compile_:
        compile_module(skeleton, "skeleton encoder", warn)
    return model


def loader_options(num_workers: int, persistent: bool, prefetch: int) -> dict:
    """DataLoader keyword arguments for worker overlap (`data.persistent_workers`, `data.prefetch_factor`)."""
    if num_workers <= 0:
        return {}
    return {"persistent_workers": persistent, "prefetch_factor": prefetch}
