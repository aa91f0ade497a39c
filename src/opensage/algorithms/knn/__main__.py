"""`python -m opensage.algorithms.knn train`: what `docker run <image> train` runs."""

from opensage.algorithms.knn.spec import SPEC
from opensage.algorithms.knn.train import train
from opensage.algorithms.runner import exit_now, main

exit_now(main(SPEC, train))
