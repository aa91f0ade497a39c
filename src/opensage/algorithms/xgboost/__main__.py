"""`python -m opensage.algorithms.xgboost train`: what `docker run <image> train` runs."""

import sys

from opensage.algorithms.xgboost.train import main

sys.exit(main())
