"""The training program of a built-in: `python -m opensage.algorithms.<name> train`.

Steps, cheapest first so a misconfigured job fails fast: validate the hyperparameters and the
channels against the algorithm's spec, then call its `train(env)` (which imports the ML
libraries it needs). Every failure leaves `/opt/ml/output/failure`: `ClientError: ...` for what
the user can fix, `AlgorithmError: ...` for anything else, and the process exits 1.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from opensage.algorithms.base import Algorithm, HyperparameterError, UserError
from opensage.algorithms.env import TrainingEnv
from opensage.contract import FAILURE_REASON_LIMIT, MLPaths

Train = Callable[[TrainingEnv], None]


def main(algorithm: Algorithm, train: Train, argv: Sequence[str] | None = None) -> int:
    """Entry point: the one argument is `train`, as in `docker run <image> train`."""
    if not started(algorithm.name, argv):
        return 2
    return run(algorithm, train, MLPaths.from_env())


def started(name: str, argv: Sequence[str] | None = None) -> bool:
    """Check the command line (`train`, else print the usage) and set up logging to stderr."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args != ["train"]:
        print(f"usage: python -m opensage.algorithms.{name} train", file=sys.stderr)
        return False
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="[%(asctime)s %(levelname)s] %(message)s"
    )
    return True


def run(algorithm: Algorithm, train: Train, paths: MLPaths) -> int:
    """Train once under `paths`; return the exit code after writing any failure reason."""

    def work() -> None:
        env = TrainingEnv.load(paths, algorithm)
        _check_hosts(algorithm, env)
        train(env)

    return guarded(paths, work)


def guarded(paths: MLPaths, work: Callable[[], None]) -> int:
    """Run `work`; record a failure reason (`ClientError` for what the user can fix,
    `AlgorithmError` with where it was raised for anything else) or the success marker, and
    return the exit code."""
    try:
        work()
    except (UserError, HyperparameterError) as exc:
        return fail(paths, f"ClientError: {exc}")
    except Exception as exc:  # the job must always say why it failed
        traceback.print_exc(file=sys.stderr)
        return fail(paths, f"AlgorithmError: {summary(exc)}")
    paths.output.mkdir(parents=True, exist_ok=True)
    paths.success_file.touch()
    return 0


def exit_now(code: int) -> None:
    """Leave without the interpreter's teardown: everything is written and flushed, and
    unloading numpy, scipy and friends costs a measurable share of a small job."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _check_hosts(algorithm: Algorithm, env: TrainingEnv) -> None:
    limit = algorithm.max_instances
    if limit is not None and len(env.hosts) > limit:
        raise UserError(
            f"Distributed {algorithm.title} training over {len(env.hosts)} instances is not "
            f"supported yet; set InstanceCount to {limit}."
        )


def summary(exc: BaseException) -> str:
    """`ValueError: boom (at data.py:42 in _read_csv)`: the error and where it was raised."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return f"{type(exc).__name__}: {exc}"
    last = frames[-1]
    where = f"{Path(last.filename).name}:{last.lineno} in {last.name}"
    return f"{type(exc).__name__}: {exc} (at {where})"


def fail(paths: MLPaths, reason: str) -> int:
    """Record the first failure reason (truncated as SageMaker does) and echo it to stderr."""
    text = " ".join(reason.split())[:FAILURE_REASON_LIMIT]
    print(text, file=sys.stderr, flush=True)
    paths.write_failure(text)
    return 1
