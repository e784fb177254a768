"""Remote control at Celery's path (``celery.app.control``): ``app.control`` and
``app.control.inspect()`` are these classes."""

from ..control import Control, Inspect, flatten_reply

__all__ = ["Control", "Inspect", "flatten_reply"]
