"""`python -m opensage.serving serve`: what `docker run <image> serve` runs."""

from opensage.serving.server import main
from opensage.serving.workers import exit_now

exit_now(main())
