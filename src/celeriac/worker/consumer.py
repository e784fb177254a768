"""The consumer: brings messages from the broker to the pool and settles them.

One message's path: ``fetch`` (leased, acknowledgements sent along) -> :meth:`Consumer.
_receive` (decode, reject bad input to the dead-letter queue, skip revoked, expired and
finished ids) -> held while its rate limit says so -> pool -> execution ->
:meth:`Consumer.on_done` (ack, release or dead-letter, through the worker's
:class:`~celeriac.worker.settle.Settlements`). The heartbeat renews the leases of every
message held (:meth:`Consumer.held`).
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from .. import signals, states, workflow
from .._state import Context
from ..brokers.base import Delivery, dead_letter_queue
from ..events.event import task_fields
from ..exceptions import InvalidTaskError, OperationalError, WorkerLostError
from ..execution import ACK, DEAD_LETTER, REQUEUE, Outcome, make_request
from ..message import Message, shown_name
from ..utils import safe_repr, safe_str
from ..utils.urls import safe_url
from .pools.base import Job, Pool

if TYPE_CHECKING:
    from .worker import Worker

logger = logging.getLogger("celeriac.worker")
#: how many messages of a fetch are decoded before the first of them start
RECEIVE_SLICE = 256


class Consumer:
    """Consumes the worker's queues into its pool, within the prefetch window of
    ``concurrency * prefetch_multiplier`` messages, and settles what the pool finishes.
    A prefork child has one of its own (concurrency 1)."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.app = worker.app
        self.max_inflight = worker.concurrency * worker.prefetch_multiplier
        self.fetch_batch = max(1, self.max_inflight // 2)
        # jobs waiting for their rate limit: (monotonic time to try again, job id, job); only
        # the consumer thread touches it. They stay in flight (leases renewed) but do not take
        # prefetch room, so other tasks keep running.
        self._held: list[tuple[float, int, Job]] = []
        self._streaming = False  # the broker streams messages in as they are acknowledged
        self.max_held = self.max_inflight * 10
        self._inflight: dict[int, Job] = {}
        self.lock = threading.Lock()  # guards the in-flight jobs
        self.room = threading.Event()  # set when the consumer should look again
        self._next_job_id = 0
        self._failures = 0  # fetches failed in a row
        self._rotation = 0

    # -- what others may ask ----------------------------------------------------------------

    def jobs(self) -> list[Job]:
        """The jobs received and not settled yet (running, waiting in the pool or held)."""
        with self.lock:
            return list(self._inflight.values())

    def held(self) -> list[Delivery]:
        """The deliveries whose leases must be renewed: every job not acknowledged yet."""
        with self.lock:
            return [j.delivery for j in self._inflight.values() if not j.acked]

    def resize(self, max_inflight: int) -> None:
        """A new prefetch window (the pool was resized)."""
        self.max_inflight = max_inflight
        self.fetch_batch = max(1, max_inflight // 2)
        self.max_held = max_inflight * 10
        self.wake()

    def wake(self) -> None:
        """Make the consumer look again now (to stop, or because room was freed)."""
        self.room.set()

    def give_back(self, pool: Pool) -> None:
        """Give back every job that has not started: those held for their rate limit and
        those waiting in ``pool`` (warm shutdown)."""
        held, self._held = [entry[2] for entry in self._held], []
        self.release(held + pool.cancel_pending())

    # -- consuming --------------------------------------------------------------------------

    def run(self) -> None:
        try:
            self._consume()
        finally:
            if self._streaming:  # the broker object may serve others after this worker
                self.worker.broker.prefetch(0)  # type: ignore[attr-defined]
                self._streaming = False

    def _consume(self) -> None:
        assert self.worker.pool is not None
        while not self.worker.stopping:
            self.worker.pool.poll()
            until_held = self._admit_held()
            with self.lock:
                room = self._room_left()
            # Fetch in batches: while the pool still has work waiting, wait until half the
            # prefetch window is free, so one broker round trip brings several messages.
            refill = room >= self.fetch_batch or not self.worker.pool.has_pending()
            if room <= 0 or not refill or len(self._held) >= self.max_held:
                self.room.wait(min(0.5, until_held))
                self.room.clear()
                continue
            timeout = 0.0 if self.worker.pool.busy() and self.worker.pool_name == "solo" else 1.0
            if self._fetch_and_receive(room, min(timeout, until_held)) is False:
                return

    def _fetch_and_receive(self, room: int, timeout: float) -> bool | None:
        """Fetch up to ``room`` messages (waiting up to ``timeout``), sending the queued
        acknowledgements along, and receive them. True if any came; None if the broker
        failed (after a pause that grows with each failure in a row); False when, in burst
        mode, nothing is left to do."""
        if self.worker.burst:
            timeout = min(timeout, 0.05)
        acks = self.worker.settlements.take_acks()  # those gathered since the last fetch go with it
        try:
            deliveries = self._fetch(room, timeout, acks)
        except Exception as exc:
            self.worker.settlements.keep_acks(acks)
            self._failures += 1
            if not isinstance(exc, OperationalError):  # a bug: say so, and keep consuming
                logger.exception("fetching from %s failed", safe_url(self.worker.broker.url))
            elif self._failures == 1:
                logger.warning(
                    "broker %s unavailable (%s); reconnecting",
                    safe_url(self.worker.broker.url),
                    exc,
                )
            self.worker.sleep(min(2.0 ** (self._failures - 1), 32.0))
            return None
        if self._failures:
            logger.warning("broker connection restored after %d attempt(s)", self._failures)
            self._failures = 0
        if deliveries:
            if self.worker.keeper is not None:
                self.worker.keeper.add(deliveries)
            self._receive(deliveries)
            return True
        return False if self.worker.burst and self._drained() else None

    def supervise(self) -> None:
        """The parent of consuming children: settle what dead children left behind (their
        acknowledgements are queued here) until asked to stop, or, in burst mode, until
        every child has found its queues empty."""
        assert self.worker.pool is not None
        while not self.worker.stopping and not self.worker.pool.finished():
            self.room.wait(0.5)
            self.room.clear()
            self.worker.settlements.flush_acks()

    def run_in_child(self) -> None:
        """A consuming child's loop: run the jobs it holds one at a time; when none is left,
        fetch (sending the acknowledgements gathered meanwhile), waiting for messages."""
        pool = self.worker.pool
        assert pool is not None
        while not self.worker.stopping and not pool.retiring:
            until_held = self._admit_held()
            if pool.has_pending():
                pool.poll()
                continue
            with self.lock:
                room = self._room_left()
            if room > 0 and len(self._held) < self.max_held:
                if self._fetch_and_receive(room, min(1.0, until_held)) is False:
                    return
            else:  # every message held for its rate limit
                self.room.wait(min(0.5, until_held))
                self.room.clear()

    def _fetch(self, room: int, timeout: float, acks: list[Delivery]) -> list[Delivery]:
        """Claim up to ``room`` messages. Across queues the highest priority comes first; among
        equal priorities, ``worker_queue_order="priority"`` prefers queues in ``-Q`` order
        (a queue is drained before the next is touched), and ``"round_robin"`` rotates which
        queue is preferred on each fetch."""
        broker, queues = self.worker.broker, self.worker.queues
        prefetch = getattr(broker, "prefetch", None)  # a broker that streams (RabbitMQ)
        if prefetch is not None:
            # from one queue only; not while messages held outside the window (for their
            # rate limits) would take its room, nor in burst mode, which stops when the
            # queue looks empty (a stream's messages on their way are not in it)
            streams = len(queues) == 1 and not self._held and not self.worker.burst
            window = self.max_inflight if streams else 0
            prefetch(window)
            self._streaming = window > 0
        if len(queues) == 1:
            return broker.fetch(queues, room, timeout, acks)
        if self.worker.queue_order == "priority":
            for queue in queues[:-1]:
                found = broker.fetch([queue], room, 0.0, acks)
                acks = []
                if found:
                    return found
            return broker.fetch(queues, room, timeout, acks)
        self._rotation = (self._rotation + 1) % len(queues)
        rotated = queues[self._rotation :] + queues[: self._rotation]
        return broker.fetch(rotated, room, timeout, acks)

    def _drained(self) -> bool:
        """Burst mode: nothing held, nothing running, nothing waiting (delayed included)."""
        assert self.worker.pool is not None
        with self.lock:
            if self._inflight or self._held or self.worker.settlements or self.worker.pool.busy():
                return False
        return all(self.worker.broker.queue_length(q) == 0 for q in self.worker.queues)

    def _receive(self, deliveries: list[Delivery]) -> None:
        """Decode what a fetch brought and start, skip or dead-letter each message, a slice
        at a time: the first jobs start while the rest of a large fetch is still decoded."""
        for start in range(0, len(deliveries), RECEIVE_SLICE):
            self._receive_slice(deliveries[start : start + RECEIVE_SLICE])

    def _receive_slice(self, deliveries: list[Delivery]) -> None:
        """Decode and start, skip or dead-letter each message. Nothing in a message stops
        the worker: one that breaks an assumption of celeriac's own code is dead-lettered
        with the error."""
        candidates: list[tuple[Delivery, Message]] = []
        for d in deliveries:
            try:
                message = self._admissible(d)
            except Exception as exc:
                self._internal_error(d, exc, "receiving")
                continue
            if message is not None:
                candidates.append((d, message))
        if not candidates:
            return
        if any(m.headers.get("stamps") for _, m in candidates):
            try:  # a stamp revoked, or revocations forgotten, just before it was sent
                self.worker.heartbeat.read_revocations()
            except OperationalError as exc:
                logger.warning("result backend unavailable (%s); revocations as last read", exc)
        # only redelivered or revoked ids can need skipping: read just their states
        metas = self._metas(
            [m.id for d, m in candidates if d.redelivered or m.id in self.worker.revoked]
        )
        now = time.time()
        for d, message in candidates:
            try:
                self._start(d, message, metas.get(message.id), now)
            except Exception as exc:
                self._internal_error(d, exc, "starting")

    def _admissible(self, d: Delivery) -> Message | None:
        """The message of ``d`` if it may run here; else it is dead-lettered (a defect the
        broker found, too many deliveries, bad bytes, an unknown task) and None."""
        if d.defect is not None:
            logger.error("Rejected a bad message from queue %s: %s", d.queue, d.defect)
            self._dead_letter(d, d.defect)
            return None
        if self.worker.max_deliveries and d.delivery_count > self.worker.max_deliveries:
            self._poisoned(d)
            return None
        try:
            message = Message.decode(d.body, self.worker.accept)
            workflow.check(message)
        except InvalidTaskError as exc:
            logger.error("Rejected a bad message from queue %s: %s", d.queue, exc)
            signals.task_rejected.send(sender=None, message=d.body, exc=exc)
            self._dead_letter(d, f"invalid message: {exc}")
            return None
        if message.task not in self.app.tasks:
            logger.error(
                "Received unregistered task %r (id %s); moved to %s.dlq",
                message.task,
                message.id,
                d.queue,
            )
            signals.task_unknown.send(
                sender=None,
                name=message.task,
                id=message.id,
                message=message.to_dict(),
                exc=None,
            )
            self._dead_letter(d, f"unknown task {message.task!r}")
            return None
        return message

    def _poisoned(self, d: Delivery) -> None:
        """A message delivered more often than ``worker_max_deliveries`` (its task keeps
        killing its process, or its workers die): dead-lettered, and its task recorded as
        failed, so waiting on its result does not hang."""
        reason = (
            f"delivered {d.delivery_count} times without completing "
            f"(worker_max_deliveries={self.worker.max_deliveries})"
        )
        try:
            message: Message | None = Message.decode(d.body, self.worker.accept)
        except InvalidTaskError:
            message = None
        if message is not None:
            logger.error(
                "Task %s[%s] %s; moved to %s.dlq", message.task, message.id, reason, d.queue
            )
            if self.app.results.enabled and not message.ignore_result:
                lost = WorkerLostError(f"{reason}; moved to {dead_letter_queue(d.queue)}")
                try:
                    self.app.results.store_failure(message.id, lost, message.task, None)
                except OperationalError as exc:
                    logger.warning("could not record %s as failed: %s", message.id, exc)
        self._dead_letter(d, reason)

    def _start(
        self, d: Delivery, message: Message, meta: dict[str, Any] | None, now: float
    ) -> None:
        """Run a received message, unless it was revoked, expired, or already finished (a
        redelivered copy: its workflow steps are replayed instead)."""
        state = meta["status"] if meta is not None else None
        if state == states.REVOKED:
            self._discard_revoked(d, message, expired=False)
        elif meta is not None and state in states.READY_STATES and d.redelivered:
            self._replay(d, message, meta)
        elif message.expires is not None and message.expires < now:
            self._discard_revoked(d, message, expired=True)
        elif self.worker.heartbeat.revoked_stamps.match(message.headers) is not None:
            self._discard_revoked(d, message, expired=False)
        else:
            self._dispatch(d, message)

    def _internal_error(self, d: Delivery, exc: Exception, stage: str) -> None:
        logger.error(
            "Internal error %s a message from queue %s; dead-lettered", stage, d.queue, exc_info=exc
        )
        self._dead_letter(d, f"internal error {stage} it: {type(exc).__name__}: {safe_str(exc)}")

    def _metas(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        if not ids or not self.app.results.enabled:
            return {}
        try:
            return self.app.results.metas(ids)
        except OperationalError as exc:
            logger.warning("result backend unavailable (%s); not checking for duplicates", exc)
            return {}

    def _replay(self, d: Delivery, message: Message, meta: dict[str, Any]) -> None:
        """A redelivered task that already finished: not run again, but its workflow steps
        (callbacks, the chain's next step, the chord join) are redone where they may have
        been cut short."""
        logger.info(
            "Task %s[%s] already %s; redelivered copy acknowledged",
            message.task,
            message.id,
            meta["status"],
        )
        try:
            request = make_request(self.app.tasks[message.task], message, None, {})
            workflow.replay(self.app, request, meta)
        except OperationalError as exc:
            logger.warning("could not replay %s's workflow steps (%s); later", message.id, exc)
            self.worker.settlements.settle(d, REQUEUE, delay=1.0, what=message.id)
            return
        self.worker.settlements.settle(d, ACK, what=message.id)

    def _job(self, d: Delivery, message: Message) -> Job:
        task = self.app.tasks[message.task]
        conf = self.app.conf
        self._next_job_id += 1
        return Job(
            id=self._next_job_id,
            message=message,
            delivery=d,
            task=task,
            soft_limit=message.soft_time_limit or task.soft_time_limit or conf.task_soft_time_limit,
            hard_limit=message.time_limit or task.time_limit or conf.task_time_limit,
        )

    def job_for(self, d: Delivery) -> Job | None:
        """The job of a delivery a prefork child held (None if it cannot be read, or names
        a task this worker does not know)."""
        try:
            message = Message.decode(d.body, self.worker.accept)
        except InvalidTaskError:
            return None
        return self._job(d, message) if message.task in self.app.tasks else None

    def take_back(self, finished: list[Delivery], unstarted: list[Delivery]) -> None:
        """Settle what a dead prefork child held: acknowledge the tasks it finished (with
        the next flush of acknowledgements) and give back the ones it had not started."""
        if finished:
            self.worker.settlements.ack_later(finished)
            self.room.set()
        for d in unstarted:
            self.worker.settlements.settle(d, REQUEUE, what="a message a dead child held")

    def _dispatch(self, d: Delivery, message: Message) -> None:
        assert self.worker.pool is not None
        job = self._job(d, message)
        task, conf = job.task, self.app.conf
        acks_late = task.acks_late if task.acks_late is not None else conf.task_acks_late
        if not acks_late:
            self.worker.settlements.settle(d, ACK, what=f"{message.task}[{message.id}]")
            job.acked = True
        with self.lock:
            self._inflight[job.id] = job
        if signals.task_received.has_receivers():
            request = self._request(message, job.delivery_info)
            signals.task_received.send(sender=self.worker, request=request)
        logger.info("Task %s[%s] received", shown_name(message.task, message.headers), message.id)
        events = self.app.events.tasks
        if events is not None and events.enabled:
            events.put("task-received", task_fields(message))
        try:
            self._admit(job)
        except Exception:
            self._forget(job)  # dead-lettered by the caller
            raise

    def _admit(self, job: Job) -> None:
        """Start ``job`` now, or hold it until its rate limit lets it start."""
        assert self.worker.pool is not None
        if self.worker.heartbeat.is_revoked(job):  # revoked while it was held
            self.drop(job, expired=False)
            return
        wait = self.worker.rate_limits.wait(job.task)
        if wait <= 0:
            self.worker.pool.submit(job)
        else:
            heapq.heappush(self._held, (time.monotonic() + wait, job.id, job))

    def _admit_held(self) -> float:
        """Start held jobs whose turn has come; returns seconds until the next one's."""
        now = time.monotonic()
        while self._held and self._held[0][0] <= now:
            job = heapq.heappop(self._held)[2]
            try:
                self._admit(job)
            except Exception as exc:
                self._forget(job)
                self._internal_error(job.delivery, exc, "starting")
        return max(0.0, self._held[0][0] - now) if self._held else 1.0

    def _request(self, message: Message, delivery_info: dict[str, Any]) -> Context:
        """The request signals see for a message the worker holds."""
        return Context(
            id=message.id,
            task=self.app.tasks[message.task],
            args=message.args,
            kwargs=message.kwargs,
            hostname=self.worker.hostname,
            delivery_info=delivery_info,
        )

    def _discard_revoked(self, d: Delivery, message: Message, expired: bool) -> None:
        task = self.app.tasks[message.task]
        request = self._request(message, {"queue": d.queue, "routing_key": d.queue})
        what = f"{message.task}[{message.id}]"
        stamp = None
        if not expired and message.id not in self.worker.revoked:
            stamp = self.worker.heartbeat.revoked_stamps.match(message.headers)
        if expired:
            logger.info("Task %s expired; not run", what)
        elif stamp is None:
            logger.info("Discarding revoked task: %s", what)
        else:
            header = f"{stamp[0]}={safe_repr(stamp[1], 60)}"
            logger.info("Discarding revoked task: %s (revoked by header %s)", what, header)
        if expired or stamp is not None:  # a revocation by id is recorded by its sender
            self._record_revoked(message, what)
        if message.chord:  # a chord header member: it counts, so the chord completes
            self._count_in_chord(message, d)
        if expired:
            self._dead_letter(d, "expired before it could run", what)
        else:
            self.worker.settlements.settle(d, ACK, what=what)
        signals.task_revoked.send(
            sender=task, request=request, terminated=False, signum=None, expired=expired
        )
        self.app.events.send_task_event(
            "task-revoked", uuid=message.id, terminated=False, signum=None, expired=expired
        )

    def _record_revoked(self, message: Message, what: str) -> None:
        if self.app.results.enabled and not message.ignore_result:
            try:
                self.app.results.store(message.id, states.REVOKED, None, None, message.task)
            except OperationalError as exc:
                logger.warning("could not record %s as REVOKED: %s", what, exc)

    def _count_in_chord(self, message: Message, d: Delivery) -> None:
        """Count a chord header member that will not run as finished (it is recorded as
        REVOKED), as Celery does: the chord's body then fails with ChordError."""
        if not self.app.results.enabled:
            return
        task = self.app.tasks[message.task]
        request = make_request(task, message, self.worker.hostname, {"queue": d.queue})
        try:
            workflow.on_chord_part_return(self.app, request)
        except OperationalError as exc:
            logger.warning("could not count %s in its chord: %s", message.id, exc)

    def _dead_letter(self, d: Delivery, reason: str, what: str = "") -> None:
        self.worker.settlements.settle(d, DEAD_LETTER, reason, what=what)

    def on_done(self, done: list[tuple[Job, Outcome]]) -> None:
        """Settle finished jobs. Acknowledgements are queued and sent together before the
        next fetch (one round trip for many); their leases are renewed until then, and a
        copy redelivered meanwhile is recognised as finished. The rest settle at once."""
        acks: list[Job] = []
        rest: list[tuple[Job, Outcome]] = []
        for job, outcome in done:  # the usual case, a finished task to acknowledge
            if outcome.action == ACK and not job.acked:
                acks.append(job)
            else:
                rest.append((job, outcome))
        if acks:
            # queued before the jobs leave the in-flight set: the heartbeat, which renews
            # the leases of both, never misses one
            self.worker.settlements.ack_later([job.delivery for job in acks])
            with self.lock:
                for job in acks:
                    job.acked = True
                    self._inflight.pop(job.id, None)
                room = self._room_left()
            # a streaming broker sends a message in for each one acknowledged: send them now,
            # in runs of an eighth of the window (one frame for many), not with the next fetch
            owed = self.worker.settlements.owed()[0]
            if self._streaming and owed >= max(1, self.max_inflight // 8):
                self.worker.settlements.flush_acks()
            self._wake_consumer(room)
        for job, outcome in rest:
            self._settle(job, outcome)

    def _settle(self, job: Job, outcome: Outcome) -> None:
        """Ack, requeue or dead-letter the job's message, and forget the job. A settlement
        the broker cannot take now is kept, and made as soon as it can (meanwhile its lease
        is renewed): a finished task is not redelivered because its ack was lost."""
        if not job.acked:
            job.acked = True
            self.worker.settlements.settle(
                job.delivery,
                outcome.action,
                outcome.reason or outcome.state,
                outcome.requeue_delay,
                what=f"{job.task.name}[{job.message.id}]",
            )
        self._forget(job)

    def _room_left(self) -> int:
        """How many more messages the prefetch window takes (held jobs take none; call
        with the in-flight lock held)."""
        return self.max_inflight - (len(self._inflight) - len(self._held))

    def _forget(self, job: Job) -> None:
        with self.lock:
            self._inflight.pop(job.id, None)
            room = self._room_left()
        self._wake_consumer(room)

    def _wake_consumer(self, room: int) -> None:
        """Wake the consumer if, with ``room`` free, it would fetch (see :meth:`run`): not
        for every finished task, except in the solo pool, whose jobs the consumer's own
        thread runs (between two jobs it must not wait)."""
        if (
            room >= self.fetch_batch
            or self.worker.pool is None
            or not self.worker.pool.has_pending()
            or self.worker.pool_name == "solo"
        ):
            self.room.set()

    def release(self, jobs: list[Job]) -> None:
        """Give back jobs that will not run here."""
        for job in jobs:
            self._settle(job, Outcome(REQUEUE, states.PENDING))

    def drop(self, job: Job, expired: bool) -> None:
        """Settle a received job that will not run, revoked or expired, and forget it."""
        if not job.acked:
            job.acked = True
            self._discard_revoked(job.delivery, job.message, expired)
        self._forget(job)
