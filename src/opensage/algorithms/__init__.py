"""The built-in algorithms: programs that run inside a training job under the container contract.

They read `/opt/ml` through `opensage.contract` and never import the platform.
"""
