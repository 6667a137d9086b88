"""Fault points for the fault-injection tests.

``CHATSYS_FAULT=<name>`` makes the process kill itself with SIGKILL — exactly ``kill -9`` — when it
reaches the named point, so a test can crash it in the narrow windows that matter (after the
broker confirmed but before the commit; after the commit but before the ack).  Without the
variable a fault point costs one dictionary lookup.
"""

import logging
import os
import signal

log = logging.getLogger(__name__)

RELAY_AFTER_CONFIRM = "relay.after_confirm"
RELAY_AFTER_CLAIM = "relay.after_claim"
WORKER_AFTER_COMMIT = "worker.after_commit"
PURGER_AFTER_BATCH = "purger.after_batch"


def fault_point(name: str) -> None:
    if os.environ.get("CHATSYS_FAULT") == name:
        log.warning("fault point %s reached: killing this process with SIGKILL", name)
        os.kill(os.getpid(), signal.SIGKILL)
