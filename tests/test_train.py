"""Real training runs on the embedded dataset with tiny models: one per method, resume, CLI."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from pipeline import app
from recognizer.analysis.evaluate import load_trained
from recognizer.analysis.runs import last_epoch_head_top1
from recognizer.checkpoint import load_checkpoint
from recognizer.config import resolve
from recognizer.train import train
from tests.conftest import tiny_overrides

RUN_FILES = {"config.yaml", "log.jsonl", "checkpoint.pt", "metrics.json", "scores_test.npy", "labels_test.npy",
             "samples_test.txt", "tb"}


@pytest.mark.parametrize("method,encoder", [("pcke", "tiny-bert"), ("pcle", "tiny-clip"), ("gap", "tiny-bert")])
def test_end_to_end_run_folder(tmp_path, method, encoder):
    cfg = resolve("synthetic", method, overrides=tiny_overrides(tmp_path, encoder))
    metrics = train(cfg, tmp_path / "run", progress=False)
    run = tmp_path / "run"
    assert RUN_FILES <= {p.name for p in run.iterdir()}
    saved = json.loads((run / "metrics.json").read_text())
    for key in ("top1", "top5", "epochs", "train_samples_per_s", "method", "dataset"):
        assert key in saved
    assert saved["method"] == method and saved["dataset"] == "synthetic" and saved["epochs"] == 2
    assert 0 <= metrics["top1"] <= metrics["top5"] <= 100
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in log] == [1, 2]
    assert {"loss", "ce", "lr", "samples_per_s", "test_top1", "logit_scale"} <= set(log[0])
    assert ("ranking" in log[0]) == (method != "gap")
    scores = np.load(run / "scores_test.npy")
    assert scores.shape == (30, 10)
    # inference needs no text encoder: the checkpoint carries the class text embeddings
    trained = load_trained(run)
    assert trained.model.class_text.abs().sum() > 0
    assert not any(k.startswith("prompt_learner") for k in trained.model.state_dict())


@pytest.mark.parametrize("method,encoder,extra", [("pcle", "tiny-clip", []),
                                                  ("gap", "tiny-bert", ["optim.repeat=2"])])
def test_resume_gives_the_same_weights(tmp_path, method, encoder, extra):
    """Exact resume, also for GAP's fine-tuned text tower and with repeated passes per epoch."""
    over = tiny_overrides(tmp_path, encoder) + extra
    full = train(resolve("synthetic", method, overrides=over), tmp_path / "full", progress=False)
    part = train(resolve("synthetic", method, overrides=over), tmp_path / "split", stop_after=1, progress=False)
    assert part == {"epochs": 1, "stopped": True}
    assert load_checkpoint(tmp_path / "split" / "checkpoint.pt")["epoch"] == 1
    resumed = train(resolve("synthetic", method, overrides=over), tmp_path / "split", resume=True, progress=False)
    ca, cb = load_checkpoint(tmp_path / "full" / "checkpoint.pt"), load_checkpoint(tmp_path / "split" / "checkpoint.pt")
    a, b = ca["model"], cb["model"]
    if method == "gap":  # GAP fine-tunes its text tower: its weights are part of the run
        a, b = {**a, **ca["text_encoder_state"]}, {**b, **cb["text_encoder_state"]}
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    assert resumed["top1"] == full["top1"]
    log = (tmp_path / "split" / "log.jsonl").read_text().splitlines()
    assert len(log) == 2  # no repeated epoch in the log


def test_refuses_to_overwrite_a_run(tmp_path):
    over = tiny_overrides(tmp_path) + ["optim.epochs=1"]
    train(resolve("synthetic", "gap", overrides=over), tmp_path / "r", progress=False)
    with pytest.raises(FileExistsError, match="already holds a run"):
        train(resolve("synthetic", "gap", overrides=over), tmp_path / "r", progress=False)


def test_cli_train_evaluate_and_clean_errors(tmp_path):
    runner = CliRunner()
    args = ["train", "--dataset", "synthetic", "--method", "pcke", "--out", str(tmp_path / "cli"), "--no-progress",
            "--epochs", "1"]
    for item in tiny_overrides(tmp_path):
        args += ["--set", item]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "top1" in res.output
    res = runner.invoke(app, ["evaluate", str(tmp_path / "cli")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "cli" / "eval.json").is_file()
    res = runner.invoke(app, ["train", "--dataset", "nope", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "unknown dataset 'nope'" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["train", "--dataset", "synthetic", "--prompts", str(tmp_path / "none.jsonl"),
                              "--out", str(tmp_path / "y")] + sum([["--set", i] for i in tiny_overrides(tmp_path)], []))
    assert res.exit_code == 2 and "none.jsonl: corpus file not found" in res.output
    res = runner.invoke(app, ["train", "--resume", "--out", str(tmp_path / "empty")])
    assert res.exit_code == 2 and "nothing to resume" in res.output


def test_pcle_class_subset_trains_and_samples_the_batch_classes(tmp_path):
    from recognizer.train import class_subset

    gen = torch.Generator().manual_seed(0)
    labels = torch.tensor([3, 3, 7])
    sub = class_subset(labels, 10, 5, gen)
    assert len(sub) == 5 and {3, 7} <= set(sub.tolist()) and sub.tolist() == sorted(sub.tolist())
    assert class_subset(labels, 10, 0, gen) is None and class_subset(labels, 10, 10, gen) is None
    over = tiny_overrides(tmp_path, "tiny-clip") + ["prompt.train_classes=6"]
    metrics = train(resolve("synthetic", "pcle", overrides=over), tmp_path / "run", progress=False)
    assert metrics["epochs"] == 2 and 0 <= metrics["top1"] <= 100
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert all(np.isfinite(e["ranking"]) for e in log)


def test_gap_fine_tunes_its_text_tower_and_pcle_its_context_at_its_own_lr(tmp_path):
    from recognizer.method.text_encoder import build_text_encoder

    over = tiny_overrides(tmp_path) + ["optim.epochs=1"]
    cfg = resolve("synthetic", "gap", overrides=over)
    assert not cfg.text.frozen and cfg.model.scale_mode == "linear" and not cfg.loss.after
    train(cfg, tmp_path / "gap", progress=False)
    tuned = load_checkpoint(tmp_path / "gap" / "checkpoint.pt")["text_encoder_state"]
    fresh = build_text_encoder(cfg.text).state_dict()
    assert any(not torch.equal(tuned[k], fresh[k]) for k in fresh)
    frozen = resolve("synthetic", "gap", overrides=over + ["text.gap_frozen=true"])
    assert frozen.text.frozen
    pcle = resolve("synthetic", "pcle", overrides=over)
    assert pcle.text.frozen and pcle.prompt.ctx_lr == 0.002


def test_inference_rule_is_chosen_on_validation_only(tmp_path):
    over = tiny_overrides(tmp_path, "tiny-clip") + ["data.val_fraction=0.2"]
    metrics = train(resolve("synthetic", "pcle", overrides=over), tmp_path / "run", progress=False)
    chosen = metrics["inference"]
    assert chosen["chosen_on"] == "validation" and chosen["rule"] in ("logits", "fusion", "similarity")
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["inference"] == chosen
    trained = load_trained(tmp_path / "run")
    expected = [0.0 if chosen["rule"] == "similarity" else 1.0, chosen["weight"]]
    assert trained.model.fusion.tolist() == pytest.approx(expected)
    no_val = train(resolve("synthetic", "pcle", overrides=tiny_overrides(tmp_path, "tiny-clip")), tmp_path / "r2",
                   progress=False)
    assert no_val["inference"]["rule"] == "logits"  # never tuned on test
    # top1_logits: the same final weights under the head alone, as the last epoch's line scored them
    last = json.loads((tmp_path / "run" / "log.jsonl").read_text().splitlines()[-1])
    assert metrics["top1_logits"] == pytest.approx(last["test_top1"])
    assert last_epoch_head_top1(tmp_path / "run", metrics["epochs"]) == pytest.approx(metrics["top1_logits"])
    assert no_val["top1_logits"] == pytest.approx(no_val["top1"])


def test_parameter_groups_cover_every_trainable_parameter_once():
    from recognizer.method.graph import NTU25
    from recognizer.method.model import PromptedContrastiveModel
    from recognizer.method.prompt_learner import PromptLearner
    from recognizer.method.text_encoder import TextConfig, build_text_encoder
    from recognizer.train import param_groups

    cfg = resolve("synthetic", "pcle", overrides=["model.width=8", "model.heads=2", "optim.interaction_lr_ratio=0.1"])
    enc = build_text_encoder(TextConfig(encoder="tiny-clip", tiny_dim=16))
    model = PromptedContrastiveModel(cfg.model, NTU25, 3, 16, prompt_learner=PromptLearner(enc, ["a", "b", "c"], 2))
    groups = {g["name"]: g for g in param_groups(model, enc, cfg)}
    assert set(groups) == {"backbone", "interaction", "context"}
    assert groups["interaction"]["base_lr"] == pytest.approx(0.1 * cfg.optim.lr)
    assert groups["context"]["base_lr"] == cfg.prompt.ctx_lr
    ids = [id(p) for g in groups.values() for p in g["params"]]
    assert len(ids) == len(set(ids)) == sum(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("method,key,values", [("gap", "optim.interaction_lr_ratio", ("1.0", "0.1")),
                                               ("pcke", "prompt.ctx_lr", ("0.002", "0.5"))])
def test_keys_a_run_cannot_use_train_alike_and_share_its_config_hash(tmp_path, method, key, values):
    """runs.UNUSED_WHEN drops keys from the config hash; this is the evidence that they change nothing."""
    from recognizer.analysis.runs import config_hash

    over = tiny_overrides(tmp_path) + ["optim.epochs=1", "text.gap_frozen=true"]
    cfgs = [resolve("synthetic", method, overrides=over + [f"{key}={v}"]) for v in values]
    for cfg, v in zip(cfgs, values):
        train(cfg, tmp_path / v, progress=False)
    a, b = (load_checkpoint(tmp_path / v / "checkpoint.pt")["model"] for v in values)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    assert config_hash(cfgs[0]) == config_hash(cfgs[1])
    pcle = [resolve("synthetic", "pcle", overrides=over + [f"{key}={v}"]) for v in values]
    assert config_hash(pcle[0]) != config_hash(pcle[1])  # PCLE uses both keys


def test_scoring_fewer_epochs_changes_no_weight(tmp_path):
    """run.eval_every is outside the config hash (runs.IGNORED): evaluating test and validation draws no
    training randomness and updates no statistics, so the weights match bit for bit."""
    from recognizer.analysis.runs import config_hash

    over = tiny_overrides(tmp_path, "tiny-clip") + ["optim.epochs=2", "data.val_fraction=0.25"]
    cfgs = [resolve("synthetic", "pcle", overrides=over + [f"run.eval_every={n}"]) for n in (1, 2)]
    for cfg, n in zip(cfgs, (1, 2)):
        train(cfg, tmp_path / str(n), progress=False)
    logs = [(tmp_path / str(n) / "log.jsonl").read_text().splitlines() for n in (1, 2)]
    assert ["test_top1" in json.loads(line) for line in logs[1]] == [False, True]
    a, b = (load_checkpoint(tmp_path / str(n) / "checkpoint.pt")["model"] for n in (1, 2))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    assert config_hash(cfgs[0]) == config_hash(cfgs[1])


def test_a_step_budget_trains_the_epochs_it_makes_with_this_split(tmp_path):
    """optim.steps 9 on 60 training clips in batches of 16 (4 steps per epoch) is 3 epochs: the same weights,
    bit for bit, as optim.epochs=3, and config.yaml records the epochs the budget gave."""
    from recognizer.analysis.runs import config_hash

    over = tiny_overrides(tmp_path)
    budget = train(resolve("synthetic", "pcke", overrides=over + ["optim.steps=9"]), tmp_path / "steps",
                   progress=False)
    fixed = train(resolve("synthetic", "pcke", overrides=over + ["optim.epochs=3"]), tmp_path / "epochs",
                  progress=False)
    assert budget["epochs"] == fixed["epochs"] == 3
    saved = resolve("synthetic", "pcke", config_file=str(tmp_path / "steps" / "config.yaml"))
    assert (saved.optim.epochs, saved.optim.steps) == (3, 9)
    assert "optim.steps 9: 4 steps per epoch" in (tmp_path / "steps" / "train.log").read_text()
    # the saved run and the config that made it are one experiment (pcle ablate reuses the folder)
    assert config_hash(saved) == config_hash(resolve("synthetic", "pcke", overrides=over + ["optim.steps=9"]))
    a, b = (load_checkpoint(tmp_path / d / "checkpoint.pt")["model"] for d in ("steps", "epochs"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
