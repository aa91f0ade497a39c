"""`train`: the toolkit's whole run, from the config files to the success or failure file."""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback
from collections.abc import Mapping

from opensage.contract import MLPaths
from opensage.toolkit import entry_point, files
from opensage.toolkit.environment import MPI_ENABLED_PARAM, Environment
from opensage.toolkit.errors import ClientError, ExecuteUserScriptError, StopRequested
from opensage.toolkit.process import Supervisor

SUCCESS_CODE = 0
FAILURE_CODE = 1

logger = logging.getLogger("opensage.toolkit")


def configure_logging(level: object = logging.INFO) -> None:
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(name)-16s %(levelname)-8s %(message)s")
        )
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(
        level if isinstance(level, int) and not isinstance(level, bool) else logging.INFO
    )


def train(environ: Mapping[str, str] | None = None) -> int:
    """Run the user's entry point under the `/opt/ml` tree; return the exit code."""
    env_map = dict(os.environ if environ is None else environ)
    paths = MLPaths.from_env(env_map)
    supervisor = Supervisor()
    supervisor.install()
    configure_logging()
    try:
        try:
            _train(paths, env_map, supervisor)
        except ClientError as exc:
            text = exc.failure_text()
            paths.write_failure(text)
            logger.error("Reporting training FAILURE")
            logger.error(text)
            return FAILURE_CODE
        except StopRequested:
            raise
        except Exception as exc:
            text = f"Framework Error: \n{traceback.format_exc()}\n{exc}"
            paths.write_failure(text)
            logger.error("Reporting training FAILURE")
            logger.error(text)
            return FAILURE_CODE
        logger.info("Reporting training SUCCESS")
        files.write_success_file(paths.success_file)
        return SUCCESS_CODE
    except StopRequested as stop:
        logger.warning("Stopped by signal %d", stop.signum)
        return 128 + stop.signum


def _train(paths: MLPaths, environ: Mapping[str, str], supervisor: Supervisor) -> None:
    env = Environment.from_paths(paths, environ)
    configure_logging(env.log_level)
    name = env.user_entry_point
    if not name:
        raise ClientError(
            "No user entry point: set the sagemaker_program hyperparameter (the SDK's "
            "entry_point) or the SAGEMAKER_PROGRAM environment variable."
        )
    if env.framework_module:
        logger.info(
            "SAGEMAKER_TRAINING_MODULE=%s is not imported; running the entry point directly",
            env.framework_module,
        )
    if env.additional_framework_parameters.get(MPI_ENABLED_PARAM):
        logger.warning("MPI is not supported; running the entry point as one process")

    code_dir = paths.code
    logger.info("User code: %s", files.prepare_code(env.module_dir, code_dir, env.environ))
    child_env = entry_point.child_environment(env)
    kind = entry_point.install(code_dir, name, supervisor, child_env)
    cmd = entry_point.command(kind, name, env.to_cmd_args())
    logger.info(
        "Invoking user script\n\nTraining Env:\n\n%s\n\n"
        "Invoking script with the following command:\n\n%s\n",
        json.dumps(env.training_env(), indent=4, sort_keys=True, default=str),
        " ".join(cmd),
    )
    for handler in logger.handlers:
        handler.flush()
    supervisor.run(cmd, cwd=code_dir, env=child_env, error_class=ExecuteUserScriptError)
