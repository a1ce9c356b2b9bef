"""Waiting for something to become true, with a deadline that fails loudly.

Tests never sleep for a fixed time to let something happen: they poll for
the state they need, and a deadline that passes raises an error naming what
was awaited, so a stuck wait reads as a failure and not as a hang."""

import os
import time


def wait_until(predicate, what, timeout=10.0, interval=0.02):
    """Poll predicate() until it returns something true and return that;
    raise TimeoutError naming `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def wait_pid_gone(pid, what=None, timeout=10.0):
    """Wait until process pid (not necessarily our child) has exited."""
    wait_until(lambda: not os.path.exists(f"/proc/{pid}"),
               what or f"process {pid} to exit", timeout)
