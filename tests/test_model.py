import pytest
import torch

from recognizer.config import resolve
from recognizer.method.graph import NTU25
from recognizer.method.losses import total_loss
from recognizer.method.model import PromptedContrastiveModel
from recognizer.method.prompt_learner import PromptLearner
from recognizer.method.text_encoder import TextConfig, build_text_encoder

C, D = 5, 32


@pytest.fixture(scope="module")
def encoder():
    return build_text_encoder(TextConfig(encoder="tiny-clip", tiny_dim=D))


def make(method: str, encoder=None) -> PromptedContrastiveModel:
    cfg = resolve("synthetic", method, overrides=["model.width=8", "model.heads=4"])
    learner = PromptLearner(encoder, [f"action {i}" for i in range(C)], n_ctx=3) if encoder is not None else None
    return PromptedContrastiveModel(cfg.model, NTU25, C, D, num_person=2, prompt_learner=learner)


def batch():
    torch.manual_seed(0)
    return torch.randn(4, 3, 16, 25, 2), torch.tensor([0, 1, 2, 0])


def test_pcke_forward_shapes_and_gradients():
    model = make("pcke")
    x, y = batch()
    text = torch.randn(C, D)
    out = model(x, class_text=text)
    assert out["logits"].shape == (4, C)
    assert out["skel_global"].shape == (4, D) and out["skel_parts"].shape == (4, 4, D)
    assert out["sim_before"].shape == (4, C) and out["sim_after"].shape == (4, C)
    out["text_sample"], out["text_parts"] = text[y], torch.randn(4, 4, D)
    total_loss(out, y, resolve("synthetic", "pcke").loss)["loss"].backward()
    for name in ("skeleton.units.0.gcn.A", "bridger.query_proj.weight", "interaction.text_from_skel.in_proj_weight",
                 "logit_scale", "classifier.weight"):
        assert dict(model.named_parameters())[name].grad is not None, name


def test_pcle_context_learns_through_the_model(encoder):
    model = make("pcle", encoder)
    x, y = batch()
    out = model(x, encoder=encoder)
    assert out["class_text"].shape == (C, D)
    out["text_sample"], out["text_parts"] = out["class_text"][y], torch.randn(4, 4, D)
    total_loss(out, y, resolve("synthetic", "pcle").loss)["loss"].backward()
    assert model.prompt_learner.ctx.grad.abs().sum() > 0
    assert all(p.grad is None for p in encoder.parameters())
    assert not any(k.startswith("model.") for k in model.state_dict())  # the encoder is not saved


def test_gap_has_no_interaction_outputs():
    model = make("gap")
    out = model(batch()[0], class_text=torch.randn(C, D))
    assert "sim_after" not in out and model.bridger is None and model.interaction is None
    torch.testing.assert_close(model.scores(out), out["logits"])


def test_logit_scales_are_never_the_bare_parameter():
    # An output that is a leaf parameter is invisible to DDP's unused-parameter search, which then marks it
    # ready twice in backward: GAP (linear, separate scales) under torchrun failed at its first step so.
    model = make("gap")
    assert model.cfg.scale_mode == "linear" and model.logit_scale.numel() > 1
    out = model(batch()[0], class_text=torch.randn(C, D))
    assert out["logit_scales"] is not model.logit_scale and out["logit_scales"].grad_fn is not None
    torch.testing.assert_close(out["logit_scales"], model.logit_scale.detach())


def test_inference_uses_the_stored_class_text():
    model = make("pcke").eval()
    model.class_text.copy_(torch.randn(C, D))
    x, _ = batch()
    with torch.no_grad():
        a = model.scores(model(x))
        b = model.scores(model(x, class_text=model.class_text.clone()))
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize("mode", ["text", "learned"])
@pytest.mark.parametrize("method", ["pcke", "pcle"])
def test_contrastive_loss_alone_trains_every_interaction_parameter(method, mode, encoder):
    """With CE and ranking off, the contrastive terms (before and after the interaction) reach the bridger,
    both attention blocks and all heads: nothing is trained only by the saturating hinge."""
    cfg = resolve("synthetic", method, overrides=["model.width=8", "model.heads=4", f"model.bridger_mode={mode}",
                                                  "loss.ce=false", "loss.ranking=false"])
    learner = PromptLearner(encoder, [f"action {i}" for i in range(C)], n_ctx=3) if method == "pcle" else None
    model = PromptedContrastiveModel(cfg.model, NTU25, C, D, num_person=2, prompt_learner=learner)
    x, y = batch()
    out = model(x, encoder=encoder) if method == "pcle" else model(x, class_text=torch.randn(C, D))
    out["text_sample"], out["text_parts"] = out["class_text"][y], torch.randn(4, 4, D)
    terms = total_loss(out, y, cfg.loss)
    assert "ranking" not in terms and "ce" not in terms and "contrastive_after" in terms
    terms["loss"].backward()
    for name, p in model.named_parameters():
        if name.startswith(("bridger.", "interaction.", "global_head.", "part_heads.")):
            assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert model.logit_scale.grad.abs().min() > 0  # all six per-term scales are used


def test_text_bridger_is_language_aware():
    """The bridged skeleton tokens depend on the class text (one query per class)."""
    model = make("pcke").eval()
    x, _ = batch()
    with torch.no_grad():
        a = model(x, class_text=torch.randn(C, D))["skel_after"]
        b = model(x, class_text=torch.randn(C, D))["skel_after"]
    assert not torch.allclose(a, b)


def test_pcle_context_init_follows_the_run_seed(encoder):
    def ctx(seed):
        gen = torch.Generator().manual_seed(seed)
        return PromptLearner(encoder, ["a", "b"], n_ctx=3, generator=gen).ctx.detach()

    assert torch.equal(ctx(0), ctx(0)) and not torch.equal(ctx(0), ctx(1))
