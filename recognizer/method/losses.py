"""Losses: classification, skeleton-text contrastive (symmetric KL) and ranking.

total = CE + alpha * mean(contrastive terms: global + 4 parts, as GAP averages them)
           + alpha_after * contrastive after interaction + beta * ranking
           (+ prompt_pull * (1 - cos(learned class text, synonym mean)) for PCLE, KgCoOp's pull)
(weights and switches in `LossConfig`). Every contrastive term has its own logit scale
(`out["logit_scales"]`, order `model.SCALE_TERMS`), as GAP's five scales.
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
    after: bool = True  # contrastive loss on the similarities after the interaction (trains bridger + attention)
    ranking: bool = True
    alpha: float = 0.8  # GAP: 0.8 for NTU, 1.0 for NW-UCLA (the presets set it)
    alpha_after: float = 1.0
    beta: float = 0.5
    margin: float = 0.2  # in cosine-similarity units
    label_smoothing: float = 0.0
    target_sharpness: float = 10.0  # GAP's KLLoss target: softmax(10 * same-class); <= 0: exact 1/positives
    global_share: float | None = None  # share of the global term in the contrastive loss; None: plain mean (GAP, 1/5)
    prompt_pull: float = 0.0  # PCLE: lambda * (1 - cos(learned class text, synonym mean)) (KgCoOp)


def same_class_targets(labels: torch.Tensor, sharpness: float = 0.0) -> torch.Tensor:
    """(B,) labels -> (B, B) rows summing to one over the samples of the same class; with `sharpness`
    > 0 GAP's softmax(sharpness * same-class), which leaves a weight of about e^-10 on other classes."""
    eq = (labels[:, None] == labels[None, :]).float()
    if sharpness > 0:
        return torch.softmax(sharpness * eq, dim=1)
    return eq / eq.sum(1, keepdim=True)


def cosine_logits(a: torch.Tensor, b: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """scale * cos(a_i, b_j): (N, D) x (M, D) -> (N, M)."""
    return scale * F.normalize(a.float(), dim=-1) @ F.normalize(b.float(), dim=-1).T


def _kl(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """KL(target || softmax(logits)) summed over a row, averaged over rows (GAP: KLDivLoss mean * B)."""
    return F.kl_div(F.log_softmax(logits, dim=1), targets, reduction="batchmean")


def symmetric_kl(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """KL(target || softmax) in both directions of a square logit matrix, several positives per row.

    The same-class relation is symmetric, so the text-to-skeleton rows use the same target rows (as GAP)."""
    return 0.5 * (_kl(logits, targets) + _kl(logits.T, targets))


def contrastive_loss(skel: torch.Tensor, text: torch.Tensor, labels: torch.Tensor,
                     scale: torch.Tensor, sharpness: float = 0.0) -> torch.Tensor:
    """skel (B, D) against the text of each sample (B, D); positives are all same-class pairs."""
    return symmetric_kl(cosine_logits(skel, text, scale), same_class_targets(labels, sharpness))


def class_contrastive(sim: torch.Tensor, labels: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Symmetric skeleton-to-class contrastive on a (B, C) similarity matrix: each sample against all class
    texts (cross-entropy), and each class present in the batch against all samples (its samples positive)."""
    logits = scale * sim.float()  # (B, C)
    to_text = F.cross_entropy(logits, labels)
    present = torch.unique(labels)
    cols = logits[:, present].T  # (P, B)
    targets = (labels[None, :] == present[:, None]).float()
    to_skel = _kl(cols, targets / targets.sum(1, keepdim=True))
    return 0.5 * (to_text + to_skel)


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
    zero = out["logits"].new_zeros(()).float()
    scales = out["logit_scales"]  # (6,): global, 4 parts, after
    sim_labels = out.get("sim_labels", labels)  # positions in a class subset (PCLE train_classes)
    if cfg.ce:
        terms["ce"] = F.cross_entropy(out["logits"].float(), labels, label_smoothing=cfg.label_smoothing)
    if cfg.contrastive:
        con = [contrastive_loss(out["skel_global"], out["text_sample"], labels, scales[0], cfg.target_sharpness)]
        if cfg.parts and "skel_parts" in out:
            con += [contrastive_loss(out["skel_parts"][:, g], out["text_parts"][:, g], labels, scales[1 + g],
                                     cfg.target_sharpness) for g in range(out["skel_parts"].shape[1])]
        if cfg.global_share is None or len(con) == 1:
            terms["contrastive"] = torch.stack(con).mean()  # GAP averages the global and part terms
        else:  # the global term's own weight (PCLE's learned context learns from it alone)
            terms["contrastive"] = cfg.global_share * con[0] + (1 - cfg.global_share) * torch.stack(con[1:]).mean()
    if cfg.after and "sim_after" in out:
        terms["contrastive_after"] = class_contrastive(out["sim_after"], sim_labels, scales[-1])
    if cfg.ranking and "sim_after" in out:
        terms["ranking"] = ranking_loss(out["sim_before"].float(), out["sim_after"].float(), sim_labels, cfg.margin)
    if cfg.prompt_pull and "prompt_target" in out:  # KgCoOp: keep the learned class text near the LLM's
        terms["prompt_pull"] = 1 - F.cosine_similarity(out["class_text"].float(), out["prompt_target"].float()).mean()
    loss = (terms.get("ce", zero) + cfg.alpha * terms.get("contrastive", zero)
            + cfg.alpha_after * terms.get("contrastive_after", zero) + cfg.beta * terms.get("ranking", zero)
            + cfg.prompt_pull * terms.get("prompt_pull", zero))
    terms["loss"] = loss
    return terms
