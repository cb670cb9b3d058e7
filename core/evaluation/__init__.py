"""How good a model is and how fast: metrics, evaluation, comparisons, the int8 copy, benchmarks."""
