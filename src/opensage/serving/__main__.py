"""`python -m opensage.serving serve`: what `docker run <image> serve` runs."""

from opensage.serving.server import exit_now, main

exit_now(main())
