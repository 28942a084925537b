"""A notebook client whose kernel channels ask again: how the course's tools execute notebooks.

nbclient now and then waits forever (or a whole cell timeout) for a reply the kernel
has already sent, after a cell that shows widgets (jupyter/nbclient#312; seen here in
03 and 09 on a busy machine): one long poll misses it, a fresh poll finds it. Used by
`tasks.py site` and by the test that runs every learner copy.
"""

from __future__ import annotations

import time
from queue import Empty

from nbclient import NotebookClient


def ask_again(channel: object, every: float = 2.0) -> None:
    """Make a kernel channel's get_msg poll again every `every` seconds, up to its timeout."""
    get_msg = channel.get_msg

    async def get_msg_asking_again(timeout: float | None = None) -> dict:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = every if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                return await get_msg(timeout=min(every, left))
            except Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    raise

    channel.get_msg = get_msg_asking_again


class AskingClient(NotebookClient):
    """nbclient's NotebookClient, its shell and iopub channels asking again (ask_again)."""

    async def async_start_new_kernel_client(self):
        client = await super().async_start_new_kernel_client()
        ask_again(client.shell_channel)
        ask_again(client.iopub_channel)
        return client
