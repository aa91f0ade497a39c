"""`python -m opensage.algorithms.deepar train`: what `docker run <image> train` runs."""

from opensage.algorithms.deepar.spec import SPEC
from opensage.algorithms.deepar.train import train
from opensage.algorithms.runner import exit_now, main

exit_now(main(SPEC, train))
