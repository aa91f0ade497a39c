"""`python -m opensage.algorithms.xgboost train`: what `docker run <image> train` runs."""

import os
import sys

from opensage.algorithms.xgboost.train import main

code = main()
# Everything is written and flushed; skip the interpreter teardown (unloading xgboost and
# scikit-learn takes ~0.3 s, a measurable share of a small job: benchmarks/RESULTS.md).
sys.stdout.flush()
sys.stderr.flush()
os._exit(code)
