"""Regenerate the GAP parity fixtures (tests/fixtures/gap_parity.npz) from a checkout of GAP's code.

    pip install einops            # GAP's model imports it; nothing else beyond the project's venv
    python tools/gap_parity.py --gap /path/to/GAP [--out tests/fixtures/gap_parity.npz]

GAP (MartinXM/GAP, Apache-2.0) is imported from the checkout, never copied: its NW-UCLA feeder, its
LST models' input matrix and part pooling, and its KLLoss / create_logits / gen_label, run on fixed
random inputs. GAP's modules that need CLIP weights or its text files at import (`clip`, `Text_Prompt`)
are replaced by empty modules; nothing from them is used. Tests read only the .npz.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import types
from pathlib import Path

import numpy as np
import torch

UCLA_STREAMS = ("joint", "bone", "joint_motion", "bone_motion")


def import_gap(root: Path) -> dict:
    for name in ("clip", "Text_Prompt"):
        sys.modules[name] = types.ModuleType(name)
    np.int = int  # GAP's feeder uses np.int, removed in NumPy 1.24
    sys.path.insert(0, str(root))
    import KLLoss
    from feeders import feeder_ucla
    from model import ctrgcn

    import tools as gap_tools

    return {"feeder": feeder_ucla, "ctrgcn": ctrgcn, "KLLoss": KLLoss.KLLoss, "tools": gap_tools}


def random_clips(rng: np.random.Generator) -> list[np.ndarray]:
    """Skeleton-like clips (T, 20, 3): a body offset plus a random walk per joint; one single-frame clip."""
    clips = []
    for length in (37, 75, 1):
        base = rng.normal(0, 0.3, (1, 20, 3)) + np.array([0.2, -0.1, 3.0])
        walk = np.cumsum(rng.normal(0, 0.02, (length, 20, 3)), axis=0)
        clips.append((base + walk).astype(np.float64))
    return clips


def feeder(gap: dict, clips: list[np.ndarray], train: bool, stream: str):
    f = gap["feeder"].Feeder.__new__(gap["feeder"].Feeder)
    f.data, f.label = clips, [0] * len(clips)
    f.data_dict = [{}] * len(clips)
    f.time_steps, f.train_val, f.data_path, f.repeat = 52, "train" if train else "val", stream, 1
    f.bone = [(1, 2), (2, 3), (3, 3), (4, 3), (5, 3), (6, 5), (7, 6), (8, 7), (9, 3), (10, 9), (11, 10),
              (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18), (20, 19)]
    return f


def feeder_fixtures(gap: dict, out: dict) -> None:
    clips = random_clips(np.random.default_rng(0))
    for i, clip in enumerate(clips):
        out[f"ucla_clip{i}"] = clip
        for stream in UCLA_STREAMS:
            out[f"ucla_test_{stream}_{i}"] = feeder(gap, clips, False, stream)[i][0]
            seed = 100 + i
            random.seed(seed)  # replay the feeder's draws, in its order
            random.random()
            agx, agy, scale = random.randint(-60, 60), random.randint(-60, 60), random.uniform(0.5, 1.5)
            idx = sorted(random.sample(list(np.arange(len(clip))) * 100, 52))
            random.seed(seed)
            out[f"ucla_train_{stream}_{i}"] = feeder(gap, clips, True, stream)[i][0]
            out[f"ucla_draws_{i}"] = np.array([math.radians(agx), math.radians(agy), scale])
            out[f"ucla_idx_{i}"] = np.array(idx)


def lst_fixtures(gap: dict, out: dict) -> None:
    ctr = gap["ctrgcn"]
    for name, cls, graph, ks in (("ucla20", ctr.Model_lst_4part_ucla, "graph.ucla.Graph", (1, 6)),
                                 ("ntu25", ctr.Model_lst_4part, "graph.ntu_rgb_d.Graph", (1, 8))):
        for k in ks:
            out[f"lst_{name}_k{k}"] = cls.get_A(None, graph, k).numpy()


def captured_model_io(model: torch.nn.Module, x: torch.Tensor, fmap: torch.Tensor) -> tuple[torch.Tensor, list]:
    """GAP's LST-transformed input (what data_bn receives) and its part features when l10 outputs `fmap`
    and every part projection is the identity on the first 256 outputs."""
    seen = {}
    model.data_bn.register_forward_pre_hook(lambda m, args: seen.setdefault("bn_in", args[0].detach().clone()))
    model.l10.register_forward_hook(lambda m, args, output: fmap)
    with torch.no_grad():
        for lin in model.part_list:
            lin.weight.zero_()
            lin.weight[:256].copy_(torch.eye(256))
            lin.bias.zero_()
        parts = model.eval()(x)[3]
    return seen["bn_in"], [p[:, :256] for p in parts]


def model_fixtures(gap: dict, out: dict) -> None:
    ctr = gap["ctrgcn"]
    torch.manual_seed(0)
    for name, cls, graph, v, m, k in (("ucla20", ctr.Model_lst_4part_ucla, "graph.ucla.Graph", 20, 1, 6),
                                      ("ntu25", ctr.Model_lst_4part, "graph.ntu_rgb_d.Graph", 25, 2, 1)):
        model = cls(num_class=10, num_point=v, num_person=m, graph=graph, graph_args={"labeling_mode": "spatial"},
                    k=k)
        x = torch.randn(2, 3, 8, v, m)
        fmap = torch.zeros(2 * m, 256, 2, v)
        fmap[:, :v] = torch.eye(v)[None, :, None, :]  # channel c marks joint c
        bn_in, parts = captured_model_io(model, x, fmap)
        out[f"model_{name}_x"], out[f"model_{name}_k"] = x.numpy(), np.array(k)
        out[f"model_{name}_bn_in"] = bn_in.numpy()
        out[f"part_pool_{name}"] = torch.stack([p[0, :v] for p in parts]).numpy()  # (4, V): head, hand, hip, foot


def loss_fixture(gap: dict, out: dict) -> None:
    """GAP's training loss (main_multipart_ucla.py) on fixed features: CE + alpha * mean of five KL terms."""
    g = torch.Generator().manual_seed(1)
    b, d, c = 8, 16, 4
    labels = torch.tensor([0, 1, 2, 0, 3, 1, 0, 2])
    logits = torch.randn(b, c, generator=g)
    skel = [torch.randn(b, d, generator=g) for _ in range(5)]  # global, head, hand, hip, foot
    text = [torch.randn(b, d, generator=g) for _ in range(5)]
    scales = torch.tensor([[2.6593, 2.1, 3.3, 1.7, 2.9]])
    kl, create_logits, gen_label = gap["KLLoss"](), gap["tools"].create_logits, gap["tools"].gen_label
    gt = torch.tensor(gen_label(labels.numpy()), dtype=torch.float32)
    terms = []
    for ind in range(5):
        per_image, per_text = create_logits(skel[ind], text[ind], scales[:, ind].mean())
        terms.append((kl(per_image, gt) + kl(per_text, gt)) / 2)
    alpha = 1.0  # --loss-alpha default of main_multipart_ucla.py
    loss = torch.nn.functional.cross_entropy(logits, labels) + alpha * sum(terms) / len(terms)
    out.update(loss_labels=labels.numpy(), loss_logits=logits.numpy(), loss_skel=torch.stack(skel).numpy(),
               loss_text=torch.stack(text).numpy(), loss_scales=scales[0].numpy(), loss_alpha=np.array(alpha),
               loss_terms=torch.stack(terms).numpy(), loss_value=np.array(float(loss)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gap", required=True, type=Path, help="a checkout of MartinXM/GAP")
    default = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "gap_parity.npz"
    ap.add_argument("--out", type=Path, default=default)
    args = ap.parse_args()
    gap = import_gap(args.gap.resolve())
    out: dict = {}
    feeder_fixtures(gap, out)
    lst_fixtures(gap, out)
    model_fixtures(gap, out)
    loss_fixture(gap, out)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **{k: np.asarray(v) for k, v in out.items()})
    print(f"wrote {len(out)} arrays to {args.out}")


if __name__ == "__main__":
    main()
