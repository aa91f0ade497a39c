"""`python -m opensage.algorithms.linear_learner train`: what `docker run <image> train` runs."""

from opensage.algorithms.linear_learner.spec import SPEC
from opensage.algorithms.linear_learner.train import train
from opensage.algorithms.runner import exit_now, main

exit_now(main(SPEC, train))
