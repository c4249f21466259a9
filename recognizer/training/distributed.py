"""What DDP needs beyond averaging gradients, so that W ranks train exactly like one process.

- The contrastive loss is a B x B softmax over the whole batch: it does not split across ranks.
  `gather_outputs` all-gathers every per-sample tensor the losses read (with autograd, through
  `torch.distributed.nn.functional.all_gather`), so every rank computes the loss of the global
  batch. The gather's backward sums the gradients of all ranks into each rank's slice (W times the
  global gradient), and DDP's average divides by W again: the update equals the single-process one.
- BatchNorm statistics per rank are those of B/W samples. `torch.nn.SyncBatchNorm` fixes that on
  GPUs only (it refuses CPU tensors), so `GlobalBatchNorm` does the same on any device and backend
  (gloo included): sum, sum of squares and count are all-reduced with autograd, the batch is
  normalised with the global statistics, and running statistics follow the global batch.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_nn
from torch import nn

# Tensors of the model's output whose first dimension is the batch (what `total_loss` reads).
PER_SAMPLE = ("logits", "skel_global", "skel_parts", "sim_before", "sim_after", "text_sample", "text_parts")


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def gather_outputs(out: dict[str, torch.Tensor], labels: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Global-batch view of a rank's outputs and labels (rank order; the losses are order-free).

    Every rank must hold the same number of samples (EpochSampler guarantees it).
    """
    if not active():
        return out, labels
    full = dict(out)
    for key in PER_SAMPLE:
        if key in out:
            full[key] = torch.cat(dist_nn.all_gather(out[key].contiguous()))
    if "sim_labels" in out:  # integer positions in PCLE's class subset: no gradient to carry
        full["sim_labels"] = all_gather_plain(out["sim_labels"])
    return full, all_gather_plain(labels)


def all_gather_plain(t: torch.Tensor) -> torch.Tensor:
    """Concatenate a tensor that needs no gradient (labels) from every rank, in rank order."""
    if not active():
        return t
    parts = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, t.contiguous())
    return torch.cat(parts)


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm over the samples of all ranks (CPU/gloo and GPU); same parameters and buffers as BatchNorm."""

    group = None  # process group for the statistics (set by `convert_global_batchnorm`)

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and active()):
            return super().forward(x)
        c = x.shape[1]
        dims = [0, *range(2, x.dim())]
        shape = [1, c] + [1] * (x.dim() - 2)
        xf = x.float()
        count = x.new_full((1,), x.numel() // c, dtype=torch.float32)
        total = dist_nn.all_reduce(torch.cat([xf.sum(dims), count]), group=self.group or dist.group.WORLD)
        n = total[c]
        mean = total[:c] / n
        # second pass around the global mean: as accurate as one process's two-pass variance
        sq = dist_nn.all_reduce((xf - mean.view(shape)).pow(2).sum(dims), group=self.group or dist.group.WORLD)
        var = sq / n
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * n / (n - 1).clamp_min(1), alpha=m)
        y = (xf - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def convert_global_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm*d by GlobalBatchNorm (state dict unchanged); call on every rank."""
    group = dist.new_group() if active() else None  # statistics travel apart from DDP's gradient buckets

    def convert(m: nn.Module) -> nn.Module:
        out = m
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and not isinstance(m, GlobalBatchNorm):
            out = GlobalBatchNorm(m.num_features, m.eps, m.momentum, m.affine, m.track_running_stats)
            out.group = group
            if m.affine:
                with torch.no_grad():
                    out.weight, out.bias = m.weight, m.bias
            if m.track_running_stats:
                out.running_mean, out.running_var = m.running_mean, m.running_var
                out.num_batches_tracked = m.num_batches_tracked
            out.train(m.training)
        for name, child in m.named_children():
            out.add_module(name, convert(child))
        return out

    return convert(module)


def sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """torch's SyncBatchNorm where it works (CUDA), GlobalBatchNorm elsewhere (CPU/gloo)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return convert_global_batchnorm(module)
