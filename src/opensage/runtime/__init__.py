"""Runs "containers": a program under the `/opt/ml` contract, supervised by a detached shim.

Runtimes differ only in how they wrap the program's command line (`process`: a plain child with
`SAGEMAKER_BASE_DIR` pointing at the job folder; `sandbox`: bubblewrap with the job folder
bind-mounted at the real `/opt/ml`). The shim is shared: it outlives the server, writes the
program's output with timestamps and its exit code to files, so a restarted server re-attaches.
"""

from opensage.runtime.base import ContainerSpec, RunHandle, Runtime, runtime_for
from opensage.runtime.layout import build_job_tree

__all__ = ["ContainerSpec", "RunHandle", "Runtime", "build_job_tree", "runtime_for"]
