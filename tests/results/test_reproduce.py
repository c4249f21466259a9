"""`pcle reproduce` (make reproduce): streams x methods, ensembles, a Table-3 layout; resumable; and `pcle curves`."""

import json

import matplotlib.image as mpimg
from typer.testing import CliRunner

from pipeline import app
from recognizer.analysis.reproduce import reproduce, to_markdown
from tests.conftest import tiny_overrides


def test_reproduce_smoke_resumes_and_tabulates(tiny_cache):
    out = tiny_cache / "repro"
    over = tiny_overrides(tiny_cache, "tiny-clip") + ["data.options={train_per_class: 2, test_per_class: 2, seed: 0}",
                                                      "optim.batch_size=10"]  # 20 clips: 2 batches per epoch
    lines: list[str] = []
    table = reproduce("synthetic", out, overrides=over, streams="joint,bone", methods="gap,pcle", epochs=1,
                      log=lines.append)
    assert [r["method"] for r in table["rows"]] == ["gap", "pcle"]
    for row in table["rows"]:
        assert set(row["streams"]) == {"joint", "bone"} and 0 <= row["ensemble"] <= 100
        assert row["weights_from"] == "default by stream" and row["weights"] == [0.6, 0.6]
    for stream in ("joint", "bone"):
        cfg = (out / stream / "pcle" / "seed0" / "config.yaml").read_text()
        assert f"stream: {stream}" in cfg
    md = (out / "table.md").read_text()
    assert "| GAP (ours, this code) |" in md and "2-stream ensemble" in md
    assert json.loads((out / "table.json").read_text()) == table
    stamp = (out / "joint" / "gap" / "seed0" / "metrics.json").stat().st_mtime
    lines.clear()
    again = reproduce("synthetic", out, overrides=over, streams="joint,bone", methods="gap,pcle", epochs=1,
                      log=lines.append)
    assert again == table and sum("done already" in m for m in lines) == 4
    assert (out / "joint" / "gap" / "seed0" / "metrics.json").stat().st_mtime == stamp

    png = tiny_cache / "curves.png"
    res = CliRunner().invoke(app, ["curves", str(out / "joint" / "gap" / "seed0"),
                                   str(out / "joint" / "pcle" / "seed0"), "--out", str(png)])
    assert res.exit_code == 0, res.output
    assert mpimg.imread(png).shape[2] in (3, 4)
    assert set(json.loads(png.with_suffix(".json").read_text())) == {"gap/seed0", "pcle/seed0"}
    # two runs of one row in different grids keep their own lines
    from recognizer.analysis.curves import run_names
    assert run_names(["a/pcle/seed0", "b/pcle/seed0", "b/gap/seed0"]) == ["a/pcle/seed0", "b/pcle/seed0",
                                                                          "b/gap/seed0"]
    res = CliRunner().invoke(app, ["curves", str(out / "joint" / "gap" / "seed0"), "--out", str(png),
                                   "--labels", "x,y"])
    assert res.exit_code != 0 and "2 labels for 1 runs" in res.output


def test_published_rows_and_bad_names():
    table = {"dataset": "nw-ucla", "seed": 0, "streams": ["joint"],
             "rows": [{"method": "pcle", "label": "PCLE (ours)", "streams": {"joint": 90.0}, "ensemble": 90.0,
                       "weights": [0.6], "weights_from": "default by stream"}]}
    md = to_markdown(table)
    assert "| GAP (published) |  | 97.2 |" in md and "| PCLE (ours) | 90.00 | **90.00** |" in md
    res = CliRunner().invoke(app, ["reproduce", "--dataset", "synthetic", "--streams", "joint,elbow", "--out", "x"])
    assert res.exit_code == 2 and "--streams elbow" in res.output
