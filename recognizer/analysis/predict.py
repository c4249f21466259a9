"""Top-k classes for new clips from a checkpoint alone (no text encoder, no dataset).

Accepted inputs, each preprocessed like the test split of the run:

- NTU RGB+D `.skeleton`: parsed, denoised and centred by `recognizer.datasets.ntu_raw` (spine mid
  of actor 1 in its first frame), as `pcle data prepare-ntu` does;
- NW-UCLA `.json` (`{"skeletons": [T][V][3], "label"?: 1-based}`): centred on the layout's centre
  joint of frame 0, as the NW-UCLA loader does;
- a native-format dataset folder (`meta.json` + arrays): every clip of every split;
- a `.npy` clip of shape (C, T, V, M) or (C, T, V); trailing all-zero frames count as padding.

Clips of the last two kinds are centred as the run's training clips were (the checkpoint's
`centre`: "first-frame" subtracts the centre joint of the first non-empty frame, "none" takes them as
stored); a clip
that still sits far from the origin gets a warning (the model never saw such coordinates).

Then: central crop (`data.clip.test_crop`) and resize to `data.clip.window`, the run's stream
(`data.clip.stream`). A clip whose channels or joints differ from the checkpoint's `input_shape`
or whose layout differs from the checkpoint's, or that holds more non-empty persons than
the model takes, is refused with a message naming the file. Fewer persons are zero-padded (how
single-actor NTU clips are stored) and empty extra persons are dropped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from recognizer.datasets.base import centre_clip, eval_clip, to_stream
from recognizer.datasets.checks import ORIGIN_RATIO_WARN, centring_advice, origin_ratio
from recognizer.method.graph import NTU25, Layout


class ClipError(ValueError):
    """A clip cannot be read or does not fit the checkpoint; the message names the file."""


@dataclass
class Clip:
    source: str  # file (and split/index for a dataset folder)
    data: np.ndarray  # (C, L, V, M), unpadded
    layout: Layout | None = None  # the layout the file declares, when it declares one
    label: str | None = None  # the true class, when the file says
    stored: bool = False  # coordinates as stored (.npy, native): the run's centring applies


def _valid_length(x: np.ndarray) -> int:
    """Frames up to the last one with a non-zero value (at least 1)."""
    nz = np.flatnonzero(np.abs(x).reshape(x.shape[0], x.shape[1], -1).sum((0, 2)) > 0)
    return int(nz[-1]) + 1 if len(nz) else 1


def read_ntu(path: Path) -> list[Clip]:
    from recognizer.datasets.ntu_raw import load_sequence

    return [Clip(str(path), load_sequence(path), NTU25)]


def read_ucla_json(path: Path, layout: Layout, class_names: list[str]) -> list[Clip]:
    try:
        rec = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ClipError(f"{path}: not readable JSON ({e})") from None
    if not isinstance(rec, dict) or "skeletons" not in rec:
        raise ClipError(f"{path}: expected an object with 'skeletons' ([T][V][3] coordinates)")
    try:
        sk = np.asarray(rec["skeletons"], dtype=np.float32)
    except (TypeError, ValueError):
        raise ClipError(f"{path}: 'skeletons' is not a [T][V][3] array of numbers") from None
    if sk.ndim != 3 or len(sk) == 0:
        raise ClipError(f"{path}: 'skeletons' has shape {sk.shape}, expected (T>=1, V, 3)")
    if not np.isfinite(sk).all():
        raise ClipError(f"{path}: 'skeletons' holds NaN or infinite coordinates")
    if sk.shape[1] == layout.num_joints:
        sk = sk - sk[0, layout.center]  # as the NW-UCLA loader: centre joint of frame 0
    label = rec.get("label")
    true = class_names[label - 1] if isinstance(label, int) and 1 <= label <= len(class_names) else None
    return [Clip(str(path), sk.transpose(2, 0, 1)[..., None], None, true)]  # (3, T, V, 1)


def read_npy(path: Path) -> list[Clip]:
    try:
        x = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise ClipError(f"{path}: not a readable .npy array ({e})") from None
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or not np.issubdtype(x.dtype, np.number):
        raise ClipError(f"{path}: array of shape {x.shape} and dtype {x.dtype}; expected numbers shaped "
                        "(C, T, V, M) or (C, T, V)")
    if x.size == 0:
        raise ClipError(f"{path}: the clip is empty (shape {x.shape}: no frames, joints or channels)")
    x = x.astype(np.float32)
    return [Clip(str(path), x[:, : _valid_length(x)], stored=True)]


def read_native(folder: Path) -> list[Clip]:
    from recognizer.datasets.native import layout_from_meta, read_meta, read_split

    meta = read_meta(folder)
    layout = layout_from_meta(meta["layout"], str(folder / "meta.json"))
    names = list(meta["class_names"])
    clips = []
    for split in meta["splits"]:
        s = read_split(folder, split)
        for i in range(len(s)):
            name = s.names[i] if s.names else f"{split}[{i}]"
            lab = int(s.labels[i])
            clips.append(Clip(f"{folder}:{split}/{name}", np.asarray(s.data[i, :, : int(s.lengths[i])], np.float32),
                              layout, names[lab] if 0 <= lab < len(names) else None, stored=True))
    return clips


def read_clips(path: str | Path, layout: Layout, class_names: list[str]) -> list[Clip]:
    path = Path(path)
    if path.is_dir():
        if not (path / "meta.json").is_file():
            raise ClipError(f"{path}: a folder must be a native-format dataset (it has no meta.json)")
        return read_native(path)
    if not path.is_file():
        raise ClipError(f"{path}: file not found")
    suffix = path.suffix.lower()
    if suffix == ".skeleton":
        return read_ntu(path)
    if suffix == ".json":
        return read_ucla_json(path, layout, class_names)
    if suffix == ".npy":
        return read_npy(path)
    raise ClipError(f"{path}: unknown clip type '{suffix}' (expected .skeleton, .json, .npy or a native folder)")


def fit_layout(clip: Clip, input_shape: list[int], layout: Layout) -> np.ndarray:
    """(C, L, V, M) of the clip -> (C, L, V, M_model), or ClipError naming the file."""
    c, _, v, m = input_shape
    x = clip.data
    got = f"{x.shape[0]} channels, {x.shape[2]} joints, {x.shape[3]} person(s)"
    want = f"{c} channels, {v} joints (layout '{layout.name}'), up to {m} person(s)"
    if clip.layout is not None and clip.layout.parents != layout.parents:
        raise ClipError(f"{clip.source}: the clip's layout is '{clip.layout.name}' ({clip.layout.num_joints} joints), "
                        f"the checkpoint expects '{layout.name}' ({want})")
    if x.shape[0] != c or x.shape[2] != v:
        raise ClipError(f"{clip.source}: the clip has {got}; the checkpoint expects {want}")
    if x.shape[3] > m:
        extra = x[..., m:]
        if np.any(extra != 0):
            busy = int(np.sum(np.any(x != 0, axis=(0, 1, 2))))
            raise ClipError(f"{clip.source}: the clip has {busy} non-empty persons; the checkpoint expects {want}")
        x = x[..., :m]
    elif x.shape[3] < m:
        x = np.concatenate([x, np.zeros((*x.shape[:3], m - x.shape[3]), np.float32)], axis=3)
    if not np.isfinite(x).all():
        raise ClipError(f"{clip.source}: the clip holds NaN or infinite values")
    return x


def centred(x: np.ndarray, clip: Clip, centre: str, layout: Layout) -> np.ndarray:
    """Centre a clip taken as stored the way the run's loader centred its clips."""
    return centre_clip(x, layout.center) if clip.stored and centre == "first-frame" else x


def origin_warning(x: np.ndarray, layout: Layout, centred: bool = False) -> str | None:
    """A note when the clip sits far from the origin: the model was trained on centred clips.

    `centred`: the run's centring was applied to this clip already, so advising it would be wrong.
    """
    r = origin_ratio(x)
    if r is None or r <= ORIGIN_RATIO_WARN:
        return None
    return (f"the clip sits {r:.1f} body sizes from the origin: answers for uncentred clips are unreliable "
            f"({centring_advice(layout, centred)}; docs/datasets.md)")


def preprocess(x: np.ndarray, cfg, layout: Layout) -> np.ndarray:
    """As the test split (`eval_clip`: the clip mode's test frames and normalisation), then the configured stream."""
    clip = cfg.data.clip
    x = eval_clip(x, x.shape[1], clip)
    return np.ascontiguousarray(to_stream(x, layout, clip.stream), dtype=np.float32)


def _read_all(files: list[str | Path], trained, layout: Layout,
              on_error) -> tuple[list[Clip], list[np.ndarray], list[str | None]]:
    """The clips that fit the checkpoint, centred as in training and preprocessed, with a warning per clip
    (or None); a bad one goes to `on_error` (or raises without one)."""
    shape = list(trained.meta["input_shape"])
    centre = trained.meta.get("centre", "none")
    clips, inputs, warnings = [], [], []
    for f in files:
        try:
            found = read_clips(f, layout, trained.class_names)
        except ClipError as e:
            if on_error is None:
                raise
            on_error(str(e))
            continue
        for clip in found:
            try:
                if not np.any(clip.data):
                    raise ClipError(f"{clip.source}: every coordinate is zero: there is no skeleton to recognise")
                fitted = centred(fit_layout(clip, shape, layout), clip, centre, layout)
                inputs.append(preprocess(fitted, trained.cfg, layout))
            except ClipError as e:
                if on_error is None:
                    raise
                on_error(str(e))
                continue
            clips.append(clip)
            # .skeleton/.json readers centre themselves; stored clips were centred above when the run was
            warnings.append(origin_warning(fitted, layout, not clip.stored or centre == "first-frame"))
    return clips, inputs, warnings


def score_rule(model) -> str:
    """What the probabilities are the softmax of, in words (the run's inference rule)."""
    w_logits, w_sim = (float(v) for v in model.fusion)
    if w_sim == 0:
        return "softmax of the classification head's logits"
    if w_logits == 0:
        return "softmax of scale x cosine similarity to the class texts"
    return f"softmax of head logits + {w_sim:g} x scale x cosine similarity to the class texts"


@torch.no_grad()
def predict_files(checkpoint: str | Path, files: list[str | Path], top_k: int = 5, device: str = "cpu",
                  batch_size: int = 32, on_error=None, on_note=None) -> list[dict]:
    """One record per clip: source, true class (when known) and the top-k classes with probabilities.

    A probability is the softmax over all classes of the model's inference scores (`score_rule`): the
    model's own confidence, not a calibrated probability; a model that fits its training clips closely is
    confident on any clip, right or wrong (the run's test accuracy says how often it is right). Each entry
    also holds the raw score.

    `on_error(message)`, when given, receives each clip that cannot be read or does not fit, and the
    others are still predicted (a batch of files is not lost to one bad clip); without it, ClipError.
    `on_note(message)` hears that the checkpoint is an unfinished run's (recognizer.analysis.evaluate).
    """
    from recognizer.analysis.evaluate import load_trained
    from recognizer.training.speed import amp_dtype, autocast, fp32_outputs

    if not files:
        raise ClipError("give at least one clip")
    if top_k < 1:
        raise ClipError(f"--top-k {top_k}: must be at least 1 (the classes to show per clip)")
    trained = load_trained(checkpoint, device)
    if trained.unfinished and on_note is not None:
        on_note(trained.unfinished)
    layout = trained.layout
    clips, inputs, warnings = _read_all(files, trained, layout, on_error)
    k = max(1, min(top_k, len(trained.class_names)))
    results = []
    for start in range(0, len(inputs), batch_size):
        x = torch.from_numpy(np.stack(inputs[start : start + batch_size])).to(device)
        model = trained.model
        with autocast(x.device, amp_dtype(trained.cfg.run.amp, x.device)):  # the run's own path (run.amp)
            out = fp32_outputs(model(x))
        scores = model.scores(out).float().cpu()  # (B, C)
        p, idx = torch.softmax(scores, dim=1).topk(k, dim=1)
        for j, clip in enumerate(clips[start : start + batch_size]):
            rec = {"source": clip.source, "scores": score_rule(model),
                   "top": [{"class": trained.class_names[int(c)], "id": int(c), "probability": float(q),
                            "score": float(scores[j, c])} for q, c in zip(p[j], idx[j])]}
            if clip.label is not None:
                rec["true"] = clip.label
            if warnings[start + j]:
                rec["warning"] = warnings[start + j]
            results.append(rec)
    return results
