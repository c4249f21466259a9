"""Stage 2: skeleton-text contrastive recognizer (PCKE / PCLE)."""
