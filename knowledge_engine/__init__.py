"""Stage 1: LLM-generated prompt corpora for every action class."""
