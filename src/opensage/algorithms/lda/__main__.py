"""`python -m opensage.algorithms.lda train`: what `docker run <image> train` runs."""

from opensage.algorithms.lda.spec import SPEC
from opensage.algorithms.lda.train import train
from opensage.algorithms.runner import exit_now, main

exit_now(main(SPEC, train))
