"""The fast path (recognizer/training/speed.py): fused subsets, bf16 on CPU, compile fallback, loader overlap.

No test here asserts a time: speed is measured by `python -m bench.peak` (docs/benchmarks.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch.utils.data import DataLoader

from recognizer.analysis.runs import flatten
from recognizer.method.ctrgcn import CTRGCN, GraphConv, set_channels_last, set_fused_subsets
from recognizer.method.graph import NTU25
from recognizer.training.speed import (
    amp_dtype,
    bf16_warning,
    compile_module,
    cpu_has_native_bf16,
    fp32_outputs,
    uncompile,
)

REPO = Path(__file__).resolve().parent.parent


def _graph_conv(cin: int, cout: int) -> GraphConv:
    torch.manual_seed(0)
    gc = GraphConv(cin, cout, NTU25.adjacency())
    with torch.no_grad():  # make every term count: alpha and the BN scale start at 0 and 1e-6
        gc.alpha.fill_(0.7)
        gc.bn.weight.fill_(1.0)
        gc.A.add_(0.1 * torch.randn_like(gc.A))
    return gc


@pytest.mark.parametrize("cin,cout", [(3, 16), (16, 16), (16, 32)])
def test_fused_subsets_equal_the_per_subset_sum_forward_and_backward(cin, cout):
    gc = _graph_conv(cin, cout)
    x = torch.randn(4, cin, 12, 25, requires_grad=True)
    outs, grads = [], []
    for fused in (False, True):
        set_fused_subsets(gc, fused)
        gc.zero_grad()
        x.grad = None
        y = gc(x)
        (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
        outs.append(y.detach())
        grads.append([x.grad.clone()] + [p.grad.clone() for p in gc.parameters()])
    torch.testing.assert_close(outs[1], outs[0], atol=1e-5, rtol=1e-5)
    for a, b in zip(grads[0], grads[1]):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-4)


def test_fused_subsets_under_bf16_autocast_keep_every_large_tensor_in_bf16():
    """The fused path's point on CPU is that the adjacency and the topology product never leave bf16: an fp32 A or
    alpha would promote the (K, C', N, V, U) adjacency to fp32 (it did once, doubling its traffic)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Dtypes(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.seen = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in out if isinstance(out, (tuple, list)) else (out,):
                if isinstance(t, torch.Tensor) and t.is_floating_point() and t.numel() >= 4 * 16 * 12 * 25:
                    self.seen.append((str(func), t.dtype, tuple(t.shape)))
            return out

    gc = set_fused_subsets(_graph_conv(16, 16), True)
    x = torch.randn(4, 16, 12, 25).to(torch.bfloat16)  # what the previous bf16 layer hands on
    with torch.autocast("cpu", dtype=torch.bfloat16), Dtypes() as mode:
        y = gc.fused_subsets(x)
    assert y.dtype is torch.bfloat16
    fp32 = [s for s in mode.seen if s[1] is not torch.bfloat16]
    assert mode.seen and not fp32, fp32


def test_unfused_state_dict_loads_into_the_fused_encoder_and_gives_its_output():
    torch.manual_seed(1)
    unfused = CTRGCN(NTU25.adjacency(), 3, 2, width=8).eval()
    torch.manual_seed(2)
    fused = set_fused_subsets(CTRGCN(NTU25.adjacency(), 3, 2, width=8), True).eval()
    fused.load_state_dict(unfused.state_dict(), strict=True)  # same parameters, same names
    assert set(fused.state_dict()) == set(unfused.state_dict())
    x = torch.randn(2, 3, 16, 25, 2)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), unfused(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("fused", [False, True])
def test_channels_last_encoder_gives_the_same_output_and_gradients_and_loads_either_way(fused):
    torch.manual_seed(3)
    net = set_fused_subsets(CTRGCN(NTU25.adjacency(), 3, 2, width=8), fused)
    x = torch.randn(2, 3, 16, 25, 2)
    results = []
    for on in (False, True, False):  # and back: the switch is reversible
        set_channels_last(net, on)
        conv = net.units[1].gcn.convs[0].conv3.weight
        assert conv.is_contiguous(memory_format=torch.channels_last if on else torch.contiguous_format)
        net.zero_grad()
        y = net(x)
        y.square().sum().backward()
        results.append((y.detach(), net.units[1].gcn.convs[0].conv3.weight.grad.clone()))
    scale = float(results[0][0].abs().max())  # another memory order sums in another order: 1e-5 of the scale
    for y, g in results[1:]:
        torch.testing.assert_close(y, results[0][0], atol=1e-5 * scale, rtol=1e-5)
        torch.testing.assert_close(g, results[0][1], atol=1e-4 * float(results[0][1].abs().max()), rtol=1e-4)
    plain = CTRGCN(NTU25.adjacency(), 3, 2, width=8)
    plain.load_state_dict(set_channels_last(net, True).state_dict())  # a channels-last run's checkpoint loads
    with torch.no_grad():
        want = plain.eval()(x)
        torch.testing.assert_close(net.eval()(x), want, atol=1e-5 * float(want.abs().max()), rtol=1e-5)


@pytest.mark.parametrize("kind", ["tiny-bert", "tiny-clip"])
def test_eager_attention_in_the_text_tower_gives_the_sdpa_embeddings(kind):
    from recognizer.method.text_encoder import TextConfig, build_text_encoder

    texts = ["a person waves a hand", "sit down"]
    out = {}
    for impl in ("sdpa", "eager"):
        enc = build_text_encoder(TextConfig(encoder=kind, attn_implementation=impl))
        assert enc.model.config._attn_implementation == impl
        out[impl] = enc.encode(texts)
    torch.testing.assert_close(out["eager"], out["sdpa"], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="text.attn_implementation must be one of sdpa, eager, not 'flash'"):
        build_text_encoder(TextConfig(encoder=kind, attn_implementation="flash"))


def test_amp_dtype_bf16_on_cpu_and_auto_stays_off():
    cpu = torch.device("cpu")
    assert amp_dtype("bf16", cpu) is torch.bfloat16
    assert amp_dtype("auto", cpu) is None and amp_dtype("off", cpu) is None
    assert amp_dtype("auto", torch.device("cuda")) is torch.bfloat16
    with pytest.raises(ValueError, match="run.amp must be"):
        amp_dtype("fp8", cpu)


def test_fp32_outputs_cast_floating_tensors_only():
    out = fp32_outputs({"a": torch.ones(2, dtype=torch.bfloat16), "b": torch.arange(3), "c": 1.5})
    assert out["a"].dtype == torch.float32 and out["b"].dtype == torch.int64 and out["c"] == 1.5


def test_a_failing_compile_falls_back_to_eager_with_one_line(monkeypatch):
    def broken_backend(gm, example_inputs):
        raise RuntimeError("no C compiler here\nsecond line of the trace")

    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: real_compile(fn, backend=broken_backend))
    torch._dynamo.reset()
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU())
    x = torch.randn(5, 4)
    want = net(x)
    keys = set(net.state_dict())
    lines: list[str] = []
    compile_module(net, "test net", warn=lines.append)
    torch.testing.assert_close(net(x), want)
    torch.testing.assert_close(net(x), want)  # the second call goes straight to eager
    assert len(lines) == 1 and "test net" in lines[0] and "running it eagerly" in lines[0]
    assert "\n" not in lines[0] and "second line" not in lines[0]
    assert set(net.state_dict()) == keys  # compiling never renames parameters (checkpoints load both ways)
    uncompile(net)
    assert "forward" not in net.__dict__


def test_bf16_training_on_cpu_keeps_fp32_weights_and_finite_fp32_losses(tmp_path):
    from recognizer.config import resolve
    from recognizer.train import train
    from tests.conftest import tiny_overrides

    cfg = resolve("synthetic", "pcle", overrides=tiny_overrides(tmp_path) + [
        "run.amp=bf16", "model.fused_subsets=true", "optim.epochs=1"])
    metrics = train(cfg, tmp_path / "run", progress=False)
    assert metrics["epochs"] == 1
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert np.isfinite(log[0]["loss"])
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert all(v.dtype in (torch.float32, torch.int64) for v in state["model"].values() if v.is_floating_point()
               or v.dtype == torch.int64)
    assert state["model"]["prompt_learner.ctx"].dtype == torch.float32
    emulated = cpu_has_native_bf16() is False  # this machine's own CPU: the run says so only where bf16 is slow
    assert ("bf16 autocast is emulated" in (tmp_path / "run" / "train.log").read_text()) == emulated


ZEN3 = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx avx2 fma bmi2\n"
SAPPHIRE = "processor\t: 0\nflags\t\t: avx2 avx512f avx512bw avx512_bf16 amx_bf16 amx_tile\n"
GENOA = "processor\t: 0\nflags\t\t: avx2 avx512f avx512_bf16 avx512_vnni\n"
GRAVITON = "processor\t: 0\nFeatures\t: fp asimd sve\n"
GRAVITON3 = "processor\t: 0\nFeatures\t: fp asimd sve i8mm bf16 svebf16\n"


@pytest.mark.parametrize("cpuinfo,native", [(ZEN3, False), (SAPPHIRE, True), (GENOA, True), (GRAVITON, False),
                                            (GRAVITON3, True), ("processor\t: 0\n", None)])
def test_native_bf16_is_read_from_the_cpu_flags(tmp_path, cpuinfo, native):
    f = tmp_path / "cpuinfo"
    f.write_text(cpuinfo)
    assert cpu_has_native_bf16(f) is native
    line = bf16_warning(torch.device("cpu"), torch.bfloat16, f)
    assert (line is not None) == (native is False)
    assert bf16_warning(torch.device("cpu"), None, f) is None  # fp32 runs are not warned
    assert bf16_warning(torch.device("cuda"), torch.bfloat16, f) is None  # the GPU has its own bf16


def test_an_unreadable_cpuinfo_warns_nothing(tmp_path):
    assert cpu_has_native_bf16(tmp_path / "absent") is None
    assert bf16_warning(torch.device("cpu"), torch.bfloat16, tmp_path / "absent") is None


def test_persistent_workers_see_each_epoch_as_a_fresh_loader_does():
    from recognizer.datasets.base import ClipConfig, SkeletonDataset, Split

    rng = np.random.default_rng(0)
    split = Split(rng.normal(size=(6, 3, 30, 25, 1)).astype(np.float32), np.arange(6) % 2,
                  np.full(6, 30))
    clip = ClipConfig(window=16)

    def epochs(**kw) -> list[torch.Tensor]:
        ds = SkeletonDataset(split, NTU25, clip, train=True, seed=3)
        loader = DataLoader(ds, batch_size=6, **kw)
        seen = []
        for epoch in range(2):
            ds.set_epoch(epoch)
            seen.append(next(iter(loader))[0])
        return seen

    fresh = epochs(num_workers=0)
    kept = epochs(num_workers=1, persistent_workers=True)
    assert not torch.equal(fresh[0], fresh[1])  # the epoch changes the draw
    for a, b in zip(fresh, kept):
        torch.testing.assert_close(b, a)


def test_cpu_protocol_is_its_fp32_twin_plus_the_speed_keys_only():
    base = flatten(yaml.safe_load((REPO / "configs" / "nw-ucla-cpu-fp32.yaml").read_text()))
    fast = flatten(yaml.safe_load((REPO / "configs" / "nw-ucla-cpu.yaml").read_text()))
    speed = {"run.amp", "run.compile", "model.fused_subsets", "model.channels_last", "text.attn_implementation",
             "data.persistent_workers", "data.prefetch_factor"}
    assert {k for k in base.keys() | fast.keys() if base.get(k) != fast.get(k)} <= speed
    assert fast["run.amp"] == "bf16" and fast["model.fused_subsets"] is True


def test_gpu_check_runs_on_cpu_as_a_smoke_test(tmp_path):
    out = tmp_path / "gpu_check.json"
    cmd = ["bash", str(REPO / "bench" / "gpu_check.sh"), "--cpu", "--no-compile", "--reps", "1", "--out", str(out),
           "--work", str(tmp_path / "work")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                          env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
                               "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["mode"] == "cpu-smoke" and result["environment"]["torch"] == torch.__version__
    assert [s["method"] for s in result["steps"]] == ["gap", "pcke", "pcle"]
    assert all(s["median_step_s"] > 0 and s["amp"] == "bf16" for s in result["steps"])
    assert result["epoch"]["wall_s"] > 0 and result["epoch"]["steps"] > 0
    assert result["estimate"]["table_runs"] == 12 and result["estimate"]["table_hours"] > 0


def test_committed_runs_keep_the_config_hash_their_ablation_table_records():
    import csv

    from recognizer.analysis.runs import config_hash
    from recognizer.config import from_yaml_text

    table = REPO / "results" / "nw-ucla-cpu" / "ablation.csv"
    rows = [r for r in csv.DictReader(table.open()) if r["name"] in ("gap", "pcle") and r["seed"] == "0"]
    assert len(rows) == 2
    for r in rows:
        saved = from_yaml_text((REPO / r["run"] / "config.yaml").read_text())
        assert config_hash(saved) == r["config_hash"], r["run"]


@pytest.mark.parametrize("config, folder", [("nw-ucla-cpu.yaml", "nw-ucla-cpu-fast2"),
                                            ("nw-ucla-cpu-fp32.yaml", "nw-ucla-cpu")])
def test_each_cpu_protocol_file_plans_the_runs_its_grid_folder_holds(config, folder):
    """The CPU protocol is the fast path and its fp32 twin keeps the first grid: `pcle ablate` with either file
    must plan the config hashes its committed folder records, or a rerun would refuse (or retrain) them. The
    data location is bookkeeping of the machine that trained, so it is taken from the run."""
    import csv

    from recognizer.analysis.ablate import select
    from recognizer.analysis.runs import config_hash
    from recognizer.config import from_yaml_text, resolve

    table = csv.DictReader((REPO / "results" / folder / "ablation.csv").open())
    rows = {r["name"]: r for r in table if r["seed"] == "0"}
    for name, method, extra in select(["gap", "pcle-hybrid"]):  # the grid rows' own overrides, as pcle ablate plans
        r = rows[name]
        root = from_yaml_text((REPO / r["run"] / "config.yaml").read_text()).data.root
        planned = resolve("nw-ucla", method, str(REPO / "configs" / config), [*extra, f"data.root={root}"])
        assert config_hash(planned) == r["config_hash"], r["run"]
