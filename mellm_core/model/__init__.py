"""The backbone at work without Ray: the training loop, training runs, adapters, the predictor."""
