"""Fault injection for the crash-safety tests: die exactly where a real crash could.

`AGENT_CL_FAULT=<point>` makes the process SIGKILL itself when it reaches that point, so no
`finally`, `atexit` or signal handler runs: the worst case a power cut or the OOM killer gives.
Points are stage boundaries of the sleep job (`after_claim`, `after_train`, ...), `publish_copy`
(inside the registry, after the files are copied and before the rename), or `train_step:N`
(after optimizer step N, before its checkpoint would be written if N is not a checkpoint step,
after it if it is).
"""

from __future__ import annotations

import os
import signal

FAULT_ENV = "AGENT_CL_FAULT"


def fault_point(name: str) -> None:
    """SIGKILL this process if AGENT_CL_FAULT names `name`; a no-op otherwise."""
    if os.environ.get(FAULT_ENV, "") == name:
        os.kill(os.getpid(), signal.SIGKILL)
