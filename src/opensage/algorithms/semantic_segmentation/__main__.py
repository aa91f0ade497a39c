"""`python -m opensage.algorithms.semantic_segmentation train`: what `docker run <image> train`
runs. torch is imported only once the job's configuration has been checked, so a bad one fails
fast."""

from opensage.algorithms.env import TrainingEnv
from opensage.algorithms.runner import exit_now, main
from opensage.algorithms.semantic_segmentation.spec import SPEC


def train(env: TrainingEnv) -> None:
    from opensage.algorithms.semantic_segmentation.train import train as run

    run(env)


exit_now(main(SPEC, train))
