"""`python -m opensage.algorithms.ipinsights train`: what `docker run <ipinsights image> train`
runs."""

from opensage.algorithms.ipinsights.spec import SPEC
from opensage.algorithms.ipinsights.train import train
from opensage.algorithms.runner import exit_now, main

exit_now(main(SPEC, train))
