"""The project's own remote-control commands (``celeriac.worker.control``)."""

from typing import Any

from celeriac.worker.control import control_command, inspect_command


@inspect_command()
def queue_names(state: Any) -> dict[str, Any]:
    return {"queues": list(state.worker.queues)}


@control_command(args=[("n", int)], signature="[N=1]")
def bump(state: Any, n: int = 1) -> dict[str, Any]:
    return {"ok": f"bumped by {n}"}
