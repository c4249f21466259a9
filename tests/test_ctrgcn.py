import torch

from recognizer.method.ctrgcn import CTRGCN, num_parameters
from recognizer.method.graph import NTU25, UCLA20


def test_full_width_shapes_and_size():
    net = CTRGCN(NTU25.adjacency(), in_channels=3, num_person=2, width=64)
    x = torch.randn(2, 3, 16, 25, 2)  # (B, C, T, V, M)
    y = net(x)
    assert y.shape == (4, 256, 4, 25)  # (B*M, 256, T/4, V)
    # CTR-GCN's backbone has about 1.43 M parameters (without the classifier)
    assert 1.35e6 < num_parameters(net) < 1.5e6


def test_units_follow_the_design():
    net = CTRGCN(UCLA20.adjacency(), num_person=1, width=64)
    outs = [u.tcn.branches[-1][0].out_channels * 4 for u in net.units]
    assert outs == [64, 64, 64, 64, 128, 128, 128, 256, 256, 256]
    strides = [u.tcn.branches[-1][0].stride[0] for u in net.units]
    assert strides == [1, 1, 1, 1, 2, 1, 1, 2, 1, 1]
    assert all(len(u.gcn.convs) == 3 for u in net.units)  # self, inward, outward


def test_gradients_reach_input_and_topology():
    net = CTRGCN(UCLA20.adjacency(), num_person=1, width=8)
    x = torch.randn(2, 3, 8, 20, 1, requires_grad=True)
    net(x).pow(2).mean().backward()
    assert x.grad.abs().sum() > 0
    assert net.units[3].gcn.A.grad.abs().sum() > 0
    assert net.units[3].gcn.convs[0].conv4.weight.grad is not None
