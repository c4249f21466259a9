"""CTR-GCN skeleton encoder (Chen et al., ICCV 2021), as GAP and PCLE use it.

Ten units with channels 64,64,64,64,128,128,128,256,256,256 (times `width / 64`), temporal stride 2
at units 5 and 8, three adjacency subsets (self, inward, outward) refined channel-wise per sample,
multi-scale temporal convolution (kernel 5, dilations 1 and 2, plus max-pool and 1x1 branches).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def _conv_init(conv: nn.Conv2d) -> None:
    nn.init.kaiming_normal_(conv.weight, mode="fan_out")
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


def _bn_init(bn: nn.BatchNorm2d, scale: float) -> None:
    nn.init.constant_(bn.weight, scale)
    nn.init.zeros_(bn.bias)


class TemporalConv(nn.Module):
    """Temporal conv (k x 1) with dilation, then BN. (N, C, T, V) -> (N, C', T/stride, V)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        pad = (kernel + (kernel - 1) * (dilation - 1) - 1) // 2
        self.conv = nn.Conv2d(cin, cout, (kernel, 1), (stride, 1), (pad, 0), (dilation, 1))
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


def _residual(cin: int, cout: int, stride: int, enabled: bool) -> nn.Module | None:
    """None, identity, or a strided 1x1 temporal conv when the shape changes."""
    if not enabled:
        return None
    if cin == cout and stride == 1:
        return nn.Identity()
    return TemporalConv(cin, cout, 1, stride)


class MultiScaleTemporalConv(nn.Module):
    """Branches: one temporal conv per dilation, a max-pool branch and a 1x1 branch, concatenated."""

    def __init__(self, cin: int, cout: int, kernel: int = 5, stride: int = 1, dilations=(1, 2), residual=True):
        super().__init__()
        n_branches = len(dilations) + 2
        assert cout % n_branches == 0, "out channels must divide by the number of branches"
        bc = cout // n_branches
        self.branches = nn.ModuleList(
            [
                nn.Sequential(
                    nn.Conv2d(cin, bc, 1), nn.BatchNorm2d(bc), nn.ReLU(inplace=True),
                    TemporalConv(bc, bc, kernel, stride, d),
                )
                for d in dilations
            ]
        )
        self.branches.append(
            nn.Sequential(
                nn.Conv2d(cin, bc, 1), nn.BatchNorm2d(bc), nn.ReLU(inplace=True),
                nn.MaxPool2d((3, 1), (stride, 1), (1, 0)), nn.BatchNorm2d(bc),
            )
        )
        self.branches.append(nn.Sequential(nn.Conv2d(cin, bc, 1, stride=(stride, 1)), nn.BatchNorm2d(bc)))
        self.residual = _residual(cin, cout, stride, residual)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                _conv_init(m)
            elif isinstance(m, nn.BatchNorm2d):
                _bn_init(m, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.cat([b(x) for b in self.branches], dim=1)
        return out if self.residual is None else out + self.residual(x)


class CTRGC(nn.Module):
    """Channel-wise topology refinement: a shared adjacency plus a per-sample, per-channel offset."""

    def __init__(self, cin: int, cout: int, rel_reduction: int = 8):
        super().__init__()
        self.rel = 8 if cin in (3, 2, 9) else max(cin // rel_reduction, 1)
        self.conv1 = nn.Conv2d(cin, self.rel, 1)
        self.conv2 = nn.Conv2d(cin, self.rel, 1)
        self.conv3 = nn.Conv2d(cin, cout, 1)
        self.conv4 = nn.Conv2d(self.rel, cout, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                _conv_init(m)

    def forward(self, x: torch.Tensor, a: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        # x: (N, C, T, V); a: (V, V)
        x1, x2 = self.conv1(x).mean(-2), self.conv2(x).mean(-2)  # (N, R, V)
        rel = torch.tanh(x1.unsqueeze(-1) - x2.unsqueeze(-2))  # (N, R, V, V)
        adj = self.conv4(rel) * alpha + a  # (N, C', V, V)
        return torch.einsum("ncuv,nctv->nctu", adj, self.conv3(x))


class GraphConv(nn.Module):
    """Sum of CTR-GC over the adjacency subsets, BN, residual, ReLU."""

    def __init__(self, cin: int, cout: int, adjacency: np.ndarray, residual: bool = True):
        super().__init__()
        self.convs = nn.ModuleList([CTRGC(cin, cout) for _ in range(adjacency.shape[0])])
        self.A = nn.Parameter(torch.from_numpy(adjacency.astype(np.float32)))  # learnable, as CTR-GCN
        self.alpha = nn.Parameter(torch.zeros(1))
        if not residual:
            self.down = None
        elif cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1), nn.BatchNorm2d(cout))
        else:
            self.down = nn.Identity()
        self.bn = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                _conv_init(m)
            elif isinstance(m, nn.BatchNorm2d):
                _bn_init(m, 1.0)
        _bn_init(self.bn, 1e-6)

        self.fused = False  # model.fused_subsets: one batched op for all subsets (same parameters)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused:
            y = self.fused_subsets(x)
        else:
            y = sum(conv(x, self.A[i], self.alpha) for i, conv in enumerate(self.convs))
        y = self.bn(y)
        if self.down is not None:
            y = y + self.down(x)
        return self.relu(y)


    def fused_subsets(self, x: torch.Tensor) -> torch.Tensor:
        """The sum over subsets of CTRGC.forward, as a few batched matmuls instead of 3 x 5 small convs.

        Same parameters and state_dict as the per-subset path; only the order of the floating-point sums
        differs. The K subsets' conv3 run as one matmul over the input laid out (C, N*T*V), so their
        outputs come out subset-major, (K, C', N, T, V); conv1/conv2 as another on the input averaged
        over frames first (a 1x1 conv is affine per frame, so the mean commutes with it). conv4 is one
        batched matmul per subset with alpha folded into its weights and A as an extra input channel of
        weight 1 (grouped 1x1 convs ran at a fifth of the matmul rate on CPU), and its output, the
        adjacency built transposed as (K, C', N, V, U), is already the batch of matrices the topology
        matmul reads, next to z's (K, C', N, T, V): no permuted copy of the step's largest tensor, one
        contiguous sum over K, and one transpose of the (smaller) result back to (N, C', T, V).
        Everything runs in the autocast dtype (an fp32 A or alpha would promote the adjacency to fp32).
        docs/benchmarks.md measures each version.
        """
        convs = list(self.convs)
        k, r, cout = len(convs), convs[0].rel, convs[0].conv3.out_channels
        n, c, t, v = x.shape
        w3 = torch.cat([cv.conv3.weight for cv in convs]).flatten(1)  # (K*C', C)
        b3 = torch.cat([cv.conv3.bias for cv in convs])
        z = torch.addmm(b3[:, None], w3, x.transpose(0, 1).reshape(c, n * t * v))  # (K*C', N*T*V)
        w12 = torch.cat([w for cv in convs for w in (cv.conv1.weight, cv.conv2.weight)]).flatten(1)  # (K*2R, C)
        b12 = torch.cat([b for cv in convs for b in (cv.conv1.bias, cv.conv2.bias)])
        q = torch.addmm(b12[:, None], w12, x.mean(2).transpose(0, 1).reshape(c, n * v)).view(k, 2 * r, n, v)
        # transposed adjacency: rel_t[..., v, u] = tanh(q1[u] - q2[v]), CTRGC's rel[..., u, v]
        rel_t = torch.tanh(q[:, :r].unsqueeze(-2) - q[:, r:].unsqueeze(-1))  # (K, R, N, V, U)
        a_t = self.A.transpose(1, 2).to(rel_t.dtype)  # (K, V, U)
        rel_a = torch.cat([rel_t, a_t[:, None, None].expand(-1, 1, n, -1, -1)], 1).view(k, r + 1, n * v * v)
        w4 = torch.cat([cv.conv4.weight for cv in convs]).flatten(1) * self.alpha  # (K*C', R)
        w4 = torch.cat([w4, torch.ones_like(w4[:, :1])], 1).view(k, cout, r + 1)  # the A channel, weight 1
        b4 = (torch.cat([cv.conv4.bias for cv in convs]) * self.alpha).view(k, cout, 1)
        adj_t = torch.baddbmm(b4, w4, rel_a)  # (K, C', N*V*U): conv4(rel) * alpha + A, transposed
        y = torch.bmm(z.view(k * cout * n, t, v), adj_t.view(k * cout * n, v, v))  # (K*C'*N, T, U)
        return y.view(k, cout, n, t, v).sum(0).transpose(0, 1).contiguous()  # (N, C', T, V)


def set_fused_subsets(module: nn.Module, fused: bool) -> nn.Module:
    """Switch every GraphConv inside `module` to the fused (or the per-subset) forward; returns it."""
    for m in module.modules():
        if isinstance(m, GraphConv):
            m.fused = fused
    return module


def set_channels_last(module: nn.Module, on: bool) -> nn.Module:
    """Store every CTRGCN's feature maps and conv weights channels-last (`model.channels_last`); returns it.

    Same shapes, parameters and maths, another memory order: oneDNN's 1x1 convolutions on (N, C, T, V)
    tensors run several times faster with channels innermost (docs/benchmarks.md measures it). Turning it
    off restores the contiguous order, so a module can go back and forth.
    """
    fmt = torch.channels_last if on else torch.contiguous_format
    for m in module.modules():
        if isinstance(m, CTRGCN):
            m.channels_last = on
            m.to(memory_format=fmt)
    return module


class Unit(nn.Module):
    """One TCN-GCN unit: graph conv then multi-scale temporal conv, with a residual around both."""

    def __init__(self, cin: int, cout: int, adjacency: np.ndarray, stride: int = 1, residual: bool = True,
                 kernel: int = 5, dilations=(1, 2)):
        super().__init__()
        self.gcn = GraphConv(cin, cout, adjacency)
        self.tcn = MultiScaleTemporalConv(cout, cout, kernel, stride, dilations, residual=False)
        self.relu = nn.ReLU(inplace=True)
        self.residual = _residual(cin, cout, stride, residual)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.tcn(self.gcn(x))
        return self.relu(y if self.residual is None else y + self.residual(x))


class CTRGCN(nn.Module):
    """(B, C_in, T, V, M) -> feature map (B*M, 256*width/64, T/4, V)."""

    def __init__(self, adjacency: np.ndarray, in_channels: int = 3, num_person: int = 2, width: int = 64,
                 kernel: int = 5, dilations=(1, 2)):
        super().__init__()
        v = adjacency.shape[-1]
        c1, c2, c3 = width, 2 * width, 4 * width
        self.out_channels = c3
        self.data_bn = nn.BatchNorm1d(num_person * in_channels * v)
        plan = [(in_channels, c1, 1, False), (c1, c1, 1, True), (c1, c1, 1, True), (c1, c1, 1, True),
                (c1, c2, 2, True), (c2, c2, 1, True), (c2, c2, 1, True),
                (c2, c3, 2, True), (c3, c3, 1, True), (c3, c3, 1, True)]
        self.units = nn.ModuleList(
            [Unit(ci, co, adjacency, s, r, kernel, dilations) for ci, co, s, r in plan]
        )
        _bn_init(self.data_bn, 1.0)
        self.channels_last = False  # model.channels_last: maps stored (N, T, V, C) in memory (set_channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, v, m = x.shape
        x = x.permute(0, 4, 3, 1, 2).reshape(b, m * v * c, t)  # (B, M*V*C, T)
        x = self.data_bn(x)
        x = x.view(b, m, v, c, t).permute(0, 1, 3, 4, 2).reshape(b * m, c, t, v)  # (B*M, C, T, V)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)  # same shape, channels innermost in memory
        for unit in self.units:
            x = unit(x)
        return x  # (B*M, C_out, T/4, V)


def num_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())

