import os

from celeriac import shared_task


@shared_task(bind=True)
def tick(self, label: str = "tick") -> str:
    """Append ``label task-id`` to the runs log."""
    with open(os.path.join(os.environ["DJBEAT_DATA"], "runs.txt"), "a") as log:
        log.write(f"{label} {self.request.id}\n")
    return label
