"""An exponential moving average of the weights (`optim.ema_decay` > 0), scored beside the final weights.

Why: on NW-UCLA's 97 validation clips one clip is one point, and the last epoch's weights move with
the last few steps. The average of the weights over the last steps (decay d per step, about 1/(1-d)
steps) is a standard way to a steadier final model; it is written as `ema.pt`, loadable like
`checkpoint.pt` and `best.pt` by `pcle evaluate`/`predict`/`load_trained`, and its test top-1 goes to
metrics.json's `ema` record. torch.optim.swa_utils does the averaging (parameters and buffers, so
BatchNorm statistics are averaged too).
"""

from __future__ import annotations

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


class WeightAverage:
    def __init__(self, model: torch.nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"optim.ema_decay must be in (0, 1) (0 = off), not {decay}")
        self.average = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)

    @property
    def model(self) -> torch.nn.Module:
        """The averaged copy of the model (the same class, the same state-dict keys)."""
        return self.average.module

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.average.update_parameters(model)

    def state_dict(self) -> dict:
        return self.average.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.average.load_state_dict(state)
