"""TUSK's trainer, in one place: the loop (:mod:`.trainer`), data order (:mod:`.data`),
equivariance pairs (:mod:`.pairs`), the two optimisation steps (:mod:`.step`), checkpoints
(:mod:`.checkpoint`), the op check (:mod:`.check_ops`), metrics, evaluation and pictures.
``tusk train`` (:mod:`tusk.commands.train`) only parses the command line and calls this.

    from tusk.config import load_config
    from tusk.training import Trainer
    metrics = Trainer(load_config("quickstart"), "runs/quickstart").run()
"""
from .trainer import Trainer, build_model, load_run, train

__all__ = ["Trainer", "build_model", "load_run", "train"]
