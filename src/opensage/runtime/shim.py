"""The job shim: `python -m opensage.runtime.shim RUN_DIR -- ARGV...`.

Started detached from the server (its own session), it runs ARGV in a new process group and
writes, under RUN_DIR: `child.pid`, `output.log` (one `<epoch-ms> <line>` per output line, control
characters rendered as `#ooo` the way CloudWatch shows SageMaker logs, so a tab reads `#011`),
and finally `exit_code`. Because all of that lives in files, the server can die and re-attach.

With `--tether PID:START`, the program is stopped when that process (the server) is gone:
endpoint instances serve only while their server runs, even when it is killed.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")


def escape_control(text: str) -> str:
    r"""Render control characters as rsyslog does: `\t` → `#011`."""
    return _CONTROL.sub(lambda m: f"#{ord(m.group()):03o}", text)


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def run(run_dir: Path, argv: list[str], tether: str | None = None) -> int:
    log_path = run_dir / "output.log"
    try:
        child = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        with log_path.open("a", encoding="utf-8") as log:
            log.write(f"{int(time.time() * 1000)} {escape_control(str(exc))}\n")
        write_atomic(run_dir / "exit_code", "127")
        return 127
    write_atomic(run_dir / "child.pid", str(child.pid))
    # The server signals the child's process group directly; the shim itself ignores SIGTERM so
    # that it keeps draining output until the child really exits.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if tether is not None:
        threading.Thread(target=_watch, args=(tether, child.pid), daemon=True).start()
    assert child.stdout is not None
    with child.stdout, log_path.open("a", encoding="utf-8") as log:
        for raw in child.stdout:
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            log.write(f"{int(time.time() * 1000)} {escape_control(line)}\n")
            log.flush()
    code = child.wait()
    write_atomic(run_dir / "exit_code", str(code if code >= 0 else 128 - code))
    return code


def _watch(tether: str, child: int, grace: float = 10.0) -> None:
    """Stop the child's process group once the tethering process has gone."""
    pid, _, started = tether.partition(":")
    while (stat := process_stat(int(pid))) is not None and stat[0] != "Z" and stat[1] == started:
        time.sleep(0.5)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(child, sig)
        except ProcessLookupError:
            return
        time.sleep(grace)


def tether_of(pid: int) -> str:
    """`PID:START` naming a process unambiguously (pids are recycled, start times are not)."""
    stat = process_stat(pid)
    return f"{pid}:{stat[1] if stat else ''}"


def process_stat(pid: int) -> tuple[str, str] | None:
    """(state letter, start time in clock ticks since boot) from /proc/<pid>/stat."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], fields[19]


def detach(run_dir: Path) -> None:
    """Fork the shim away from its starter, so it is nobody's child but init's.

    The intermediate process records the shim's pid and start time before it exits, so the
    starter finds both files as soon as it has waited for it.
    """
    pid = os.fork()
    if pid:
        stat = process_stat(pid)
        write_atomic(run_dir / "shim.started", stat[1] if stat else "")
        write_atomic(run_dir / "shim.pid", str(pid))
        os._exit(0)
    os.setsid()


def main() -> None:
    args = sys.argv[1:]
    detached = args[:1] == ["--detach"]
    args = args[1:] if detached else args
    tether = None
    if args[:1] == ["--tether"] and len(args) > 1:
        tether, args = args[1], args[2:]
    if len(args) < 3 or args[1] != "--":
        sys.exit(
            "usage: python -m opensage.runtime.shim [--detach] [--tether PID:START] "
            "RUN_DIR -- ARGV..."
        )
    if detached:
        detach(Path(args[0]))
    run(Path(args[0]), args[2:], tether)


if __name__ == "__main__":
    main()
