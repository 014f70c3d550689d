"""GAN training: configuration (:mod:`.config`), training and held-out data (:mod:`.data`), the loop and its stages
(:mod:`.loop`), data parallelism (:mod:`.distributed`), checkpoints and resume (:mod:`.checkpoint`), the condition
regressor of the ``wgan-gp`` recipe (:mod:`.regressor`) and stopping on a signal (:mod:`.stopping`).

A run lives in one directory (the protocol, shared with :mod:`calogen.gan.jobs`, is :mod:`calogen.gan.runs`);
the command line is ``python -m calogen train`` (:mod:`calogen.cli.train`), and with several processes
``torchrun --nproc_per_node=K -m calogen train ...``.
"""

from calogen.gan.train.checkpoint import CHECKPOINT_VERSION, load_checkpoint
from calogen.gan.train.config import Stage, TrainConfig, check_config, planned_steps, stages
from calogen.gan.train.data import MCSource, ShowerFileSource, data_provenance
from calogen.gan.train.loop import TrainingFailed, train

__all__ = [
    "CHECKPOINT_VERSION",
    "MCSource",
    "ShowerFileSource",
    "Stage",
    "TrainConfig",
    "TrainingFailed",
    "check_config",
    "data_provenance",
    "load_checkpoint",
    "planned_steps",
    "stages",
    "train",
]
