"""Execution pools behind one interface (:class:`~.base.Pool`): solo, threads, asyncio, and
prefork in two kinds: children that consume from the broker themselves
(:class:`~.consuming.ConsumingPool`, where any process can settle a delivery) and children
fed by their parent (:class:`~.fed.FedPool`, where leases live in one process)."""

from .aio import AsyncioPool
from .base import Job, Pool, SoloPool
from .consuming import ConsumingPool
from .fed import FedPool
from .threads import ThreadPool

__all__ = ["AsyncioPool", "ConsumingPool", "FedPool", "Job", "Pool", "SoloPool", "ThreadPool"]
