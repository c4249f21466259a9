"""The method: skeleton encoder, text side (encoder, corpus, text bank, prompt learner), interaction, losses, model."""
