"""``faceeditor batch ... --scheduler ADDRESS``: the batch's photos as tasks on a Dask distributed cluster.

Each photo is one :func:`faceeditor.commands.batch.process_one` task, submitted through
``distributed.Client(ADDRESS)``; results come back as they complete and go into the same ledger,
outputs and report as the local path (:mod:`faceeditor.commands.batch`). The workers need
FaceEditor installed and the input and output folders at the same paths (a shared file system):
tasks carry absolute paths. This module is imported only when ``--scheduler`` is given.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

from distributed import Client, Future, as_completed

from faceeditor.commands.batch import process_one
from faceeditor.core.errors import FaceEditorError

CONNECT_TIMEOUT_S = 30


def _absolute(task: tuple) -> tuple:
    """The task with absolute input and output paths (a worker's current folder is not ours)."""
    src, dst, *rest = task
    return (os.path.abspath(src), os.path.abspath(dst), *rest)


def connect(address: str) -> Client:
    """A client of the scheduler at ``address``; FaceEditorError when it cannot be reached."""
    try:
        return Client(address, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError, ValueError) as exc:
        raise FaceEditorError(f"--scheduler {address}: cannot reach the Dask scheduler ({exc})") from None


def execute_on_cluster(tasks: list[tuple], address: str) -> Iterator[tuple[str, str, str, float]]:
    """Yield ``(src, status, message, ms)`` per task as the cluster finishes them (``src`` as given
    in the task). A task lost with its worker is reported failed, never dropped."""
    if not tasks:
        return
    client = connect(address)
    run_id = secrets.token_hex(4)
    futures: dict[Future, str] = {}
    try:
        for i, task in enumerate(tasks):
            fut = client.submit(process_one, _absolute(task), key=f"faceeditor-batch-{run_id}-{i}", pure=False)
            futures[fut] = task[0]
        for fut in as_completed(list(futures)):
            yield _result(fut, futures[fut])
    finally:
        client.cancel(list(futures))
        client.close()


def _result(fut: Future, src: str) -> tuple[str, str, str, float]:
    if fut.status == "finished":
        _, status, message, ms = fut.result()
        return src, status, message, ms
    if fut.status == "error":
        exc = fut.exception()
        return src, "failed", f"cluster error: {type(exc).__name__}: {exc}", 0.0
    return src, "failed", f"cluster error: task {fut.status}", 0.0
