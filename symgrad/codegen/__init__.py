"""Code generation: graph -> NumPy source (``emit``), source -> functions (``load``)."""
