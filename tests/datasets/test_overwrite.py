"""No command replaces user data it did not create in this call (recognizer/overwrite.py), for datasets
and corpora; the run-folder side is in tests/results/test_run_outputs.py."""

from __future__ import annotations

import json

import pytest
from ds_paths import UCLA, need
from typer.testing import CliRunner

from corpus import CURATED
from corpus.overwrite import OverwriteError, refuse_other_dataset
from pipeline import app

runner = CliRunner()


def _ok(args: list[str]):
    res = runner.invoke(app, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    return res


def test_import_ucla_refuses_to_replace_another_dataset(tmp_path):
    """The issue: `import-ucla --limit 20` onto a 200-clip dataset replaced it silently."""
    src, out = need(UCLA), tmp_path / "ucla"
    _ok(["data", "import-ucla", src, "--out", out, "--limit", 30])
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    _ok(["data", "import-ucla", src, "--out", out, "--limit", 30])  # the same import may redo its own output
    res = runner.invoke(app, ["data", "import-ucla", str(src), "--out", str(out), "--limit", "10"])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "holds another dataset" in res.output and "--overwrite" in res.output and "limit 30" in res.output
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # untouched
    _ok(["data", "import-ucla", src, "--out", out, "--limit", 10, "--overwrite"])
    assert json.loads((out / "meta.json").read_text())["made_by"]["limit"] == 10


def test_imports_refuse_folders_of_other_files(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("my notes")
    with pytest.raises(OverwriteError, match="files this command did not write .notes.txt"):
        refuse_other_dataset(folder, {"command": "import-npz", "source": "x"}, overwrite=False)
    refuse_other_dataset(folder, {"command": "import-npz"}, overwrite=True)
    refuse_other_dataset(tmp_path / "absent", {"command": "import-npz"}, overwrite=False)
    partial = tmp_path / "partial"  # an interrupted import: data files, no meta.json yet
    partial.mkdir()
    (partial / "train_data.npy").write_bytes(b"")
    refuse_other_dataset(partial, {"command": "import-npz"}, overwrite=False)
    res = runner.invoke(app, ["data", "import-npz", str(tmp_path / "a.npz"), "--out", str(folder)])
    assert res.exit_code == 2 and "notes.txt" in res.output and "Traceback" not in res.output
    assert (folder / "notes.txt").read_text() == "my notes"


def _edited_corpus(tmp_path):
    """A copy of the curated corpus with one record edited by hand (content changed, hash stale)."""
    lines = CURATED["nw-ucla"].read_text(encoding="utf-8").splitlines()
    rec = json.loads(lines[0])
    rec["description"] = "My own careful description."
    lines[0] = json.dumps(rec)
    path = tmp_path / "myedited.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, rec["name"]


def test_prompts_import_keeps_a_hand_edited_corpus(tmp_path):
    """The issue: `prompts import --out myedited.jsonl` replaced hand edits without a word. Export also makes
    its missing folders (it was a FileNotFoundError traceback)."""
    syn, parts = tmp_path / "new" / "dir" / "s.txt", tmp_path / "new" / "dir" / "p.txt"
    _ok(["prompts", "export", CURATED["nw-ucla"], "--synonyms", syn, "--parts", parts])
    assert syn.is_file() and parts.is_file()
    corpus, name = _edited_corpus(tmp_path)
    before = corpus.read_bytes()
    res = runner.invoke(app, ["prompts", "import", "--synonyms", str(syn), "--parts", str(parts),
                              "--out", str(corpus)])
    assert res.exit_code == 1 and "hand-edited record" in res.output and name in res.output
    assert "--overwrite-edits" in res.output and "Traceback" not in res.output
    assert corpus.read_bytes() == before
    _ok(["prompts", "import", "--synonyms", syn, "--parts", parts, "--out", corpus, "--overwrite-edits"])
    assert corpus.read_bytes() != before
    fresh = tmp_path / "fresh.jsonl"  # a new file, and a generated (unedited) one, are written as before
    _ok(["prompts", "import", "--synonyms", syn, "--parts", parts, "--out", fresh])
    _ok(["prompts", "import", "--synonyms", syn, "--parts", parts, "--out", fresh])


def test_export_refuses_curated_targets(tmp_path):
    before = CURATED["nw-ucla"].read_bytes()
    res = runner.invoke(app, ["prompts", "export", str(CURATED["nw-ucla"]), "--synonyms", str(CURATED["nw-ucla"]),
                              "--parts", str(tmp_path / "p.txt")])
    assert res.exit_code == 1 and "curated corpus" in res.output
    assert CURATED["nw-ucla"].read_bytes() == before
