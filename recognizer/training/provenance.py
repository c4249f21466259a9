"""RUN_DIR/provenance.json: what a result was made from, so a number can be traced back months later.

Code (git commit and whether the tree had uncommitted changes), package versions, the prompt corpus
(path and SHA-256), the data (root and a fingerprint of the sample list), the machine (CPU, GPU).
A resumed run appends a record of each resumption (code, versions and machine may have changed).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import torch

from recognizer.checkpoint import atomic_write_text

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("pcle", "torch", "transformers", "numpy")


def git_state(repo: Path = REPO) -> dict:
    """{'commit': sha or None, 'dirty': bool or None}; None where this is not a git checkout."""
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit.strip(), "dirty": None if status is None else bool(status.strip())}


def package_versions() -> dict:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def file_sha256(path: str | Path) -> str | None:
    path = Path(path)
    if not path.is_file():
        return None
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sample_fingerprint(splits: dict) -> str:
    """SHA-256 over each split's sample names (or, without names, its labels and lengths), in order."""
    h = hashlib.sha256()
    for name, split in splits.items():
        h.update(f"[{name}] {len(split)}\n".encode())
        if split.names:
            h.update("\n".join(split.names).encode())
        else:
            h.update(split.labels.tobytes() + split.lengths.tobytes())
    return h.hexdigest()


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: torch.device) -> dict:
    gpus = []
    if torch.cuda.is_available():
        gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {"cpu": cpu_name(), "cpu_count": os.cpu_count(), "gpus": gpus, "device": str(device),
            "torch_threads": torch.get_num_threads(), "platform": platform.platform()}


def snapshot(device: torch.device) -> dict:
    """The parts that can change between a run's start and a resumption."""
    return {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": " ".join(sys.argv),
            "git": git_state(), "packages": package_versions(), "machine": machine(device)}


def data_record(dataset: str, root: str | None, splits: dict, corpus: str | None) -> dict:
    return {
        "dataset": dataset,
        "root": root,
        "samples": {name: len(s) for name, s in splits.items()},
        "sample_fingerprint": sample_fingerprint(splits),
        "corpus": str(Path(corpus).resolve()) if corpus else None,
        "corpus_sha256": file_sha256(corpus) if corpus else None,
    }


def write_provenance(run: Path, data: dict, device: torch.device, resumed: bool) -> dict:
    """Write (or, on resume, extend) RUN_DIR/provenance.json; returns what it holds."""
    path = Path(run) / "provenance.json"
    record = None
    if resumed and path.is_file():
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            record = None  # unreadable: start a fresh record rather than stop the run
    if record is None:
        record = {"started": snapshot(device), "data": data, "resumed": []}
    else:
        record.setdefault("resumed", []).append(snapshot(device))
        record["data"] = data
    atomic_write_text(path, json.dumps(record, indent=2) + "\n")
    return record
