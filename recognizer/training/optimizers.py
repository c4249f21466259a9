"""Several optimizers stepped as one: the backbone's SGD and, optionally, the interaction's AdamW.

Why: the bridger and cross-modality attention are transformer blocks; SGD at a tenth of the backbone's
rate (`optim.interaction_lr_ratio`) left PCLE's interaction at chance for many epochs, and transformer
blocks are normally trained with AdamW (`optim.interaction_optimizer=adamw`). The training loop sets
every group's lr from its `base_lr` and the schedule, whichever optimizer the group belongs to.
"""

from __future__ import annotations

import torch


class Optimizers:
    """A list of torch optimizers behind the few methods the loop and the checkpoint use."""

    def __init__(self, optimizers: list[torch.optim.Optimizer]):
        self.optimizers = optimizers

    @property
    def param_groups(self) -> list[dict]:
        return [g for o in self.optimizers for g in o.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for o in self.optimizers:
            o.zero_grad(set_to_none=set_to_none)

    def step(self, scaler: torch.amp.GradScaler) -> None:
        for o in self.optimizers:
            scaler.step(o)

    def state_dict(self) -> dict:
        return {"optimizers": [o.state_dict() for o in self.optimizers]}

    def load_state_dict(self, state: dict) -> None:
        states = state.get("optimizers")
        if states is None or len(states) != len(self.optimizers):
            raise ValueError("the checkpoint's optimizer state does not match optim.interaction_optimizer")
        for o, s in zip(self.optimizers, states):
            o.load_state_dict(s)


def split_groups(groups: list[dict], optim_cfg) -> Optimizers | torch.optim.SGD:
    """SGD over every group (`interaction_optimizer=sgd`, a plain SGD as before), or SGD over all groups but
    'interaction' and AdamW (lr optim.interaction_lr, weight decay optim.interaction_weight_decay) over it."""
    sgd_kwargs = dict(lr=optim_cfg.lr, momentum=optim_cfg.momentum, nesterov=optim_cfg.nesterov,
                      weight_decay=optim_cfg.weight_decay)
    kind = optim_cfg.interaction_optimizer
    if kind not in ("sgd", "adamw"):
        raise ValueError(f"optim.interaction_optimizer must be sgd or adamw, not '{kind}'")
    inter = [g for g in groups if g["name"] == "interaction"]
    if kind == "sgd" or not inter:
        return torch.optim.SGD(groups, **sgd_kwargs)
    for g in inter:
        g["base_lr"] = optim_cfg.interaction_lr
        g["lr"] = optim_cfg.interaction_lr
    adamw = torch.optim.AdamW(inter, lr=optim_cfg.interaction_lr, weight_decay=optim_cfg.interaction_weight_decay)
    return Optimizers([torch.optim.SGD([g for g in groups if g["name"] != "interaction"], **sgd_kwargs), adamw])


def step_all(opt: Optimizers | torch.optim.Optimizer, scaler: torch.amp.GradScaler) -> None:
    """One step of every optimizer through the loss scaler (active only under fp16), then its update."""
    if isinstance(opt, Optimizers):
        opt.step(scaler)
    else:
        scaler.step(opt)
    scaler.update()
