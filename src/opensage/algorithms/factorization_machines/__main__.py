"""`python -m opensage.algorithms.factorization_machines train`: what `docker run <image> train`
runs."""

from opensage.algorithms.factorization_machines.spec import SPEC
from opensage.algorithms.factorization_machines.train import train
from opensage.algorithms.runner import exit_now, main

exit_now(main(SPEC, train))
