"""Inference from a run folder: the checkpoint alone (no text encoder, no corpus) gives class scores.

A finished run's checkpoint carries its final class text embeddings. An unfinished one (stopped with
--stop-after, Ctrl-C, a killed job) holds the weights of its last finished epoch but no class text:
`load_trained` then computes the class text from the checkpoint's own text side (the text encoder
rebuilt from the run's config, GAP's fine-tuned tower and PCLE's learned context from the
checkpoint, PCKE/GAP's corpus), exactly what that epoch's test evaluation used, and says that the
run is unfinished. The inference rule is then the classification head, as in the per-epoch test
numbers of log.jsonl (the rule is chosen on the validation split when training finishes).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from recognizer.checkpoint import atomic_write_text, checkpoint_layout, load_checkpoint
from recognizer.config import Config, from_yaml_text
from recognizer.datasets import DatasetBundle
from recognizer.datasets.splits import build_run_dataset
from recognizer.method.graph import Layout
from recognizer.method.model import PromptedContrastiveModel
from recognizer.training.speed import apply_fast_path


@dataclass
class Trained:
    model: PromptedContrastiveModel
    cfg: Config
    class_names: list[str]
    meta: dict
    layout: Layout  # the checkpoint's own skeleton (custom layouts included)
    unfinished: str | None = None  # for a run that did not finish: what was loaded (epochs done of planned)


def _run_corpus(cfg: Config, file: Path) -> str:
    """The prompt corpus a run trained with: its config's, else the one provenance.json recorded, else the
    dataset's default."""
    import json as _json

    if cfg.prompt.corpus:
        return cfg.prompt.corpus
    record = file.parent / "provenance.json"
    try:
        corpus = _json.loads(record.read_text(encoding="utf-8"))["data"]["corpus"]
    except (OSError, ValueError, KeyError, TypeError):
        corpus = None
    if corpus and Path(corpus).is_file():
        return corpus
    corpus = build_run_dataset(cfg).corpus
    if not corpus:
        raise ValueError(f"{file}: the run names no prompt corpus (prompt.corpus) to compute its class text from")
    return corpus


@torch.no_grad()
def checkpoint_class_text(ckpt: dict, cfg: Config, file: Path) -> torch.Tensor:
    """(C, D) class text of a checkpoint without stored class text, as training computes it at an evaluated
    epoch (`recognizer.train.final_class_text`): PCLE's learned prompts, or the corpus' class embeddings."""
    from corpus import load_corpus
    from recognizer.method.prompt_learner import build_prompt_learner
    from recognizer.method.text_bank import build_text_bank
    from recognizer.method.text_encoder import build_text_encoder

    names = list(ckpt["class_names"])
    encoder = build_text_encoder(cfg.text)
    if ckpt.get("text_encoder_state") is not None:  # GAP's fine-tuned tower
        encoder.load_state_dict(ckpt["text_encoder_state"])
    encoder.eval()
    pcle = cfg.prompt.method == "pcle"
    bank = None
    if not pcle or cfg.prompt.hybrid:  # the corpus: PCKE/GAP's class text, the hybrid prompt's synonyms
        corpus = load_corpus(_run_corpus(cfg, file), names)
        bank = build_text_bank(encoder, corpus, cfg.prompt.cache_dir, cfg.prompt.part_prefix)
    if not pcle:
        return bank.classes.float()
    synonyms = None
    if bank is not None:
        synonyms = (bank.syn_texts, torch.repeat_interleave(torch.arange(len(bank.counts)), bank.counts.cpu()).tolist())
    learner = build_prompt_learner(encoder, names, cfg.prompt, cfg.run.seed, synonyms=synonyms)
    learner.load_state_dict({k.removeprefix("prompt_learner."): v for k, v in ckpt["model"].items()
                             if k.startswith("prompt_learner.")})
    return learner(encoder).float()


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
    apply_fast_path(model, cfg.model.fused_subsets, False, cfg.model.channels_last)  # the run's own forward
    unfinished = None
    if not model.class_text.abs().sum():  # training did not finish: its last epoch's weights, class text now
        model.class_text.copy_(checkpoint_class_text(ckpt, cfg, file))
        unfinished = (f"{path} is an unfinished run: epoch {ckpt['epoch']} of {cfg.optim.epochs} (its last "
                      "checkpoint); class text computed now, scores from the classification head")
    return Trained(model.to(device).eval(), cfg, list(ckpt["class_names"]), ckpt, layout, unfinished)


def dataset_of(trained: Trained, data_root: str | None = None) -> DatasetBundle:
    """The run's dataset (without its unseen classes), refused when its skeleton is not the checkpoint's."""
    cfg = trained.cfg
    bundle = build_run_dataset(cfg, data_root)
    if bundle.layout.parents != trained.layout.parents:
        raise ValueError(f"{data_root or cfg.data.root}: the dataset's layout '{bundle.layout.name}' "
                         f"({bundle.layout.num_joints} joints) differs from the checkpoint's '{trained.layout.name}' "
                         f"({trained.layout.num_joints} joints)")
    return bundle


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v and k != "options":
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def edited_config_note(run: str | Path) -> str | None:
    """When RUN/config.yaml no longer matches the config stored in the checkpoint (someone edited it), the
    keys that differ and which one wins: the checkpoint's, since the weights were trained under it."""
    import yaml

    from recognizer.config import ConfigError, to_dict

    run = Path(run)
    folder, ckpt_file = run / "config.yaml", run / "checkpoint.pt"
    if not run.is_dir() or not folder.is_file() or not ckpt_file.is_file():
        return None
    stored = _flat(to_dict(from_yaml_text(load_checkpoint(ckpt_file)["config"])))
    try:
        edited = _flat(to_dict(from_yaml_text(folder.read_text(encoding="utf-8"))))
    except (ConfigError, yaml.YAMLError, UnicodeDecodeError) as e:
        edited, why = {}, f" ({str(e).splitlines()[0]})"
    else:
        why = ""
    differ = sorted(k for k in stored.keys() | edited.keys() if stored.get(k) != edited.get(k)) if edited else []
    if not differ and not why:
        return None
    keys = ", ".join(differ[:6]) + (f", ... ({len(differ)})" if len(differ) > 6 else "")
    what = f"differs from the config stored in checkpoint.pt in {keys}" if differ else f"is unreadable{why}"
    return (f"{folder} {what}; the checkpoint's config is used (the weights were trained under it)"
            + ("; a dataset that moved is given with --data-root" if "data.root" in differ else ""))


def evaluate_run(run: str | Path, data_root: str | None = None, device: str = "cpu") -> dict:
    """Re-run the test split through a trained run; writes scores_test.npy and eval.json."""
    from recognizer.train import Env, accuracy_summary, make_loader_for, predict, write_scores
    from recognizer.training.speed import amp_dtype

    run = Path(run)
    trained = load_trained(run, device)
    cfg = trained.cfg
    bundle = dataset_of(trained, data_root)
    device = next(trained.model.parameters()).device
    env = Env(device, amp_dtype(cfg.run.amp, device))  # scored as training scored it (run.amp)
    loader = make_loader_for(bundle.test, trained.layout, cfg, train=False, env=env)
    scores, labels = predict(trained.model, loader, env, progress=True)
    write_scores(run, "test", scores, labels, bundle.test.names)
    result = {**accuracy_summary(scores, labels, bundle.class_names), "samples": int(len(labels))}
    if trained.unfinished:
        result["unfinished"] = {"epochs_done": int(trained.meta["epoch"]), "epochs": int(cfg.optim.epochs)}
    atomic_write_text(run / "eval.json", json.dumps(result, indent=2) + "\n")
    return result
