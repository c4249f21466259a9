"""`pcle tsne RUN [RUN ...]`: Fig. 2 side by side, with silhouette scores saved next to the PNG."""

import json

import matplotlib.image as mpimg
import numpy as np
import pytest
from typer.testing import CliRunner

from pipeline import app
from recognizer.analysis.tsne import pick_classes, silhouette

NAMES = ["hand waving", "kicking something", "jump up", "sitting down", "clapping"]


def test_two_runs_side_by_side(tiny_run, tmp_path):
    out = tmp_path / "fig" / "tsne.png"
    res = CliRunner().invoke(app, ["tsne", str(tiny_run), str(tiny_run), "--classes", "hand waving,jump up",
                                   "--classes", "3,5", "--out", str(out), "--per-class", "3"])
    assert res.exit_code == 0, res.output
    assert "silhouette" in res.output
    img = mpimg.imread(out)
    assert img.shape[:2] == (500, 920 + 280)  # 4.6 x 5 inches per panel + 2.8 for the legend, at 100 dpi
    assert img[..., :3].std() > 0.05  # something was drawn
    summary = json.loads(out.with_suffix(".json").read_text())
    assert len(summary["classes"]) == 4 and summary["classes"][0] == "hand waving"
    assert len(summary["runs"]) == 2
    for r in summary["runs"]:
        assert r["samples"] == 12 and r["method"] == "pcle"
        assert -1 <= r["silhouette_embedding"] <= 1 and -1 <= r["silhouette_tsne"] <= 1
    assert summary["runs"][0]["silhouette_embedding"] == summary["runs"][1]["silhouette_embedding"]


def test_after_interaction_embedding_is_its_own_space(tiny_run, tmp_path):
    from recognizer.analysis.tsne import embed_run

    before, after = embed_run(tiny_run), embed_run(tiny_run, embedding="after")
    assert before.skel.shape == after.skel.shape and not np.allclose(before.skel, after.skel)
    assert "after interaction" in after.name
    out = tmp_path / "after.png"
    res = CliRunner().invoke(app, ["tsne", str(tiny_run), "--embedding", "after", "--classes", "0,1",
                                   "--out", str(out), "--per-class", "3"])
    assert res.exit_code == 0, res.output
    assert json.loads(out.with_suffix(".json").read_text())["embedding"] == "after"
    res = CliRunner().invoke(app, ["tsne", str(tiny_run), "--embedding", "sideways", "--out", str(out)])
    assert res.exit_code != 0 and "global or after" in res.output


def test_default_is_nine_classes_and_names_are_checked():
    names = [f"c{i}" for i in range(12)]
    assert pick_classes(None, names) == list(range(9))
    assert pick_classes(["C3, 1", "c3"], names) == [3, 1]
    with pytest.raises(ValueError, match="unknown class 'nope'"):
        pick_classes(["nope"], names)
    with pytest.raises(ValueError, match="outside"):
        pick_classes(["1,99"], names)


def test_silhouette_tells_separated_from_mixed_clusters():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 20)
    centres = np.eye(3) * 10
    tight = centres[labels] + rng.normal(0, 0.1, (60, 3))
    mixed = rng.normal(0, 1, (60, 3))
    assert silhouette(tight, labels, "cosine") > 0.9 > silhouette(mixed, labels, "cosine")


def test_unknown_run_is_a_clean_error(tmp_path):
    res = CliRunner().invoke(app, ["tsne", str(tmp_path / "missing")])
    assert res.exit_code == 2 and "error" in res.output


def test_class_styles_stay_distinct_past_twenty_classes(tmp_path):
    """20 classes get 20 different colours (tab20 repeated hues and had pale ones close to the old grey);
    past the palette the marker changes, so every (colour, marker) pair is still unique."""
    import matplotlib.colors as mc

    from recognizer.analysis.tsne import Embedded, class_styles, plot

    styles = class_styles(20)
    assert len({c for c, _ in styles}) == 20 and {m for _, m in styles} == {"o"}
    assert all(sum(mc.to_rgb(c)) < 2.4 for c, _ in styles)  # none pale enough to vanish on white
    assert len(set(class_styles(60))) == 60
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(22), 5)
    pred = np.where(rng.random(len(labels)) < 0.2, (labels + 1) % 22, labels)
    emb = Embedded("demo", "pcle", [f"c{i}" for i in range(22)], np.zeros((1, 2)), labels, pred, np.zeros((22, 2)))
    res = {"skel_xy": rng.normal(size=(len(labels), 2)), "text_xy": rng.normal(size=(22, 2)), "labels": labels,
           "pred": pred, "silhouette_embedding": None, "accuracy": 80.0}
    assert plot([(emb, res)], list(range(22)), tmp_path / "t.png").stat().st_size > 5000
