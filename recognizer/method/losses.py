"""Losses: classification, skeleton-text contrastive (symmetric KL) and ranking.

total = CE + alpha * contrastive + beta * ranking  (weights and switches in `LossConfig`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class LossConfig:
    ce: bool = True
    contrastive: bool = True
    parts: bool = True  # part-level contrastive terms (four body-part groups)
    ranking: bool = True
    alpha: float = 0.8
    beta: float = 0.5
    margin: float = 0.2  # in cosine-similarity units
    label_smoothing: float = 0.0


def same_class_targets(labels: torch.Tensor) -> torch.Tensor:
    """(B,) labels -> (B, B) rows summing to one over the samples of the same class."""
    eq = (labels[:, None] == labels[None, :]).float()
    return eq / eq.sum(1, keepdim=True)


def cosine_logits(a: torch.Tensor, b: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """scale * cos(a_i, b_j): (N, D) x (M, D) -> (N, M)."""
    return scale * F.normalize(a.float(), dim=-1) @ F.normalize(b.float(), dim=-1).T


def symmetric_kl(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """KL(target || softmax) in both directions of a square logit matrix, several positives per row."""
    def kl(lg: torch.Tensor, tg: torch.Tensor) -> torch.Tensor:
        return F.kl_div(F.log_softmax(lg, dim=1), tg, reduction="batchmean")

    return 0.5 * (kl(logits, targets) + kl(logits.T, targets.T / targets.T.sum(1, keepdim=True)))


def contrastive_loss(skel: torch.Tensor, text: torch.Tensor, labels: torch.Tensor,
                     scale: torch.Tensor) -> torch.Tensor:
    """skel (B, D) against the text of each sample (B, D); positives are all same-class pairs."""
    return symmetric_kl(cosine_logits(skel, text, scale), same_class_targets(labels))


def margin_ranking(sim: torch.Tensor, labels: torch.Tensor, margin: float) -> torch.Tensor:
    """The true class's similarity must beat the hardest other class by `margin`. sim: (B, C)."""
    pos = sim.gather(1, labels[:, None]).squeeze(1)
    neg = sim.masked_fill(F.one_hot(labels, sim.shape[1]).bool(), float("-inf")).amax(1)
    return F.relu(margin - pos + neg).mean()


def ranking_loss(sim_before: torch.Tensor, sim_after: torch.Tensor, labels: torch.Tensor,
                 margin: float) -> torch.Tensor:
    """Ranking before and after interaction, plus: the true class must not lose similarity in it."""
    pos_before = sim_before.gather(1, labels[:, None]).squeeze(1)
    pos_after = sim_after.gather(1, labels[:, None]).squeeze(1)
    keep = F.relu(pos_before.detach() - pos_after).mean()
    return margin_ranking(sim_before, labels, margin) + margin_ranking(sim_after, labels, margin) + keep


def total_loss(out: dict[str, torch.Tensor], labels: torch.Tensor, cfg: LossConfig) -> dict[str, torch.Tensor]:
    """Combine the terms the model produced; returns every term and `loss`."""
    terms: dict[str, torch.Tensor] = {}
    zero = out["logits"].new_zeros(())
    if cfg.ce:
        terms["ce"] = F.cross_entropy(out["logits"].float(), labels, label_smoothing=cfg.label_smoothing)
    if cfg.contrastive:
        scale = out["logit_scale"]
        con = contrastive_loss(out["skel_global"], out["text_sample"], labels, scale)
        if cfg.parts and "skel_parts" in out:
            parts = [contrastive_loss(out["skel_parts"][:, g], out["text_parts"][:, g], labels, scale)
                     for g in range(out["skel_parts"].shape[1])]
            con = con + torch.stack(parts).sum()
        terms["contrastive"] = con
    if cfg.ranking and "sim_after" in out:
        sim_labels = out.get("sim_labels", labels)  # positions in a class subset (PCLE train_classes)
        terms["ranking"] = ranking_loss(out["sim_before"].float(), out["sim_after"].float(), sim_labels, cfg.margin)
    loss = terms.get("ce", zero) + cfg.alpha * terms.get("contrastive", zero) + cfg.beta * terms.get("ranking", zero)
    terms["loss"] = loss
    return terms
