"""`python -m opensage.algorithms.randomcutforest train`: what `docker run <image> train` runs."""

from opensage.algorithms.randomcutforest.spec import SPEC
from opensage.algorithms.randomcutforest.train import train
from opensage.algorithms.runner import exit_now, main

exit_now(main(SPEC, train))
