"""Runs a command as a parent that never reaps its orphans, as PID 1 of a container
without an init does: it becomes the subreaper of everything the command leaves
behind, waits only for the command itself, writes its exit code, then idles until
SIGTERM. A process orphaned under it and then killed stays a zombie.

Run: `python tests/support/no_reap_parent.py RC_FILE -- ARGV...`."""

from __future__ import annotations

import ctypes
import signal
import subprocess
import sys
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>


def main() -> None:
    rc_file, separator, *argv = sys.argv[1:]
    assert separator == "--" and argv, __doc__
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
    code = subprocess.run(argv, check=False).returncode
    Path(rc_file).write_text(str(code))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
