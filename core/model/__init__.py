"""The Keras model from a config, its weights read without TensorFlow, and the book's loop in NumPy."""
