"""Errors of the training toolkit, and the failure text each one leaves in `output/failure`.

As in the SageMaker training toolkit, a `ClientError` is the user's fault (a failing script, a
bad requirements file, a missing entry point): its text goes to the failure file as is. Anything
else is a framework error, reported with its traceback by `trainer`.
"""

from __future__ import annotations


class ClientError(Exception):
    """An error caused by the user's code or configuration, not by the toolkit."""

    def failure_text(self) -> str:
        return f"{type(self).__name__}: {self}"


class CalledProcessError(ClientError):
    """A command run for the user (their script, a pip install) exited non-zero.

    Its text is the toolkit's:
    `<Class>:\\nExitCode <n>\\nErrorMessage "<stderr>"\\nCommand "<cmd>"`.
    """

    def __init__(self, cmd: str, return_code: int, output: str = "") -> None:
        super().__init__(cmd, return_code, output)
        self.cmd = cmd
        self.return_code = return_code
        self.output = output

    def __str__(self) -> str:
        name = type(self).__name__
        return (
            f"{name}:\nExitCode {self.return_code}\n"
            f'ErrorMessage "{self.output}"\nCommand "{self.cmd}"'
        ).strip()

    def failure_text(self) -> str:
        return str(self)


class ExecuteUserScriptError(CalledProcessError):
    """The user's entry point exited non-zero."""


class InstallRequirementsError(CalledProcessError):
    """`pip install -r requirements.txt` failed."""


class InstallModuleError(CalledProcessError):
    """`pip install .` of the user's package failed."""


class StopRequested(Exception):
    """The toolkit got SIGTERM/SIGINT while no user process was running."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
