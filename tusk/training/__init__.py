"""Helpers of the trainer (:mod:`tusk.train`): data order, equivariance pairs, the two
optimisation steps, checkpoints, the op check, metrics and pictures."""
