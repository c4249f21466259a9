"""`pcle ablate`: the grid as data, one folder per (row, seed), resumable, Markdown + CSV tables."""

import csv
import shutil

import pytest
from typer.testing import CliRunner

from pipeline import app
from recognizer.analysis.ablate import GRID, run_grid, to_markdown
from tests.conftest import tiny_overrides


def test_grid_covers_the_paper_rows():
    names = [n for n, _, _ in GRID]
    assert names == ["gap", "pcke", "pcle", "pcle-hybrid", "pcle-no-bridger", "pcle-no-interaction", "pcle-no-ranking",
                     "pcle-no-after", "pcle-learned-queries", "pcle-ctx4", "pcle-ctx8", "pcle-ctx16",
                     "pcle-bone", "pcle-joint-motion", "pcle-bone-motion",
                     *[f"{m}-{s}" for m in ("gap", "pcke", "pcle-hybrid")
                       for s in ("bone", "joint-motion", "bone-motion")]]
    rows = {n: (m, o) for n, m, o in GRID}
    assert rows["pcle-no-bridger"] == ("pcle", ["model.bridger=false"])
    assert rows["pcle-ctx8"] == ("pcle", ["prompt.n_ctx=8"])
    assert rows["pcle-bone-motion"] == ("pcle", ["data.clip.stream=bone_motion"])
    assert rows["gap-bone"] == ("gap", ["data.clip.stream=bone"])
    assert rows["pcle-hybrid-joint-motion"] == ("pcle", [*rows["pcle-hybrid"][1], "data.clip.stream=joint_motion"])
    from recognizer.config import resolve

    hybrid = resolve("nw-ucla", "pcle", overrides=rows["pcle-hybrid"][1])  # issue 21's chosen PCLE
    assert hybrid.prompt.hybrid and hybrid.prompt.ctx_init == "a person is" and hybrid.model.inference == "fusion"


def test_stream_rows_resolve_to_their_stream():
    from recognizer.config import resolve

    for name, method, over in GRID:
        stream = resolve("nw-ucla", method, overrides=over).data.clip.stream
        suffix = next((s for s in ("bone-motion", "joint-motion", "bone") if name.endswith("-" + s)), None)
        assert stream == (suffix.replace("-", "_") if suffix else "joint"), name


@pytest.mark.parametrize("row", [r for r in GRID if not r[0].startswith("pcle-ctx")
                                 and "data.clip.stream" not in " ".join(r[2])], ids=lambda r: r[0])
def test_every_grid_row_trains_what_it_names(row):
    """Each row removes exactly its part, and every parameter the row keeps gets a gradient from one step:
    no part of a row is left untrained while its random output feeds the scores."""
    import torch

    from recognizer.config import resolve
    from recognizer.method.graph import NTU25
    from recognizer.method.losses import total_loss
    from recognizer.method.model import PromptedContrastiveModel

    name, method, over = row
    cfg = resolve("synthetic", method, overrides=["model.width=8", "model.heads=4", *over])
    model = PromptedContrastiveModel(cfg.model, NTU25, 5, 16, num_person=2)
    assert (model.bridger is None) == (not cfg.model.bridger)
    assert (model.interaction is None) == (not cfg.model.interaction)
    if name == "pcle-no-bridger":
        assert model.bridger is None and model.interaction is not None
    if name == "pcle-no-interaction":
        assert model.interaction is None and model.bridger is not None
    if name == "pcle-learned-queries":
        assert model.bridger.mode == "learned"
    torch.manual_seed(0)
    y = torch.tensor([0, 1, 2, 0, 3, 4])
    out = model(torch.randn(6, 3, 16, 25, 2), class_text=torch.randn(5, 16))
    out["text_sample"], out["text_parts"] = torch.randn(6, 16), torch.randn(6, 4, 16)
    terms = total_loss(out, y, cfg.loss)
    assert ("ranking" in terms) == (cfg.loss.ranking and model.interacts)
    assert ("contrastive_after" in terms) == (cfg.loss.after and model.interacts)
    terms["loss"].backward()
    unused_scale = not (cfg.loss.after and model.interacts)  # the after-interaction scale of GAP / no-after rows
    for pname, p in model.named_parameters():
        if pname.startswith("skeleton."):  # CTR-GCN's refinement starts at alpha = 0: some zero grads at init
            continue
        if pname == "logit_scale":
            grads = p.grad[:-1] if unused_scale else p.grad
            assert grads.abs().min() > 0, name
        else:
            assert p.grad is not None and p.grad.abs().sum() > 0, (name, pname)


def test_tiny_grid_runs_resumes_and_tabulates(tiny_cache):
    out = tiny_cache / "grid"
    over = tiny_overrides(tiny_cache, "tiny-clip") + ["data.options={train_per_class: 2, test_per_class: 1, seed: 0}"]
    sets = [a for item in over for a in ("--set", item)]
    args = ["ablate", "--dataset", "synthetic", "--epochs", "1", *sets, "--only", "gap,pcle-no-ranking",
            "--out", str(out)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    for name in ("gap", "pcle-no-ranking"):
        assert (out / name / "seed0" / "metrics.json").is_file()
    md = (out / "ablation.md").read_text()
    body = [line for line in md.splitlines() if line.startswith("| ") and not line.startswith("| variant")]
    assert [line.split("|")[1].strip() for line in body] == ["gap", "pcle-no-ranking"]
    rows = list(csv.DictReader((out / "ablation.csv").read_text().splitlines()))
    assert [(r["name"], r["seed"], r["epochs"]) for r in rows] == [("gap", "0", "1"), ("pcle-no-ranking", "0", "1")]
    assert all(0 <= float(r["top1"]) <= float(r["top5"]) <= 100 for r in rows)
    # a second call finds both runs finished and only rewrites the tables
    mtime = (out / "gap" / "seed0" / "checkpoint.pt").stat().st_mtime_ns
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    assert again.output.count("done already") == 2
    assert (out / "gap" / "seed0" / "checkpoint.pt").stat().st_mtime_ns == mtime
    # another config is never taken for a finished run: refused before anything trains, naming the key
    other = [a if a != "1" else "2" for a in args]  # --epochs 2
    res = CliRunner().invoke(app, other)
    assert res.exit_code == 2 and "another config" in res.output and "optim.epochs: 1 -> 2" in res.output
    res = CliRunner().invoke(app, args[:-4] + ["--set", "optim.lr=0.05", "--only", "gap", "--out", str(out)])
    assert res.exit_code == 2 and "optim.lr: 0.1 -> 0.05" in res.output
    assert (out / "gap" / "seed0" / "checkpoint.pt").stat().st_mtime_ns == mtime
    # --only reuses one row, yet the tables still cover every run in the grid folder
    res = CliRunner().invoke(app, args[:-4] + ["--only", "gap", "--out", str(out)])
    assert res.exit_code == 0, res.output
    body = [line for line in (out / "ablation.md").read_text().splitlines() if line.startswith("| ")][1:]
    assert [line.split("|")[1].strip() for line in body] == ["gap", "pcle-no-ranking"]
    rows = list(csv.DictReader((out / "ablation.csv").read_text().splitlines()))
    assert len(rows) == 2 and all(len(r["config_hash"]) == 16 for r in rows)
    # a run stopped inside its first epoch (config and log header, no checkpoint, no epoch logged) starts again
    run = out / "pcle-no-ranking" / "seed0"
    for f in run.iterdir():
        if f.is_file() and f.name not in ("config.yaml", "provenance.json", "train.log"):
            f.unlink()
    (run / "log.jsonl").write_text("")
    res = CliRunner().invoke(app, args[:-4] + ["--only", "pcle-no-ranking", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "starting it again" in res.output and (run / "metrics.json").is_file()
    # one with a logged epoch but no checkpoint is left for the user to look at
    (run / "checkpoint.pt").unlink()
    (run / "metrics.json").unlink()
    res = CliRunner().invoke(app, args[:-4] + ["--only", "pcle-no-ranking", "--out", str(out)])
    assert res.exit_code != 0 and "ended before its first" in res.output
    # the tables follow each finished run: when the second run starts, they already list the first
    shutil.rmtree(run)
    (out / "ablation.md").unlink()
    seen = {}

    def log(msg: str) -> None:
        if "training ->" in msg:
            seen["md"] = (out / "ablation.md").read_text()

    run_grid(out, dataset="synthetic", epochs=1, overrides=over, only=["gap", "pcle-no-ranking"], log=log)
    assert "| gap |" in seen["md"] and "pcle-no-ranking" not in seen["md"]
    assert "| pcle-no-ranking |" in (out / "ablation.md").read_text()


def test_several_seeds_give_mean_and_std():
    recs = [{"name": n, "method": "x", "seed": s, "top1": t, "top5": 90.0, "mean_class_accuracy": t, "epochs": 2}
            for n, vals in (("gap", (50.0, 60.0)), ("pcle", (70.0, 70.0))) for s, t in zip((0, 1), vals)]
    md = to_markdown(recs, "synthetic", [0, 1])
    assert "| gap | " in md and "55.00 ± 7.07" in md
    assert "70.00 ± 0.00" in md and "+15.00" in md
    # a one-seed row is set against GAP and PCLE on that seed, not against their means over seeds
    recs.append({**recs[-1], "name": "pcle-no-ranking", "seed": 0, "top1": 66.0})
    row = next(line for line in to_markdown(recs).splitlines() if line.startswith("| pcle-no-ranking |"))
    assert row.split(" | ")[2:] == ["0", "66.00", "90.00", "70.00", "+16.00", "-4.00 |"]


def test_bad_row_and_seeds_are_clean_errors(tmp_path):
    res = CliRunner().invoke(app, ["ablate", "--dataset", "synthetic", "--only", "nope", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "unknown ablation row" in res.output
    res = CliRunner().invoke(app, ["ablate", "--dataset", "synthetic", "--seeds", "a", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "--seeds" in res.output


def test_saved_config_with_its_data_root_is_the_same_config(tmp_path):
    """A run's config.yaml names the data root it read; a plan with `data.root` unset (the dataset's default)
    is still that config, while any other change is refused. (zeroshot-grid refused its own runs before.)"""
    from recognizer.analysis.ablate import refuse_other_configs
    from recognizer.config import resolve, to_yaml
    from recognizer.training.run_setup import with_data_root

    planned = resolve("nw-ucla", "pcke", overrides=['data.unseen="random:2:0"'])
    assert planned.data.root is None
    run = tmp_path / "pcke" / "random-2-0"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(to_yaml(with_data_root(planned)))  # what train() writes
    refuse_other_configs([(run, planned)])
    other = resolve("nw-ucla", "pcke", overrides=['data.unseen="random:2:1"'])
    with pytest.raises(ValueError, match="another config"):
        refuse_other_configs([(run, other)])
