"""`python -m opensage.algorithms.kmeans train`: what `docker run <kmeans image> train` runs."""

from opensage.algorithms.kmeans.spec import SPEC
from opensage.algorithms.kmeans.train import train
from opensage.algorithms.runner import exit_now, main

exit_now(main(SPEC, train))
