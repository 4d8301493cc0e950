"""A worker that records when it runs for which user and can be held at a gate (local executor tests)."""

from __future__ import annotations

import os
import threading
import time

from memscope.engine import Context, Worker, WorkerParams, worker

EVENTS: list[tuple[str, str]] = []  # (user_id, "start" | "end"), in the order they happened
EVENTS_LOCK = threading.Lock()
GATE = threading.Event()  # jobs wait here until a test opens it

PROBE_OPERATION = """\
name: jobs_probe_op
description: Record start and end for the user, held at the probe gate in between.
mode: queued
inputs: [user_id, {agent_id: null}]
steps:
  - jobs_probe: {}
"""


def record(user_id: str, what: str) -> None:
    """Append an event."""
    with EVENTS_LOCK:
        EVENTS.append((user_id, what))


def events_of(user_id: str) -> list[str]:
    """The events of one user, in order."""
    with EVENTS_LOCK:
        return [what for user, what in EVENTS if user == user_id]


@worker("jobs_probe")
class Probe(Worker):
    """Record the start, wait at the gate (at most `hold_s`), record the end."""

    reads = ("user_id",)
    writes = ("probe",)

    class Params(WorkerParams):
        hold_s: float = 30.0

    def run(self, ctx: Context) -> None:
        record(ctx["user_id"], "start")
        GATE.wait(self.params.hold_s)
        time.sleep(0.01)
        record(ctx["user_id"], "end")
        ctx["probe"] = [ctx["user_id"]]


CRASH_OPERATION = """\
name: jobs_crash_op
description: Kill the worker process running it while the flag file exists (a poison job).
mode: queued
inputs: [user_id, {agent_id: null}]
steps:
  - jobs_crash: {flag: "FLAG"}
"""


@worker("jobs_crash")
class Crash(Worker):
    """Exit the process at once (as a segfault or the OOM killer would) while `flag` exists."""

    reads = ("user_id",)
    writes = ("crash",)

    class Params(WorkerParams):
        flag: str

    def run(self, ctx: Context) -> None:
        if os.path.exists(self.params.flag):
            os._exit(3)
        ctx["crash"] = [ctx["user_id"]]


EXIT_OPERATION = """\
name: jobs_exit_op
description: Raise SystemExit in the job's thread (a worker that crashes its thread).
mode: queued
inputs: [user_id, {agent_id: null}]
steps:
  - jobs_exit: {}
"""


@worker("jobs_exit")
class Exit(Worker):
    """Raise SystemExit, which no `except Exception` catches."""

    reads = ("user_id",)
    writes = ("exit",)

    class Params(WorkerParams):
        pass

    def run(self, ctx: Context) -> None:
        raise SystemExit(f"worker crashed the job thread of {ctx['user_id']}")
