"""`python -m opensage.algorithms.object_detection train`: what `docker run <image> train`
runs."""

from opensage.algorithms.object_detection.spec import SPEC
from opensage.algorithms.object_detection.train import train
from opensage.algorithms.runner import exit_now, main

exit_now(main(SPEC, train))
