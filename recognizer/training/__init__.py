"""Run plumbing around `recognizer.train`: folder checks and resume (`run_setup`), the best-epoch rule
(`best_checkpoint`), multi-process helpers (`distributed`), the epoch log (`run_log`) and provenance."""
