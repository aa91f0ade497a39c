"""The script-mode training toolkit: opensage's `sagemaker-training-toolkit`.

Run inside a training job as `python -m opensage.toolkit train`. It reads the `/opt/ml` tree
(`SAGEMAKER_BASE_DIR`, default `/opt/ml`), runs the user's entry point (`sagemaker_program`)
from the code dir with the hyperparameters as command-line arguments and the `SM_*` variables
in its environment, and records the outcome in `output/success` or `output/failure`.

It imports only the standard library, `opensage.contract`, and boto3 (lazily, to download
`s3://` source code when the platform has not pre-extracted it).
"""

from opensage.toolkit.environment import Environment
from opensage.toolkit.mapping import to_cmd_args, to_env_vars
from opensage.toolkit.trainer import train

__all__ = ["Environment", "to_cmd_args", "to_env_vars", "train"]
