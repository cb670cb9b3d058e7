"""Keras models for the tests that compare hand-written NumPy or TensorFlow loops with Keras's own layers: the
project's build_model with seeded weights drawn larger than Keras's initializers, so that gates and tanh work away
from their linear middle and a pad chain's state is far from zero."""

import numpy as np

from core.config import ModelConfig, RecurrentLayerConfig
from core.model.build import build_model


def random_model(config: ModelConfig, seed: int = 3, scale: float = 0.6):
    """build_model(config) with every weight drawn from normal(0, scale), seeded."""
    model = build_model(config)
    generator = np.random.default_rng(seed)
    model.set_weights([generator.normal(0, scale, weight.shape).astype(np.float32) for weight in model.get_weights()])
    return model


def small_config(layers, vocabulary_size: int, sequence_length: int, embedding_dim: int, **settings) -> ModelConfig:
    """A small ModelConfig: layers is (cell, units) pairs, settings any other ModelConfig field."""
    return ModelConfig(
        vocabulary_size=vocabulary_size,
        sequence_length=sequence_length,
        embedding_dim=embedding_dim,
        recurrent_layers=tuple(RecurrentLayerConfig(cell=cell, units=units) for cell, units in layers),
        **settings,
    )
