"""Scoring reviews with onnxruntime alone (never TensorFlow): the Predictor, explanations, files, Ray."""
