"""`python -m knowledge_engine ...`: the same commands as `pcle prompts ...`."""

from knowledge_engine.cli import app

app(prog_name="python -m knowledge_engine")
