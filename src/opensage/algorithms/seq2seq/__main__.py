"""`python -m opensage.algorithms.seq2seq train`: what `docker run <image> train` runs."""

from opensage.algorithms.runner import exit_now, main
from opensage.algorithms.seq2seq.spec import SPEC
from opensage.algorithms.seq2seq.train import train

exit_now(main(SPEC, train))
