"""`python -m opensage.algorithms.object2vec train`: what `docker run <image> train` runs."""

from opensage.algorithms.object2vec.spec import SPEC
from opensage.algorithms.object2vec.train import train
from opensage.algorithms.runner import exit_now, main

exit_now(main(SPEC, train))
