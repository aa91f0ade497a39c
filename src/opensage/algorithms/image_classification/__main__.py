"""`python -m opensage.algorithms.image_classification train`: what `docker run <image> train`
runs."""

from opensage.algorithms.image_classification.spec import SPEC
from opensage.algorithms.image_classification.train import train
from opensage.algorithms.runner import exit_now, main

exit_now(main(SPEC, train))
