"""`python -m opensage.algorithms.blazingtext train`: what `docker run <image> train` runs."""

from opensage.algorithms.blazingtext.spec import SPEC
from opensage.algorithms.blazingtext.train import train
from opensage.algorithms.runner import exit_now, main

exit_now(main(SPEC, train))
