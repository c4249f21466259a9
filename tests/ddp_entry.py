"""torchrun entry for tests/test_distributed.py: runs `pcle` and records every write under a folder.

An audit hook (PEP 578) sees each open-for-writing, rename, replace, mkdir and remove of this
process; those under $PCLE_AUDIT_WATCH are written to $PCLE_AUDIT_DIR/rank<R>.json at exit, so the
test can tell which rank wrote what.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def main() -> None:
    watch = os.path.abspath(os.environ["PCLE_AUDIT_WATCH"])
    log = Path(os.environ["PCLE_AUDIT_DIR"]) / f"rank{os.environ.get('RANK', '0')}.json"
    seen: list[list[str]] = []

    def hook(event: str, args: tuple) -> None:
        path = None
        if event == "open":
            p, mode, flags = args
            if (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                    mode is None and isinstance(flags, int) and flags & WRITE_FLAGS):
                path = p
        elif event in ("os.replace", "os.rename"):
            path = args[1]
        elif event in ("os.mkdir", "os.remove", "os.rmdir"):
            path = args[0]
        if path is None or isinstance(path, int):
            return
        full = os.path.abspath(os.fsdecode(path))
        if full == watch or full.startswith(watch + os.sep):
            seen.append([event, full])

    sys.addaudithook(hook)
    sys.argv = ["pcle", *sys.argv[1:]]
    try:
        from pipeline import main as pcle

        pcle()
    finally:
        log.write_text(json.dumps(seen))


if __name__ == "__main__":
    main()
