"""The spam filter's content classifier: tokens of a message, a Bayesian model over them, and its store."""
