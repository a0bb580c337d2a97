"""Built-in metric plugins: ACC, UAR and UF1 (the paper's eq. 1-3) and per-AU F1."""
