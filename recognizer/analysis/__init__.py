"""Commands that read trained runs: evaluate, report, t-SNE, ablation grid, ensembles, predict."""
