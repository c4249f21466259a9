"""Set before a benchmark imports the project: the repository on `sys.path` (so `python -m bench.X` runs from
any folder) and the offline switches (nothing is fetched from a model hub at run time; the tokenizer's own
threads would compete with the two torch threads being measured)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
for key, value in (("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1"), ("TOKENIZERS_PARALLELISM", "false")):
    os.environ.setdefault(key, value)
