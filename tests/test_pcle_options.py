"""PCLE's options of issue 21: CoOp init, prompt pooling, the hybrid prompt, KgCoOp's pull, the interaction's
own AdamW group, the bridger without its query residual, the gradient scale into the backbone, the fixed
inference rule and the per-epoch diagnostics. Real modules and real (tiny) training runs."""

import json
import math

import pytest
import torch

from recognizer.analysis.runs import config_hash
from recognizer.config import resolve
from recognizer.method.graph import NTU25
from recognizer.method.interaction import Bridger
from recognizer.method.model import PromptedContrastiveModel, scale_grad
from recognizer.method.prompt_learner import PromptLearner
from recognizer.method.text_encoder import TextConfig, build_text_encoder
from recognizer.train import train
from recognizer.training.diagnostics import interaction_warning, text_cosines
from tests.conftest import tiny_overrides

NAMES = ["wave a hand", "jump up", "sit down"]


@pytest.fixture(scope="module")
def bert():
    return build_text_encoder(TextConfig(encoder="tiny-bert", tiny_dim=32))


def test_coop_init_sets_the_context_length_to_the_init_words(bert):
    ids = bert.tokenizer("a person is", add_special_tokens=False)["input_ids"]
    coop = PromptLearner(bert, NAMES, n_ctx=16, ctx_init="a person is", init_length="words")
    assert coop.ctx.shape[1] == len(ids) == coop.n_ctx
    torch.testing.assert_close(coop.ctx[0], bert.token_embedding()(torch.tensor(ids)))
    fill = PromptLearner(bert, NAMES, n_ctx=16, ctx_init="a person is")  # the first slots of 16 (as before)
    assert fill.ctx.shape[1] == 16
    with pytest.raises(ValueError, match="prompt.init_length"):
        PromptLearner(bert, NAMES, init_length="cbow")


def test_name_and_cls_pooling_average_the_tokens_they_name(bert):
    learner = PromptLearner(bert, NAMES, n_ctx=4, pooling="name")
    with torch.no_grad():
        emb = learner(bert)  # (C, D)
        embeds, mask = learner.prompts()
        hidden = bert.model(inputs_embeds=embeds, attention_mask=mask).last_hidden_state  # (C, L, W)
    for c in range(len(NAMES)):
        real = int(mask[c].sum())
        torch.testing.assert_close(emb[c], hidden[c, 1 + 4 : real].mean(0), atol=1e-5, rtol=1e-5)  # name + [SEP]
    cls = PromptLearner(bert, NAMES, n_ctx=4, pooling="cls")
    with torch.no_grad():
        torch.testing.assert_close(cls(bert), bert.model(inputs_embeds=cls.prompts()[0],
                                                         attention_mask=cls.prompts()[1]).last_hidden_state[:, 0])
    clip = build_text_encoder(TextConfig(encoder="tiny-clip", tiny_dim=32))
    with pytest.raises(ValueError, match="end token"):
        PromptLearner(clip, NAMES, pooling="name")


def test_static_cosine_reports_off_diagonal_only():
    text = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    s = text_cosines(text)
    assert s["text_cos_max"] == pytest.approx(math.sqrt(0.5)) and s["text_cos_min"] == pytest.approx(0.0)
    assert s["text_cos_mean"] == pytest.approx(2 * math.sqrt(0.5) / 6 * 2)


def test_hybrid_prompt_class_text_is_the_mean_of_its_synonym_prompts(bert):
    texts = ["wave a hand", "waving", "jump up", "hop", "leap", "sit down"]
    owner = [0, 0, 1, 1, 1, 2]
    learner = PromptLearner(bert, NAMES, n_ctx=3, texts=texts, owner=owner)
    assert learner.prefix.shape[0] == len(texts) and not learner.one_per_class
    with torch.no_grad():
        rows = torch.nn.functional.normalize(learner.encode_rows(bert), dim=-1)  # (S, D)
        classes = learner(bert)  # (C, D)
    torch.testing.assert_close(classes[1], rows[2:5].mean(0))
    torch.testing.assert_close(classes[2], rows[5])
    emb = learner(bert)
    emb.sum().backward()
    assert learner.ctx.grad.abs().sum() > 0  # the shared context learns from every synonym prompt


def test_hybrid_step_draws_one_synonym_per_sample(tmp_path):
    """The step's (B, D) texts are the context + the synonym PCKE's draw picks for each sample."""
    from recognizer.train import Env, _hybrid_text, build_parts

    over = tiny_overrides(tmp_path) + ["prompt.hybrid=true"]
    cfg = resolve("synthetic", "pcle", overrides=over)
    parts = build_parts(cfg, Env(torch.device("cpu"), None))
    bank, learner = parts.bank, parts.model.prompt_learner
    assert learner.prefix.shape[0] == len(bank.syn_texts) > len(parts.bundle.class_names)
    y = torch.tensor([0, 0, 0, 0, 0, 0, 0, 0, 3, 5])
    text_sample, class_text = _hybrid_text(parts.model, parts, y, torch.Generator().manual_seed(1), parts_env())
    gen = torch.Generator().manual_seed(1)
    u = torch.rand(len(y), generator=gen)
    u_cls = torch.rand(len(bank.counts), generator=gen)
    with torch.no_grad():
        want = learner.encode_rows(parts.encoder, bank.pick_index(y, u))
        want_cls = learner.encode_rows(parts.encoder, bank.pick_index(torch.arange(len(bank.counts)), u_cls))
    torch.testing.assert_close(text_sample, want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(class_text, want_cls, atol=1e-5, rtol=1e-5)
    # class_text=mean: every synonym prompt, the class text exactly as at test, the samples' rows the same draw
    text_mean, class_mean = _hybrid_text(parts.model, parts, y, torch.Generator().manual_seed(1), parts_env(), "mean")
    with torch.no_grad():
        torch.testing.assert_close(class_mean, learner(parts.encoder), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(text_mean, want, atol=1e-5, rtol=1e-5)
    drawn = bank.pick_index(y, u)[:8]
    assert len(set(drawn.tolist())) > 1  # eight samples of one class drew different synonyms
    assert all(bank.offsets[0] <= r < bank.offsets[0] + bank.counts[0] for r in drawn.tolist())


def parts_env():
    from recognizer.train import Env

    return Env(torch.device("cpu"), None)


def test_bridger_without_query_residual_pools_skeleton_only():
    """No residual: a skeleton whose tokens are all alike gives every class the same bridged token, so any
    difference between classes must come from the skeleton; with the residual each token carries its text."""
    torch.manual_seed(0)
    tokens = torch.randn(1, 1, 16).expand(2, 12, 16)  # (B, N, C_skel): one token repeated
    text = torch.randn(5, 8)  # (C, D)
    off = Bridger(16, 8, heads=2, residual=False)
    out = off(tokens, text)  # (B, C, D)
    torch.testing.assert_close(out, out[:, :1].expand_as(out), atol=1e-6, rtol=1e-5)
    on = Bridger(16, 8, heads=2, residual=True)
    on.load_state_dict(off.state_dict())
    out_on = on(tokens, text)
    assert (out_on - out_on[:, :1]).abs().max() > 1e-3


def test_gradient_scale_into_the_backbone():
    x = torch.randn(4, 3, requires_grad=True)
    y = scale_grad(x, 0.25)
    torch.testing.assert_close(y, x)
    y.sum().backward()
    torch.testing.assert_close(x.grad, torch.full_like(x, 0.25))
    cfg = resolve("synthetic", "pcke", overrides=["model.width=8", "model.heads=2", "model.interaction_grad=0"])
    model = PromptedContrastiveModel(cfg.model, NTU25, 3, 16, num_person=2)
    out = model(torch.randn(2, 3, 16, 25, 2), class_text=torch.randn(3, 16))
    out["sim_after"].sum().backward()  # an interaction loss alone
    assert model.skeleton.units[0].gcn.A.grad is None or model.skeleton.units[0].gcn.A.grad.abs().sum() == 0
    assert model.bridger.query_proj.weight.grad.abs().sum() > 0  # the interaction itself still learns


def test_interaction_warning_once_at_half_the_epochs():
    chance = math.log(10)
    stats = {"epoch": 8, "contrastive_after": 2.33, "contrastive_after_chance": chance}
    assert "still at chance" in interaction_warning(stats, 16)
    assert interaction_warning({**stats, "epoch": 9}, 16) is None  # once
    assert interaction_warning({**stats, "contrastive_after": 1.8}, 16) is None  # learning


def test_all_options_train_resume_exactly_and_log_diagnostics(tmp_path):
    """A tiny run with every new option: AdamW interaction group, no query residual, the gradient into the
    backbone stopped for the first epoch, hybrid prompt with CoOp init and name pooling, the pull, a global
    share, the fixed fusion rule; an interrupted + resumed run ends with the same scores."""
    import numpy as np

    from recognizer.checkpoint import load_checkpoint

    over = tiny_overrides(tmp_path) + [
        "data.val_fraction=0.3", "prompt.hybrid=true", "prompt.pooling=name", "prompt.ctx_init=a person is",
        "prompt.init_length=words", "optim.interaction_optimizer=adamw", "model.bridger_residual=false",
        "model.interaction_grad=0", "model.interaction_grad_epochs=1", "loss.prompt_pull=0.5",
        "loss.global_share=0.5", "model.inference=fusion", "model.fuse_weight=1.0"]
    cfg = resolve("synthetic", "pcle", overrides=over)
    metrics = train(cfg, tmp_path / "run", progress=False)
    assert metrics["inference"]["rule"] == "fusion" and metrics["inference"]["chosen_on"] == "fixed"
    assert {"val_top1", "val_top1_logits"} <= set(metrics["inference"])
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    for key in ("text_cos_mean", "text_cos_min", "text_cos_max", "scale_global", "scale_after",
                "contrastive_after_chance", "ctx_drift", "prompt_pull"):
        assert key in log[0], key
    assert log[0]["contrastive_after_chance"] == pytest.approx(math.log(10))
    assert log[-1]["ctx_drift"] > 0
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert [type(s).__name__ for s in state["optimizer"]["optimizers"]] == ["dict", "dict"]
    adam_groups = state["optimizer"]["optimizers"][1]["param_groups"]
    assert adam_groups[0]["weight_decay"] == cfg.optim.interaction_weight_decay
    # pcle runs shows the validation top-1 of the rule, the epoch the interaction left chance, the text cosine
    from recognizer.analysis.curves import plot_diagnostics
    from recognizer.analysis.runs import compare_runs, to_markdown

    row = compare_runs([tmp_path / "run"])[0]
    assert row["val_top1"] == pytest.approx(metrics["inference"]["val_top1"])
    left = next((h["epoch"] for h in log if h["contrastive_after"] < 0.97 * math.log(10)), None)
    assert row["left_chance"] == ("–" if left is None else str(left))
    assert row["text_cos"] == pytest.approx(log[-1]["text_cos_mean"])
    assert "leaves chance" in to_markdown([row])
    data = plot_diagnostics([tmp_path / "run"], tmp_path / "diag.png")
    assert (tmp_path / "diag.png").stat().st_size > 0
    assert list(data.values())[0]["contrastive_after"][0] == pytest.approx(log[0]["contrastive_after"] / math.log(10))
    train(cfg, tmp_path / "r2", progress=False, stop_after=1)
    train(cfg, tmp_path / "r2", progress=False, resume=True)
    np.testing.assert_array_equal(np.load(tmp_path / "run" / "scores_test.npy"),
                                  np.load(tmp_path / "r2" / "scores_test.npy"))


def test_new_keys_leave_gap_and_pcke_hashes_alone():
    """The PCLE-only keys do not touch PCKE's or GAP's config hash; the interaction keys do not touch GAP's."""
    pcle_only = ["prompt.hybrid=true", "prompt.pooling=name", "prompt.init_length=words", "loss.prompt_pull=1"]
    inter = ["optim.interaction_optimizer=adamw", "optim.interaction_lr=0.01", "model.bridger_residual=false",
             "model.interaction_grad=0.5", "model.interaction_grad_epochs=3", "model.fuse_weight=2"]
    for method, keys in (("gap", pcle_only + inter), ("pcke", pcle_only)):
        assert config_hash(resolve("nw-ucla", method)) == config_hash(resolve("nw-ucla", method, overrides=keys))
    assert config_hash(resolve("nw-ucla", "pcle")) != config_hash(resolve("nw-ucla", "pcle", overrides=pcle_only))
    with pytest.raises(ValueError, match="train_classes"):
        from recognizer.train import Env, build_parts

        build_parts(resolve("synthetic", "pcle", overrides=["prompt.hybrid=true", "prompt.train_classes=3",
                                                            "text.encoder=tiny-bert", "model.width=8"]),
                    Env(torch.device("cpu"), None))


def test_weight_average_is_scored_beside_the_final_weights_and_resumes(tmp_path):
    from recognizer.analysis.evaluate import load_trained
    from recognizer.checkpoint import load_checkpoint

    cfg = resolve("synthetic", "pcle", overrides=tiny_overrides(tmp_path, "tiny-clip") + ["optim.ema_decay=0.9"])
    metrics = train(cfg, tmp_path / "run", progress=False)
    assert {"top1", "top5", "top1_logits", "inference", "decay"} <= set(metrics["ema"])
    final = load_checkpoint(tmp_path / "run" / "checkpoint.pt")["model"]
    ema = load_checkpoint(tmp_path / "run" / "ema.pt")["model"]
    assert any(not torch.equal(final[k], ema[k]) for k in final if final[k].is_floating_point())
    trained = load_trained(tmp_path / "run" / "ema.pt")  # loadable like checkpoint.pt / best.pt
    assert trained.model.class_text.abs().sum() > 0
    train(cfg, tmp_path / "r2", progress=False, stop_after=1)
    resumed = train(cfg, tmp_path / "r2", progress=False, resume=True)
    assert resumed["ema"]["top1"] == metrics["ema"]["top1"]
    ema2 = load_checkpoint(tmp_path / "r2" / "ema.pt")["model"]
    for k in ema:
        torch.testing.assert_close(ema[k], ema2[k], rtol=0, atol=0, msg=k)
    with pytest.raises(ValueError, match="ema_decay"):
        train(resolve("synthetic", "pcle", overrides=tiny_overrides(tmp_path) + ["optim.ema_decay=1.5"]),
              tmp_path / "bad", progress=False)
