"""`python -m opensage.algorithms.ntm train`: what `docker run <image> train` runs."""

from opensage.algorithms.ntm.spec import SPEC
from opensage.algorithms.ntm.train import train
from opensage.algorithms.runner import exit_now, main

exit_now(main(SPEC, train))
