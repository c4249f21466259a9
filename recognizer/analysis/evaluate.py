"""Inference from a run folder: the checkpoint alone (no text encoder, no corpus) gives class scores."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from recognizer.checkpoint import atomic_write_text, load_checkpoint
from recognizer.config import Config, from_yaml_text
from recognizer.datasets.splits import build_run_dataset
from recognizer.method.graph import get_layout
from recognizer.method.model import PromptedContrastiveModel


@dataclass
class Trained:
    model: PromptedContrastiveModel
    cfg: Config
    class_names: list[str]
    meta: dict


def load_trained(path: str | Path, device: str = "cpu") -> Trained:
    """A run folder or checkpoint file -> model in eval mode with its stored class text embeddings."""
    path = Path(path)
    ckpt = load_checkpoint(path / "checkpoint.pt" if path.is_dir() else path)
    cfg = from_yaml_text(ckpt["config"])
    c, _, _, m = ckpt["input_shape"]
    model = PromptedContrastiveModel(cfg.model, get_layout(ckpt["layout"]), len(ckpt["class_names"]),
                                     ckpt["text_dim"], in_channels=c, num_person=m)
    state = {k: v for k, v in ckpt["model"].items() if not k.startswith("prompt_learner.")}
    model.load_state_dict(state)
    if not model.class_text.abs().sum():
        raise ValueError(f"{path}: the checkpoint holds no final class text embeddings (training did not finish)")
    return Trained(model.to(device).eval(), cfg, list(ckpt["class_names"]), ckpt)


def evaluate_run(run: str | Path, data_root: str | None = None, device: str = "cpu") -> dict:
    """Re-run the test split through a trained run; writes scores_test.npy and eval.json."""
    from recognizer.train import Env, accuracy_summary, make_loader_for, predict, write_scores

    run = Path(run)
    trained = load_trained(run, device)
    cfg = trained.cfg
    bundle = build_run_dataset(cfg, data_root)
    env = Env(torch.device(device), None)
    loader = make_loader_for(bundle.test, bundle.layout, cfg, train=False, env=env)
    scores, labels = predict(trained.model, loader, env, progress=True)
    write_scores(run, "test", scores, labels, bundle.test.names)
    result = {**accuracy_summary(scores, labels, bundle.class_names), "samples": int(len(labels))}
    atomic_write_text(run / "eval.json", json.dumps(result, indent=2) + "\n")
    return result
