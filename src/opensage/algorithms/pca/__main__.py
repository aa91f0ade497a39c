"""`python -m opensage.algorithms.pca train`: what `docker run <image> train` runs."""

from opensage.algorithms.pca.spec import SPEC
from opensage.algorithms.pca.train import train
from opensage.algorithms.runner import exit_now, main

exit_now(main(SPEC, train))
