"""`image_uris.retrieve`, shaped like the SageMaker SDK's, for the built-in algorithms that have
no estimator class of their own (BlazingText is used through `Estimator` with
`image_uris.retrieve("blazingtext", region)`, as in the SDK).

The URIs are the SDK's (`<account>.dkr.ecr.<region>.amazonaws.com/<repository>:<version>`);
opensage recognises a built-in image by its repository alone, so any region works.
"""

from __future__ import annotations

from typing import Final

from opensage.sdk.algorithms import ACCOUNT

REPOSITORIES: Final = {"blazingtext": "blazingtext", "forecasting-deepar": "forecasting-deepar"}
"""SDK framework name -> image repository, for the built-ins retrieved by name."""


def retrieve(framework: str, region: str | None = None, version: str | None = None) -> str:
    """The image URI of a built-in algorithm; ValueError for a framework opensage lacks here."""
    repository = REPOSITORIES.get(framework)
    if repository is None:
        known = ", ".join(sorted(REPOSITORIES))
        raise ValueError(f"Unsupported framework: {framework}; image_uris here knows {known}.")
    return f"{ACCOUNT}.dkr.ecr.{region or 'us-east-1'}.amazonaws.com/{repository}:{version or '1'}"
