"""`pcle train` on bad input and on a cluster: bad keys named before a folder is made, SIGTERM handled like
Ctrl-C, nothing left behind by a run that never finished an epoch, the expected duration and in-epoch
progress lines in a log."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline import app
from recognizer.training.run_log import EpochLog, StepLog
from recognizer.training.run_setup import discard_unstarted
from tests.conftest import REPO, tiny_overrides

runner = CliRunner()


def _train(tmp_path, *extra: str, out: Path | None = None, over: list[str] | None = None):
    args = ["train", "--dataset", "synthetic", "--method", "pcke", "--out", str(out or tmp_path / "run"),
            "--no-progress"]
    for item in (over if over is not None else tiny_overrides(tmp_path)) + list(extra):
        args += ["--set", item]
    return runner.invoke(app, args)


@pytest.mark.parametrize("item,message", [
    ("model.heads=7", "model.heads=7: must divide the text embedding width 32 of text.encoder=tiny-bert "
                      "(allowed: 1, 2, 4, 8, 16, 32"),
    ("loss.margin=-1", "loss.margin=-1.0: must be at least 0"),
    ("data.clip.stream=bones", "data.clip.stream='bones': must be one of joint, bone, joint_motion, bone_motion"),
    ("model.inference=logit", "model.inference='logit': must be one of auto, logits, similarity, fusion"),
    ("text.encoder=minilmm", "text.encoder='minilmm': must be one of minilm"),
    ("model.width=abc", "--set model.width=abc: model.width: expected int, got 'abc'"),
    ("optim.lrr=1", "--set optim.lrr=1: unknown key 'optim.lrr' (known in optim:"),
])
def test_bad_keys_are_named_before_any_folder_is_made(tmp_path, item, message):
    res = _train(tmp_path, item)
    assert res.exit_code == 2, res.output
    assert message in " ".join(res.output.split()) and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_stop_after_zero_is_refused(tmp_path):
    res = runner.invoke(app, ["train", "--dataset", "synthetic", "--stop-after", "0", "--out", str(tmp_path / "s")])
    assert res.exit_code == 2 and "--stop-after 0: must be at least 1" in res.output
    assert "--resume" not in res.output and not (tmp_path / "s").exists()


def test_a_failure_before_the_first_checkpoint_leaves_nothing_behind(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(RuntimeError), discard_unstarted(run):
        run.mkdir()
        (run / "config.yaml").write_text("x")
        (run / "tb").mkdir()
        raise RuntimeError("unknown stream, found at the first step")
    assert not run.exists()
    run.mkdir()
    (run / "mine.txt").write_text("kept")
    with pytest.raises(KeyboardInterrupt), discard_unstarted(run):
        (run / "config.yaml").write_text("x")
        raise KeyboardInterrupt
    assert sorted(p.name for p in run.iterdir()) == ["mine.txt"]
    with pytest.raises(KeyboardInterrupt), discard_unstarted(run):  # a checkpoint: the run resumes, all stays
        (run / "config.yaml").write_text("x")
        (run / "checkpoint.pt").write_text("x")
        raise KeyboardInterrupt
    assert (run / "config.yaml").is_file()


def test_the_cuda_error_names_options_that_exist():
    import torch

    from recognizer.training.run_setup import resolve_device

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    with pytest.raises(ValueError, match="--set run.device=cpu for pcle train; --device cpu for evaluate") as e:
        resolve_device("cuda")
    # every option the advice names exists: run.device in the config, --device on each command it lists
    import re

    import typer

    from recognizer.config import RunConfig

    assert RunConfig().device == "auto"
    named = re.search(r"--device cpu for ([a-z, ]+)\)", str(e.value)).group(1).split(", ")
    commands = typer.main.get_command(app).commands
    assert named and all("--device" in {o for p in commands[c].params for o in p.opts} for c in named), named


class _Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_step_log_announces_the_duration_and_prints_lines_in_a_log(tmp_path):
    clock, lines = _Clock(), []
    log = EpochLog(tmp_path, 10, 0, stream=open(os.devnull, "w"))
    log._emit = lines.append
    steps = StepLog(log, steps_per_epoch=100, total_epochs=10, start_epoch=0, periodic=True, every_s=30.0,
                    clock=clock)
    steps.start_epoch(0)
    for _ in range(61):
        clock.t += 0.5 if steps.done else 20.0  # the first step pays for warm-up, then 2 steps/s of 32 samples
        steps.step(32)
    expected = [x for x in lines if "expected duration" in x]
    assert len(expected) == 1 and "about 8m20s of training steps for 10 epoch(s) of 100 steps" in expected[0]
    assert "64 samples/s" in expected[0]
    progress = [x for x in lines if "step " in x and "expected" not in x]
    assert len(progress) == 1 and progress[0].split()[:4] == ["epoch", "1/10", "step", "61/100"]  # 30 s after step 1
    assert "samples/s 64" in progress[0] and "epoch eta 20s" in progress[0] and "run eta 7m50s" in progress[0]
    quiet = StepLog(log, 100, 10, 0, periodic=False, clock=clock)  # a terminal: a bar, no lines
    lines.clear()
    for _ in range(200):
        clock.t += 1.0
        quiet.step(32)
    assert [x for x in lines if "expected duration" in x] and not [x for x in lines if "run eta" in x]


def test_a_piped_run_says_its_duration_and_sigterm_is_handled_like_ctrl_c(tmp_path):
    """A log (not a terminal) gets the expected duration after the first steps and progress lines inside the
    epoch; SIGTERM then ends the run like Ctrl-C (the issue: it printed nothing and left a config-only folder
    that blocked the same --out)."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "pipeline", "train", "--dataset", "synthetic", "--method", "pcke", "--out", str(out),
           "--progress-every", "0"] + sum([["--set", i] for i in tiny_overrides(tmp_path) + ["optim.batch_size=2"]], [])
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    seen = []
    for line in proc.stdout:  # 60 clips / 2 = 30 steps an epoch: terminate well inside the first one
        seen.append(line)
        if "step 6/30" in line:
            proc.send_signal(signal.SIGTERM)
            break
    rest = proc.stdout.read()
    head = "".join(seen)
    assert proc.wait(timeout=300) == 143, head + rest
    assert "expected duration: about" in head and "for 2 epoch(s) of 30 steps" in head
    assert "step 5/30  samples/s" in head and "run eta" in head
    assert "interrupted before the first epoch finished" in rest and "rerun the same command" in rest
    assert "Traceback" not in rest
    assert not out.exists()  # nothing blocks the same command
