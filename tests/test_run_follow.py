"""Runs people can trust and follow (issue 11): exact resume, epoch lines, provenance, best.pt on
validation, `pcle runs`, clean errors, data tools that agree, predict past a bad clip."""

import hashlib
import json
import os
import re
import subprocess

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from pipeline import app
from recognizer.analysis.evaluate import load_trained
from recognizer.cli import interrupted_run
from recognizer.config import Config, resolve, to_yaml
from recognizer.training.run_setup import with_data_root
from tests.conftest import REPO, tiny_overrides

EPOCH_LINE = re.compile(r"^epoch (\d+)/(\d+)  loss \S+  ce \S+  train \S+( +val \S+)?  top1 \S+  lr \S+  "
                        r"samples/s \d+  eta \S+$")


def tiny_args(tmp_path, *extra: str) -> list[str]:
    over = tiny_overrides(tmp_path, "tiny-bert") + ["data.options={train_per_class: 4, test_per_class: 2, seed: 0}"]
    return ["train", *[a for item in over for a in ("--set", item)], "--no-progress", *extra]


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """A 2-epoch GAP run through the command line, with a validation split (so best.pt exists)."""
    from transformers.utils import logging as hf_logging

    tmp = tmp_path_factory.mktemp("follow")
    run = tmp / "run"
    res = CliRunner().invoke(app, tiny_args(tmp, "--dataset", "synthetic", "--method", "gap", "--out", str(run),
                                            "--set", "data.val_fraction=0.25"))
    bars_off = not hf_logging.is_progress_bar_enabled()
    hf_logging.enable_progress_bar()
    assert res.exit_code == 0, res.output
    return {"run": run, "output": res.output, "bars_off": bars_off, "tmp": tmp}


def test_one_line_per_epoch_on_the_console_and_in_train_log(cli_run):
    out = cli_run["output"].splitlines()
    epochs = [line for line in out if line.startswith("epoch ")]
    assert len(epochs) == 2 and all(EPOCH_LINE.match(line) for line in epochs), epochs
    assert "" not in out[: out.index(epochs[-1])]  # no blank lines left by progress bars
    log = (cli_run["run"] / "train.log").read_text().splitlines()
    assert [line for line in log if line.startswith("epoch ")] == epochs
    assert log[0].startswith("# ") and "started: gap on synthetic" in log[0]
    assert cli_run["bars_off"]  # --no-progress also silences transformers' "Loading weights" bar
    assert "warning" not in cli_run["output"]  # a later --set of the same key is not a --method override


def test_provenance_names_code_data_corpus_and_machine(cli_run):
    prov = json.loads((cli_run["run"] / "provenance.json").read_text())
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert prov["started"]["git"]["commit"] == head and isinstance(prov["started"]["git"]["dirty"], bool)
    assert prov["started"]["packages"]["torch"] == torch.__version__ and prov["started"]["packages"]["pcle"]
    corpus = REPO / "prompts" / "ntu120.jsonl"
    assert prov["data"]["corpus"] == str(corpus)
    assert prov["data"]["corpus_sha256"] == hashlib.sha256(corpus.read_bytes()).hexdigest()
    assert prov["data"]["samples"] == {"train": 30, "val": 10, "test": 20}
    assert re.fullmatch(r"[0-9a-f]{64}", prov["data"]["sample_fingerprint"])
    assert prov["started"]["machine"]["cpu"] and prov["started"]["machine"]["device"] == "cpu"
    # a dataset read from a folder saves that folder, never `root: null`
    root = with_data_root(resolve("nw-ucla")).data.root
    assert root is not None and root.endswith("nw-ucla/all_sqe") and os.path.isabs(root)


def test_best_checkpoint_is_chosen_on_validation(cli_run):
    run = cli_run["run"]
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    val = [e["val_top1"] for e in log]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["best_epoch"] == 1 + int(np.argmax(val)) and metrics["best_val_top1"] == max(val)
    best = load_trained(run / "best.pt")  # usable for inference: carries that epoch's class text
    assert best.meta["epoch"] == metrics["best_epoch"] and best.model.class_text.abs().sum() > 0


def test_a_fixed_logits_rule_records_its_validation_top1(cli_run, tmp_path):
    """GAP's rule is fixed (the head's logits), yet its record holds the final model's validation top-1 like
    a chosen rule's; a metrics.json written before that gets it back from the saved validation scores."""
    import shutil

    from recognizer.analysis.runs import compare_runs, read_run

    run = cli_run["run"]
    last = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()][-1]
    inference = json.loads((run / "metrics.json").read_text())["inference"]
    assert inference["rule"] == "logits" and inference["chosen_on"] == "fixed"
    assert inference["val_top1"] == pytest.approx(last["val_top1"]) == inference["val_top1_logits"]
    old = tmp_path / "old"
    shutil.copytree(run, old, ignore=shutil.ignore_patterns("*.pt", "tb"))
    metrics = json.loads((old / "metrics.json").read_text())
    metrics["inference"] = {"rule": "logits", "weight": 0.0, "chosen_on": "fixed"}
    (old / "metrics.json").write_text(json.dumps(metrics))
    assert read_run(old).metrics["inference"]["val_top1"] == pytest.approx(last["val_top1"])
    assert compare_runs([old])[0]["val_top1"] == pytest.approx(last["val_top1"])
    (old / "scores_val.npy").unlink()  # no saved scores: unknown, not made up
    assert "val_top1" not in read_run(old).metrics["inference"]


def test_resume_uses_the_runs_own_config_and_can_extend(tmp_path):
    run = tmp_path / "r"
    args = tiny_args(tmp_path, "--dataset", "synthetic", "--method", "gap", "--out", str(run))  # run.threads=1
    res = CliRunner().invoke(app, args + ["--stop-after", "1"])
    assert res.exit_code == 0 and "stopped after epoch 1" in res.output, res.output
    torch.set_num_threads(2)  # what a command line without run.threads would leave in place
    try:
        res = CliRunner().invoke(app, ["train", "--resume", "--out", str(run), "--no-progress"])
        threads = torch.get_num_threads()
    finally:
        torch.set_num_threads(1)
    assert res.exit_code == 0, res.output
    assert "training gap on synthetic" in res.output  # the run's method, not the command line's default
    assert threads == 1  # the environment came from the run's config (run.threads=1)
    assert json.loads((run / "provenance.json").read_text())["resumed"][0]["machine"]["torch_threads"] == 1
    res = CliRunner().invoke(app, ["train", "--resume", "--out", str(run), "--epochs", "3", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert len((run / "log.jsonl").read_text().splitlines()) == 3
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 3
    assert len(json.loads((run / "provenance.json").read_text())["resumed"]) == 2
    res = CliRunner().invoke(app, ["train", "--resume", "--out", str(run), "--epochs", "2"])
    assert res.exit_code == 2 and "3 epochs are done already" in res.output


@pytest.mark.parametrize("extra,message", [
    (["--set", "model.width=0"], "model.width=0: must be at least 1"),
    (["--epochs", "0"], "optim.epochs=0: must be at least 1"),
    (["--epochs", "-3"], "optim.epochs=-3: must be at least 1"),
    (["--set", "data.options={train_per_clas: 2}"], "has no option 'train_per_clas'"),
])
def test_bad_values_are_one_line_errors(tmp_path, extra, message):
    res = CliRunner().invoke(app, tiny_args(tmp_path, "--dataset", "synthetic", "--out", str(tmp_path / "x"), *extra))
    assert res.exit_code == 2 and message in res.output and "Traceback" not in res.output, res.output
    assert not (tmp_path / "x").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a torch that cannot use CUDA")
def test_cuda_on_a_cpu_only_torch_is_a_one_line_error(tmp_path, cli_run):
    res = CliRunner().invoke(app, tiny_args(tmp_path, "--out", str(tmp_path / "x"), "--set", "run.device=cuda"))
    assert res.exit_code == 2 and "device 'cuda'" in res.output and "Traceback" not in res.output, res.output
    res = CliRunner().invoke(app, ["evaluate", str(cli_run["run"]), "--device", "cuda"])
    assert res.exit_code == 2 and "device 'cuda'" in res.output, res.output


def test_a_folder_of_an_earlier_run_is_never_overwritten(tmp_path):
    run = tmp_path / "old"
    run.mkdir()
    (run / "config.yaml").write_text("keep me\n")
    res = CliRunner().invoke(app, tiny_args(tmp_path, "--dataset", "synthetic", "--out", str(run)))
    assert res.exit_code == 2 and "config.yaml of an earlier run" in res.output
    assert (run / "config.yaml").read_text() == "keep me\n"
    # Ctrl-C before the first checkpoint must not promise one
    assert "nothing to resume" in interrupted_run(run) and "--resume" not in interrupted_run(run)
    (run / "checkpoint.pt").write_bytes(b"x")
    assert "--resume" in interrupted_run(run)


def test_print_config_version_and_method_warning(tmp_path):
    res = CliRunner().invoke(app, ["train", "--dataset", "nw-ucla", "--method", "gap", "--set", "model.bridger=true",
                                   "--out", str(tmp_path / "never"), "--print-config"])
    assert res.exit_code == 0, res.output
    assert "--method gap sets model.bridger=False, overriding --set model.bridger=true" in res.output
    cfg = yaml.safe_load(res.output[res.output.index("data:"):])
    assert cfg["method"] == "gap" and cfg["data"]["root"].endswith("all_sqe")
    assert not (tmp_path / "never").exists()
    res = CliRunner().invoke(app, ["--version"])
    assert res.exit_code == 0 and re.fullmatch(r"pcle \d+\.\d+\.\d+\S*\n", res.output)


def test_cache_location_follows_pcle_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("PCLE_CACHE", str(tmp_path / "c"))
    assert Config().prompt.cache_dir == str(tmp_path / "c" / "text-embeddings")
    monkeypatch.delenv("PCLE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert Config().prompt.cache_dir == str(tmp_path / "xdg" / "pcle" / "text-embeddings")


def _fake_run(folder, method, seed, top1, **over):
    cfg = resolve("synthetic", method, overrides=[f"run.seed={seed}"] + [f"{k}={v}" for k, v in over.items()])
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(to_yaml(cfg))
    (folder / "metrics.json").write_text(json.dumps({"method": method, "dataset": "synthetic", "stream": "joint",
                                                     "top1": top1, "top5": 99.0, "epochs": 110,
                                                     "train_samples_per_s": 100.0 + seed}))


def test_runs_compares_folders(tmp_path, cli_run):
    _fake_run(tmp_path / "gap" / "seed0", "gap", 0, 50.0)
    _fake_run(tmp_path / "gap" / "seed1", "gap", 1, 60.0)
    _fake_run(tmp_path / "pcle", "pcle", 0, 70.0, **{"optim.lr": 0.05})
    res = CliRunner().invoke(app, ["runs", str(tmp_path / "gap"), str(tmp_path / "pcle"), "--markdown"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert len(lines) == 4 and "| 0,1 |" in lines[2] and "55.00 ± 7.07" in lines[2] and "100.5" in lines[2]
    assert "method=pcle" in lines[3] and "optim.lr=0.05" in lines[3] and "model.bridger=True" in lines[3]
    assert "run.seed" not in lines[3]
    assert lines[2].split(" | ")[8] == "–"  # no top1_logits and no log.jsonl: unknown, not made up
    # an older run without top1_logits: its last epoch's line in log.jsonl, if that epoch is the last one
    for seed, head in ((0, 48.0), (1, 58.0)):
        (tmp_path / "gap" / f"seed{seed}" / "log.jsonl").write_text(
            json.dumps({"epoch": 109, "test_top1": 1.0}) + "\n" + json.dumps({"epoch": 110, "test_top1": head}) + "\n")
    res = CliRunner().invoke(app, ["runs", str(tmp_path / "gap"), "--markdown"])
    assert res.output.splitlines()[2].split(" | ")[8] == "53.00 ± 7.07", res.output
    res = CliRunner().invoke(app, ["runs", str(tmp_path / "gap"), str(tmp_path / "pcle"), "--csv", "--sort", "top1"])
    rows = list(__import__("csv").DictReader(res.output.splitlines()))
    assert [r["method"] for r in rows] == ["pcle", "gap"] and rows[1]["runs"] == "2"
    res = CliRunner().invoke(app, ["runs", str(cli_run["run"]), "--markdown"])  # a real run folder
    assert res.exit_code == 0 and "| gap | synthetic | joint | 0 | 2 |" in res.output, res.output
    res = CliRunner().invoke(app, ["runs", str(cli_run["run"])])  # the rich table
    assert res.exit_code == 0 and "1 runs in 1 rows" in res.output
    res = CliRunner().invoke(app, ["runs", str(tmp_path / "nothing")])
    assert res.exit_code == 2 and "not a run folder" in res.output
    res = CliRunner().invoke(app, ["runs", str(tmp_path / "pcle"), "--sort", "colour"])
    assert res.exit_code == 2 and "--sort 'colour'" in res.output


def _ucla_clip(folder, name, frames, label=1, skeletons=True):
    rec = {"file_name": name, "label": label}
    if skeletons:
        rng = np.random.default_rng(len(name) + frames)
        rec["skeletons"] = rng.normal(size=(frames, 20, 3)).round(3).tolist()
    (folder / f"{name}.json").write_text(json.dumps(rec))


def test_data_tools_agree_on_single_frame_ucla_clips(tmp_path):
    src = tmp_path / "ucla"
    src.mkdir()
    for name, frames in (("a01_s01_e00_v01", 6), ("a02_s01_e00_v01", 1), ("a01_s01_e00_v03", 6),
                         ("a02_s02_e00_v03", 5)):
        _ucla_clip(src, name, frames, label=int(name[1:3]))
    def run(*args: str) -> tuple[int, str]:
        res = CliRunner().invoke(app, ["data", *args])
        return res.exit_code, res.output.replace("\n", "")  # rich wraps long paths

    code, out = run("check", str(src))
    assert "'a02_s01_e00_v01' has a single frame" in out and "0 errors, 1 warnings" in out, out
    code, out = run("import-ucla", str(src), "--out", str(tmp_path / "native"))
    assert code == 0, out
    code, out = run("check", str(tmp_path / "native"))
    assert "1 clips have a single frame (no motion): 'a02_s01_e00_v01'" in out, out
    _ucla_clip(src, "a03_s01_e00_v01", 0, label=3, skeletons=False)
    code, out = run("info", str(src))
    assert code == 0 and "skipped" in out and "a03_s01_e00_v01.json: expected an object with 'skeletons'" in out, out


def test_predict_reports_a_bad_clip_and_goes_on(cli_run, tmp_path):
    trained = load_trained(cli_run["run"])
    np.save(tmp_path / "good.npy", np.random.default_rng(0).normal(size=(3, 20, 25, 1)).astype(np.float32))
    (tmp_path / "bad.txt").write_text("x")
    out = tmp_path / "pred.json"
    res = CliRunner().invoke(app, ["predict", str(cli_run["run"]), str(tmp_path / "bad.txt"),
                                   str(tmp_path / "good.npy"), "--json", str(out)])
    assert res.exit_code == 1, res.output
    assert "skipped:" in res.output and "bad.txt: unknown clip type" in res.output
    [rec] = json.loads(out.read_text())
    assert rec["source"].endswith("good.npy") and rec["top"][0]["class"] in trained.class_names


def test_prepare_ntu_into_an_unwritable_folder(tmp_path):
    from recognizer.datasets.ntu_generate import generate_tree

    generate_tree(tmp_path / "raw", ["S001C001P001R001A001"], frames=(20, 21))

    def prepare(out) -> str:
        res = CliRunner().invoke(app, ["data", "prepare-ntu", "--raw", str(tmp_path / "raw"), "--out", str(out),
                                       "--quiet", "--workers", "1"])
        assert res.exit_code == 2 and "Traceback" not in res.output, res.output
        return res.output.replace("\n", "")

    (tmp_path / "file").write_text("")
    assert "Not a directory" in prepare(tmp_path / "file" / "out")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write into read-only folders (root)")
        assert "Permission denied" in prepare(locked / "out")
    finally:
        locked.chmod(0o755)
