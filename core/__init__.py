"""The recurrent IMDB sentiment classifier of DLwP 6.2: data, models, training, ONNX export and prediction."""
