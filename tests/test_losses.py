import torch

from recognizer.method.losses import (
    LossConfig,
    class_contrastive,
    contrastive_loss,
    margin_ranking,
    ranking_loss,
    same_class_targets,
    symmetric_kl,
    total_loss,
)


def test_targets_have_several_positives_per_row():
    t = same_class_targets(torch.tensor([0, 1, 0, 2, 0]))
    torch.testing.assert_close(t.sum(1), torch.ones(5))
    assert torch.allclose(t[0], torch.tensor([1 / 3, 0, 1 / 3, 0, 1 / 3]))
    assert t[1, 1] == 1


def test_symmetric_kl_is_zero_at_the_target_and_grows_away_from_it():
    labels = torch.tensor([0, 1, 0, 1])
    t = same_class_targets(labels)
    perfect = torch.log(t.clamp_min(1e-12))
    assert symmetric_kl(perfect, t) < 1e-4
    wrong = torch.log((1 - t).clamp_min(1e-12) / 2)
    assert symmetric_kl(wrong, t) > 1.0
    assert symmetric_kl(torch.zeros(4, 4), t) > 0


def test_contrastive_prefers_aligned_embeddings():
    labels = torch.tensor([0, 1, 2, 0])
    text = torch.eye(3)[labels]
    aligned = contrastive_loss(text + 0.01, text, labels, torch.tensor(20.0))
    shuffled = contrastive_loss(text[[1, 2, 0, 1]], text, labels, torch.tensor(20.0))
    assert aligned < shuffled


def test_margin_ranking():
    labels = torch.tensor([0, 1])
    good = torch.tensor([[0.9, 0.1, 0.2], [0.0, 0.8, 0.3]])
    assert margin_ranking(good, labels, 0.2) == 0
    bad = torch.tensor([[0.5, 0.45, 0.0], [0.0, 0.1, 0.3]])
    # row 0: 0.2 - 0.5 + 0.45 = 0.15; row 1: 0.2 - 0.1 + 0.3 = 0.4
    torch.testing.assert_close(margin_ranking(bad, labels, 0.2), torch.tensor(0.275))
    # the interaction must not lower the true class's similarity
    worse_after = good - 0.5 * torch.nn.functional.one_hot(labels, 3)
    assert ranking_loss(good, worse_after, labels, 0.2) > ranking_loss(good, good, labels, 0.2)


def test_total_loss_weights_and_switches():
    torch.manual_seed(0)
    b, c, d = 6, 3, 8
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    out = {"logits": torch.randn(b, c), "logit_scales": torch.full((6,), 10.0), "skel_global": torch.randn(b, d),
           "text_sample": torch.randn(b, d), "skel_parts": torch.randn(b, 4, d), "text_parts": torch.randn(b, 4, d),
           "sim_before": torch.rand(b, c), "sim_after": torch.rand(b, c)}
    cfg = LossConfig(alpha=0.8, beta=0.5, alpha_after=0.3)
    t = total_loss(out, labels, cfg)
    torch.testing.assert_close(t["loss"], t["ce"] + 0.8 * t["contrastive"] + 0.3 * t["contrastive_after"]
                               + 0.5 * t["ranking"])
    off = total_loss(out, labels, LossConfig(contrastive=False, ranking=False, after=False))
    assert set(off) == {"ce", "loss"}


def test_contrastive_terms_are_averaged_as_gap():
    """GAP: loss_ce + alpha * sum(five terms) / 5, each term with its own logit scale."""
    torch.manual_seed(1)
    b, c, d = 6, 3, 8
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    scales = torch.tensor([2.0, 3.0, 4.0, 5.0, 6.0, 7.0])
    out = {"logits": torch.randn(b, c), "logit_scales": scales, "skel_global": torch.randn(b, d),
           "text_sample": torch.randn(b, d), "skel_parts": torch.randn(b, 4, d), "text_parts": torch.randn(b, 4, d)}
    terms = [contrastive_loss(out["skel_global"], out["text_sample"], labels, scales[0], 10.0)]
    terms += [contrastive_loss(out["skel_parts"][:, g], out["text_parts"][:, g], labels, scales[1 + g], 10.0)
              for g in range(4)]
    t = total_loss(out, labels, LossConfig(ranking=False, after=False))
    torch.testing.assert_close(t["contrastive"], torch.stack(terms).mean())


def test_gap_soft_targets():
    t = same_class_targets(torch.tensor([0, 1, 0]), sharpness=10.0)
    e = torch.exp(torch.tensor(10.0))
    torch.testing.assert_close(t[0], torch.tensor([e, 1.0, e]) / (2 * e + 1))


def test_class_contrastive_prefers_the_true_class():
    labels = torch.tensor([0, 1, 2, 0])
    good = torch.eye(3)[labels]
    assert class_contrastive(good, labels, torch.tensor(10.0)) < class_contrastive(1 - good, labels, torch.tensor(10.0))
