"""The worked examples of docs/datasets.md, run as written (tiny sizes): convert, check, train 1 epoch,
evaluate, predict, t-SNE. A custom layout must travel with the checkpoint for the last three."""

from __future__ import annotations

import json
import re
import runpy
import shlex

from ds_paths import REPO, UCLA, need
from typer.testing import CliRunner

from pipeline import app

DOC = REPO / "docs" / "datasets.md"
TINY = ["data.clip.window=16", "data.num_workers=0", "model.width=8", "model.heads=2", "model.bridger_queries=2",
        "text.encoder=tiny-bert", "text.tiny_dim=32", "prompt.n_ctx=4", "optim.batch_size=16", "optim.repeat=1",
        "optim.warmup_epochs=1", "optim.milestones=[1]", "run.threads=1", "run.device=cpu"]


def section(title: str) -> str:
    text = DOC.read_text()
    start = text.index(title)
    end = text.find("\n###", start + 1)
    return text[start : end if end > 0 else None]


def commands(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if re.match(r"^    (pcle|python) ", line)]


def run_pcle(line: str, tmp_path) -> str:
    """One `pcle ...` line of the docs, at tiny sizes: 1 epoch, a small model, 40 NW-UCLA clips."""
    args = shlex.split(line.replace("configs/", f"{REPO}/configs/"))[1:]
    args = ["1" if a.isdigit() and args[i - 1] == "--epochs" else a for i, a in enumerate(args)]
    args = [str(UCLA) if a == "../shared/data/nw-ucla/all_sqe" else a for a in args]
    args = ["40" if i and args[i - 1] == "--limit" else a for i, a in enumerate(args)]
    if args[0] == "train":
        args += [x for item in TINY + [f"prompt.cache_dir={tmp_path / 'text-cache'}"] for x in ("--set", item)]
    res = CliRunner().invoke(app, args, catch_exceptions=False)
    assert res.exit_code == 0, f"{line}\n{res.output}"
    return res.output


def test_worked_example_2_custom_coco_layout(tmp_path, monkeypatch):
    text = section("### Worked example 2")
    script = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my_coco_to_native.py").write_text(script)
    lines = commands(text)
    assert [" ".join(li.split()[1:3]) for li in lines[1:]] == [
        "data check", "data show-layout", "train --data-root", "evaluate runs/my-coco", "predict runs/my-coco",
        "tsne runs/my-coco"]
    assert shlex.split(lines[0]) == ["python", "my_coco_to_native.py"]
    runpy.run_path(str(tmp_path / "my_coco_to_native.py"), run_name="__main__")  # in-process: no second torch import
    meta = json.loads((tmp_path / "data/my-coco/meta.json").read_text())
    assert meta["layout"]["name"] == "my-coco" and meta["centre"] == "first-frame"
    outputs = {" ".join(li.split()[1:3]): run_pcle(li, tmp_path) for li in lines[1:]}
    assert "0 errors, 0 warnings" in outputs["data check"]  # a body, centred: no joint-order or origin warning
    assert (tmp_path / "my-coco.png").stat().st_size > 5000
    ev = json.loads((tmp_path / "runs/my-coco/eval.json").read_text())
    assert ev["samples"] == 30
    predicted = outputs["predict runs/my-coco"]
    assert "one-clip.npy" in predicted and "hand waving" in predicted
    assert "warning" not in predicted  # stored uncentred, centred like the training clips
    summary = json.loads((tmp_path / "runs/my-coco/report/tsne.json").read_text())
    assert summary["classes"] == ["hand waving", "jump up", "sitting down"]


def test_worked_example_1_nw_ucla_subset(tmp_path, monkeypatch):
    need(UCLA)
    monkeypatch.chdir(tmp_path)
    lines = commands(section("### Worked example 1"))
    assert [li.split()[1] for li in lines] == ["data", "data", "train", "evaluate", "tsne"]
    for line in lines:
        run_pcle(line, tmp_path)
    assert json.loads((tmp_path / "runs/ucla-small/eval.json").read_text())["samples"] > 0
    assert (tmp_path / "runs/ucla-small/report/tsne.png").is_file()
