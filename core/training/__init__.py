"""Training a model on the reviews: batches, fit, checkpoints, resume, the training process."""
