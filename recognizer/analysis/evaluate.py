"""Inference from a run folder: the checkpoint alone (no text encoder, no corpus) gives class scores."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from recognizer.checkpoint import atomic_write_text, checkpoint_layout, load_checkpoint
from recognizer.config import Config, from_yaml_text
from recognizer.datasets import DatasetBundle
from recognizer.datasets.splits import build_run_dataset
from recognizer.method.graph import Layout
from recognizer.method.model import PromptedContrastiveModel


@dataclass
class Trained:
    model: PromptedContrastiveModel
    cfg: Config
    class_names: list[str]
    meta: dict
    layout: Layout  # the checkpoint's own skeleton (custom layouts included)


def load_trained(path: str | Path, device: str = "cpu") -> Trained:
    """A run folder or checkpoint file -> model in eval mode with its stored class text embeddings."""
    from recognizer.training.run_setup import resolve_device

    device = str(resolve_device(device))  # a one-line error for cuda on a CPU-only torch
    path = Path(path)
    file = path / "checkpoint.pt" if path.is_dir() else path
    ckpt = load_checkpoint(file)
    cfg = from_yaml_text(ckpt["config"])
    c, _, _, m = ckpt["input_shape"]
    layout = checkpoint_layout(ckpt, file)
    model = PromptedContrastiveModel(cfg.model, layout, len(ckpt["class_names"]),
                                     ckpt["text_dim"], in_channels=c, num_person=m,
                                     lst_k=int(cfg.model.lst_k.get(cfg.data.clip.stream, 0)))
    state = {k: v for k, v in ckpt["model"].items() if not k.startswith("prompt_learner.")}
    model.load_state_dict(state)
    if not model.class_text.abs().sum():
        raise ValueError(f"{path}: the checkpoint holds no final class text embeddings (training did not finish)")
    return Trained(model.to(device).eval(), cfg, list(ckpt["class_names"]), ckpt, layout)


def dataset_of(trained: Trained, data_root: str | None = None) -> DatasetBundle:
    """The run's dataset (without its unseen classes), refused when its skeleton is not the checkpoint's."""
    cfg = trained.cfg
    bundle = build_run_dataset(cfg, data_root)
    if bundle.layout.parents != trained.layout.parents:
        raise ValueError(f"{data_root or cfg.data.root}: the dataset's layout '{bundle.layout.name}' "
                         f"({bundle.layout.num_joints} joints) differs from the checkpoint's '{trained.layout.name}' "
                         f"({trained.layout.num_joints} joints)")
    return bundle


def evaluate_run(run: str | Path, data_root: str | None = None, device: str = "cpu") -> dict:
    """Re-run the test split through a trained run; writes scores_test.npy and eval.json."""
    from recognizer.train import Env, accuracy_summary, make_loader_for, predict, write_scores

    run = Path(run)
    trained = load_trained(run, device)
    cfg = trained.cfg
    bundle = dataset_of(trained, data_root)
    env = Env(next(trained.model.parameters()).device, None)
    loader = make_loader_for(bundle.test, trained.layout, cfg, train=False, env=env)
    scores, labels = predict(trained.model, loader, env, progress=True)
    write_scores(run, "test", scores, labels, bundle.test.names)
    result = {**accuracy_summary(scores, labels, bundle.class_names), "samples": int(len(labels))}
    atomic_write_text(run / "eval.json", json.dumps(result, indent=2) + "\n")
    return result
