"""Unseen actions: zero-shot (ZSL), generalised zero-shot (GZSL) and base-to-new evaluation of a run."""
