"""The ``django-db`` and ``django-cache`` result backends: results kept through Django.

``django-db`` (``django-db://`` names the default database, ``django-db://<alias>`` another
one of ``DATABASES``) writes :class:`~.models.TaskResult` rows with readable fields, saved
groups (and so every chord's header) as :class:`~.models.GroupResult` rows, and its
key-value store in the app's two internal tables. ``django-cache`` (``django-cache://`` or
``django-cache://<alias>`` of ``CACHES``) keeps everything in Django's cache; its counters
and sets are atomic where the cache's ``add`` and ``incr`` are (Redis, Memcached, the local
memory cache), not on the database or file caches.

Both need Django set up (``DJANGO_SETTINGS_MODULE``); ``django-db`` also needs
``celeriac.contrib.django.results`` in ``INSTALLED_APPS`` and its migrations applied. Calls
made in a thread running an event loop (the asyncio pool, the dashboard) run in a helper
thread, since Django refuses database work there.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar
from urllib.parse import urlsplit

from .... import states
from ....backends.base import CeleryMethods
from ....exceptions import ImproperlyConfigured, OperationalError
from ....keys import GROUP_KEY

P = ParamSpec("P")
R = TypeVar("R")

APP = "celeriac.contrib.django.results"
_GROUP_PREFIX = GROUP_KEY.format("")
_NUMBER = re.compile(rb"-?(0|[1-9][0-9]{0,17})")  # a counter as get_value gives it
_CHUNK = 500  # ids per query in load_many
_POLL_FIRST, _POLL_FACTOR, _POLL_CAP = 0.005, 1.5, 0.1
_executor: ThreadPoolExecutor | None = None
# Database connections a forked child inherited: kept referenced, never closed or finalised,
# so the child never ends its parent's sessions.
_inherited: list[Any] = []


def _forget_inherited_connections() -> None:
    try:
        from django.db import connections
    except ImportError:
        return
    for conn in connections.all(initialized_only=True):
        if conn.connection is not None:
            _inherited.append(conn.connection)
            conn.connection = None


os.register_at_fork(after_in_child=_forget_inherited_connections)


def setup_django() -> None:
    """Set Django up if it is configured and not yet ready; raise ImproperlyConfigured when
    it is not configured at all."""
    try:
        import django
        from django.apps import apps
        from django.conf import settings
    except ImportError as exc:
        raise ImproperlyConfigured(
            "the django-db and django-cache result backends need Django: "
            "pip install 'celeriac[django]'"
        ) from exc
    if apps.ready:
        return
    if not settings.configured and not os.environ.get("DJANGO_SETTINGS_MODULE"):
        raise ImproperlyConfigured(
            "the django-db and django-cache result backends run inside a Django project: "
            "set DJANGO_SETTINGS_MODULE"
        )
    django.setup()


def _off_the_loop(method: Callable[P, R]) -> Callable[P, R]:
    """Run ``method`` in a helper thread when called on a thread with a running event loop
    (Django raises SynchronousOnlyOperation there)."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        global _executor
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return method(*args, **kwargs)
        if _executor is None:
            _executor = ThreadPoolExecutor(4, thread_name_prefix="celeriac-django")
        return _executor.submit(method, *args, **kwargs).result()

    return wrapper


def _alias(url: str) -> str | None:
    return (urlsplit(url).netloc or None) if "://" in url else None


def _poll_intervals() -> Iterator[float]:
    delay = _POLL_FIRST
    while True:
        yield delay
        delay = min(delay * _POLL_FACTOR, _POLL_CAP)


def _wait(read: Callable[[], tuple[str, bytes] | None], timeout: float | None) -> bytes | None:
    """Poll ``read`` until it gives a ready state; its payload, or None after ``timeout``."""
    deadline = None if timeout is None else time.monotonic() + timeout
    intervals = _poll_intervals()
    while True:
        record = read()
        if record is not None and record[0] in states.READY_STATES:
            return record[1]
        interval = next(intervals)
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            interval = min(interval, left)
        time.sleep(interval)


def _text(value: Any) -> str | None:
    return None if value is None else json.dumps(value, default=repr)


class DatabaseBackend(CeleryMethods):
    """``django-db``: results in :class:`~.models.TaskResult` rows, saved groups in
    :class:`~.models.GroupResult` rows, through Django's ORM."""

    def __init__(self, url: str = "django-db://", options: dict[str, Any] | None = None) -> None:
        self.url = url
        self.alias = _alias(url)
        self.options = dict(options or {})

    # -- plumbing -------------------------------------------------------------------------

    def _models(self) -> Any:
        setup_django()
        from django.apps import apps

        if not apps.is_installed(APP):
            raise ImproperlyConfigured(
                f"the django-db result backend needs {APP!r} in INSTALLED_APPS "
                "(then run manage.py migrate)"
            )
        from . import models

        return models

    def _db(self) -> str:
        if self.alias:
            return self.alias
        from django.db import router

        alias: str = router.db_for_write(self._models().TaskResult)
        return alias

    @contextmanager
    def _errors(self) -> Iterator[None]:
        from django.db import DatabaseError, InterfaceError

        try:
            yield
        except (DatabaseError, InterfaceError) as exc:
            raise OperationalError(f"django-db: {exc}") from exc

    def _decode(self, payload: bytes) -> dict[str, Any] | None:
        try:
            meta = self._results().decode(payload)
        except Exception:
            return None  # not meta celeriac wrote: kept as it is, with its state only
        return meta if isinstance(meta, dict) else None

    def _fields(self, state: str, payload: bytes, expires_at: float | None) -> dict[str, Any]:
        """The columns of a TaskResult row for this write."""
        from django.utils import timezone

        fields: dict[str, Any] = {
            "status": state,
            "payload": payload,
            "expires_at": expires_at,
            "date_done": timezone.now(),
        }
        meta = self._decode(payload)
        if meta is not None:
            extra = {
                k: meta[k]
                for k in ("children", "retries", "queue", "parent_id", "root_id")
                if meta.get(k) is not None
            }
            fields.update(
                task_name=meta.get("name"),
                result=_text(meta.get("result")),
                traceback=meta.get("traceback"),
                worker=(str(meta["worker"])[:100] if meta.get("worker") else None),
                content_type="application/json",
                content_encoding="utf-8",
                meta=_text(extra) if extra else None,
            )
            if "args" in meta:
                fields["task_args"] = _text(meta["args"])
                fields["task_kwargs"] = _text(meta.get("kwargs"))
            if meta.get("periodic_task_name"):
                fields["periodic_task_name"] = str(meta["periodic_task_name"])[:255]
        return fields

    def _upsert(self, model: Any, db: str, lookup: dict[str, Any], fields: dict[str, Any]) -> None:
        """Update the row ``lookup`` finds with ``fields``, or create it."""
        from django.db import IntegrityError, transaction

        rows = model.objects.using(db).filter(**lookup)
        while not rows.update(**fields):
            try:
                with transaction.atomic(using=db):
                    model.objects.using(db).create(**lookup, **fields)
                return
            except IntegrityError:
                continue  # created meanwhile: update it

    # -- results --------------------------------------------------------------------------

    @_off_the_loop
    def store(self, task_id: str, state: str, payload: bytes, expires_in: float | None) -> None:
        """Record ``state`` and ``payload`` for ``task_id`` in its TaskResult row."""
        from django.db.models import F, Value
        from django.db.models.functions import Coalesce
        from django.utils import timezone

        now = time.time()
        fields = self._fields(state, payload, None if expires_in is None else now + expires_in)
        models = self._models()
        with self._errors():
            db = self._db()
            if state == states.STARTED:
                fields["date_started"] = Coalesce(F("date_started"), Value(timezone.now()))
            rows = models.TaskResult.objects.using(db).filter(task_id=task_id)
            if rows.update(**fields):
                return
            if state == states.STARTED:
                fields["date_started"] = timezone.now()
            self._upsert(models.TaskResult, db, {"task_id": task_id}, fields)

    def _alive(self, query: Any) -> Any:
        from django.db.models import Q

        return query.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=time.time()))

    def _read(self, task_id: str) -> tuple[str, bytes] | None:
        models = self._models()
        with self._errors():
            rows = models.TaskResult.objects.using(self._db()).filter(task_id=task_id)
            row = self._alive(rows).values_list("status", "payload").first()
        return None if row is None else (row[0], bytes(row[1]))

    @_off_the_loop
    def load(self, task_id: str) -> bytes | None:
        """The payload stored for ``task_id`` unless missing or expired."""
        record = self._read(task_id)
        return None if record is None else record[1]

    @_off_the_loop
    def load_many(self, task_ids: Sequence[str]) -> dict[str, bytes]:
        """Payloads of those ``task_ids`` that have one."""
        ids = list(dict.fromkeys(task_ids))
        found: dict[str, bytes] = {}
        models = self._models()
        with self._errors():
            db = self._db()
            for start in range(0, len(ids), _CHUNK):
                rows = models.TaskResult.objects.using(db).filter(
                    task_id__in=ids[start : start + _CHUNK]
                )
                for tid, payload in self._alive(rows).values_list("task_id", "payload"):
                    found[tid] = bytes(payload)
        return found

    @_off_the_loop
    def wait_for(self, task_id: str, timeout: float | None) -> bytes | None:
        """Poll the row of ``task_id`` until it is ready; its payload, or None on timeout."""
        return _wait(lambda: self._read(task_id), timeout)

    @_off_the_loop
    def forget(self, task_id: str) -> None:
        """Delete the TaskResult row of ``task_id``."""
        models = self._models()
        with self._errors():
            models.TaskResult.objects.using(self._db()).filter(task_id=task_id).delete()

    @_off_the_loop
    def cleanup(self) -> int:
        """Delete expired rows; returns how many."""
        models = self._models()
        now = time.time()
        deleted = 0
        with self._errors():
            db = self._db()
            for model in (models.TaskResult, models.GroupResult, models.KeyValue):
                deleted += model.objects.using(db).filter(expires_at__lte=now).delete()[0]
            members = models.SetMember.objects.using(db).filter(expires_at__lte=now)
            deleted += members.delete()[0]
        return deleted

    # -- the key-value store --------------------------------------------------------------

    @_off_the_loop
    def incr(self, key: str, amount: int = 1, expires_in: float | None = None) -> int:
        """Add ``amount`` to counter ``key`` (missing or expired: 0) and return the sum."""
        from django.db import IntegrityError, transaction
        from django.db.models import F, Value
        from django.db.models.functions import Coalesce

        models = self._models()
        now = time.time()
        expires_at = None if expires_in is None else now + expires_in
        with self._errors():
            db = self._db()
            while True:
                with transaction.atomic(using=db):
                    rows = models.KeyValue.objects.using(db).filter(key=key)
                    restarted = rows.filter(expires_at__lte=now).update(
                        number=amount, value=None, expires_at=expires_at
                    )
                    if not restarted:
                        change: dict[str, Any] = {
                            "number": Coalesce(F("number"), Value(0)) + amount,
                            "value": None,
                        }
                        if expires_at is not None:
                            change["expires_at"] = expires_at
                        if not rows.update(**change):
                            try:
                                with transaction.atomic(using=db):
                                    models.KeyValue.objects.using(db).create(
                                        key=key, number=amount, expires_at=expires_at
                                    )
                                return int(amount)
                            except IntegrityError:
                                continue
                    return int(rows.values_list("number", flat=True).get())

    def _lock_set(self, db: str, key: str, expires_at: float | None) -> None:
        """Lock the set ``key`` for this transaction (a row of its own that is updated)."""
        from django.db import IntegrityError, transaction
        from django.db.models import F

        models = self._models()
        rows = models.KeyValue.objects.using(db).filter(key=f"set:{key}")
        while not rows.update(number=F("number")):
            try:
                with transaction.atomic(using=db):
                    models.KeyValue.objects.using(db).create(
                        key=f"set:{key}", number=0, expires_at=expires_at
                    )
                return
            except IntegrityError:
                continue

    @_off_the_loop
    def add_to_set(self, key: str, member: str, expires_in: float | None = None) -> int:
        """Add ``member`` to the set ``key``; returns its number of distinct members."""
        from django.db import transaction

        models = self._models()
        now = time.time()
        with self._errors():
            db = self._db()
            members = models.SetMember.objects.using(db)
            with transaction.atomic(using=db):
                self._lock_set(db, key, None if expires_in is None else now + expires_in)
                members.filter(key=key, expires_at__lte=now).delete()
                if not members.filter(key=key, member=member).exists():
                    current = members.filter(key=key).values_list("expires_at", flat=True)
                    members.create(key=key, member=member, expires_at=current.first())
                if expires_in is not None:
                    members.filter(key=key).update(expires_at=now + expires_in)
                    lock = models.KeyValue.objects.using(db).filter(key=f"set:{key}")
                    lock.update(expires_at=now + expires_in)
                count: int = members.filter(key=key).count()
        return count

    @_off_the_loop
    def set_members(self, key: str) -> list[str]:
        """The members of the set ``key``."""
        models = self._models()
        with self._errors():
            rows = models.SetMember.objects.using(self._db()).filter(key=key)
            return [str(m) for m in self._alive(rows).values_list("member", flat=True)]

    def _group(self, key: str) -> str | None:
        return key[len(_GROUP_PREFIX) :] if key.startswith(_GROUP_PREFIX) else None

    @_off_the_loop
    def set_value(
        self, key: str, value: bytes, expires_in: float | None = None, only_if_absent: bool = False
    ) -> bool:
        """Set ``key``; with ``only_if_absent`` only when missing or expired. A saved group
        (``GroupResult.save()``, a chord's header) is a GroupResult row."""
        from django.db import IntegrityError, transaction
        from django.utils import timezone

        models = self._models()
        now = time.time()
        expires_at = None if expires_in is None else now + expires_in
        group_id = self._group(key)
        if group_id is not None:
            model, lookup = models.GroupResult, {"group_id": group_id}
            fields: dict[str, Any] = {
                "result": bytes(value).decode("utf-8", "replace"),
                "content_type": "application/json",
                "content_encoding": "utf-8",
                "date_done": timezone.now(),
                "expires_at": expires_at,
            }
        else:
            number = int(value) if _NUMBER.fullmatch(value) else None
            model, lookup = models.KeyValue, {"key": key}
            fields = {"value": bytes(value), "number": number, "expires_at": expires_at}
        with self._errors():
            db = self._db()
            if not only_if_absent:
                self._upsert(model, db, lookup, fields)
                return True
            with transaction.atomic(using=db):
                rows = model.objects.using(db).filter(**lookup, expires_at__lte=now)
                if rows.update(**fields):
                    return True  # it had expired
                try:
                    with transaction.atomic(using=db):
                        model.objects.using(db).create(**lookup, **fields)
                except IntegrityError:
                    return False
                return True

    @_off_the_loop
    def get_value(self, key: str) -> bytes | None:
        """The value of ``key`` (counters as ASCII digits) unless missing or expired."""
        models = self._models()
        group_id = self._group(key)
        with self._errors():
            db = self._db()
            if group_id is not None:
                rows = models.GroupResult.objects.using(db).filter(group_id=group_id)
                text = self._alive(rows).values_list("result", flat=True).first()
                return None if text is None else str(text).encode()
            rows = models.KeyValue.objects.using(db).filter(key=key)
            row = self._alive(rows).values_list("value", "number").first()
        if row is None:
            return None
        value, number = row
        if value is None:
            return None if number is None else str(number).encode()
        return bytes(value)

    @_off_the_loop
    def delete_value(self, key: str) -> None:
        """Delete ``key`` (a value, counter, set or saved group)."""
        from django.db import transaction

        models = self._models()
        group_id = self._group(key)
        with self._errors():
            db = self._db()
            with transaction.atomic(using=db):
                if group_id is not None:
                    models.GroupResult.objects.using(db).filter(group_id=group_id).delete()
                keys = models.KeyValue.objects.using(db).filter(key__in=[key, f"set:{key}"])
                keys.delete()
                models.SetMember.objects.using(db).filter(key=key).delete()

    @_off_the_loop
    def close(self) -> None:
        """Close this thread's connection to the database (reopened when used again)."""
        from django.db import connections

        with self._errors():
            connection = connections[self._db()]
            if not connection.in_atomic_block:
                connection.close()


class CacheBackend(CeleryMethods):
    """``django-cache``: results, values, counters and sets in Django's cache."""

    def __init__(self, url: str = "django-cache://", options: dict[str, Any] | None = None) -> None:
        self.url = url
        self.alias = _alias(url) or "default"
        self.options = dict(options or {})
        self.prefix = str(self.options.get("key_prefix", "celeriac"))

    def _cache(self) -> Any:
        setup_django()
        from django.core.cache import caches

        return caches[self.alias]

    @staticmethod
    def _timeout(expires_in: float | None) -> float | None:
        # Django: None is "never"; 0 is "at once"
        return None if expires_in is None else max(expires_in, 0.001)

    def _k(self, kind: str, key: str) -> str:
        return f"{self.prefix}:{kind}:{key}"

    def store(self, task_id: str, state: str, payload: bytes, expires_in: float | None) -> None:
        """Record ``state`` and ``payload`` for ``task_id``."""
        self._cache().set(self._k("task", task_id), (state, payload), self._timeout(expires_in))

    def _read(self, task_id: str) -> tuple[str, bytes] | None:
        record = self._cache().get(self._k("task", task_id))
        return None if record is None else (str(record[0]), bytes(record[1]))

    def load(self, task_id: str) -> bytes | None:
        """The payload stored for ``task_id`` unless missing or expired."""
        record = self._read(task_id)
        return None if record is None else record[1]

    def load_many(self, task_ids: Sequence[str]) -> dict[str, bytes]:
        """Payloads of those ``task_ids`` that have one."""
        ids = list(dict.fromkeys(task_ids))
        found: dict[str, bytes] = {}
        cache = self._cache()
        for start in range(0, len(ids), _CHUNK):
            keys = {self._k("task", t): t for t in ids[start : start + _CHUNK]}
            for k, record in cache.get_many(list(keys)).items():
                found[keys[k]] = bytes(record[1])
        return found

    def wait_for(self, task_id: str, timeout: float | None) -> bytes | None:
        """Poll until ``task_id`` is ready; its payload, or None after ``timeout`` seconds."""
        return _wait(lambda: self._read(task_id), timeout)

    def forget(self, task_id: str) -> None:
        """Delete the result of ``task_id``."""
        self._cache().delete(self._k("task", task_id))

    def cleanup(self) -> int:
        """Nothing to do: the cache drops expired entries by itself."""
        return 0

    def incr(self, key: str, amount: int = 1, expires_in: float | None = None) -> int:
        """Add ``amount`` to counter ``key`` (missing or expired: 0) and return the sum."""
        cache, k = self._cache(), self._k("kv", key)
        while True:
            cache.add(k, 0, self._timeout(expires_in))
            try:
                total = int(cache.incr(k, amount))
            except ValueError:
                continue  # expired between add and incr
            if expires_in is not None:
                cache.touch(k, self._timeout(expires_in))
            return total

    def _generation(self, key: str, expires_in: float | None, create: bool) -> str | None:
        """The current generation of the set ``key``: its members live under it, so that
        a set that expired or was deleted starts empty."""
        cache, k = self._cache(), self._k("setgen", key)
        if create:
            cache.add(k, uuid.uuid4().hex, self._timeout(expires_in))
        gen = cache.get(k)
        if gen is not None and expires_in is not None:
            cache.touch(k, self._timeout(expires_in))
        return None if gen is None else str(gen)

    def add_to_set(self, key: str, member: str, expires_in: float | None = None) -> int:
        """Add ``member`` to the set ``key``; returns its number of distinct members."""
        cache = self._cache()
        while True:
            gen = self._generation(key, expires_in, create=True)
            if gen is not None:
                break
        base = self._k("set", f"{gen}:{key}")
        cache.add(f"{base}:n", 0, None)
        if not cache.add(f"{base}:m:{member}", 1, None):
            return int(cache.get(f"{base}:n") or 0)
        count = int(cache.incr(f"{base}:n"))
        cache.set(f"{base}:i:{count}", member, None)
        return count

    def set_members(self, key: str) -> list[str]:
        """The members of the set ``key``."""
        gen = self._generation(key, None, create=False)
        if gen is None:
            return []
        cache = self._cache()
        base = self._k("set", f"{gen}:{key}")
        count = int(cache.get(f"{base}:n") or 0)
        found = cache.get_many([f"{base}:i:{i}" for i in range(1, count + 1)])
        return [str(m) for m in found.values()]

    def set_value(
        self, key: str, value: bytes, expires_in: float | None = None, only_if_absent: bool = False
    ) -> bool:
        """Set ``key``; with ``only_if_absent`` only when missing or expired."""
        cache, k = self._cache(), self._k("kv", key)
        stored: Any = int(value) if _NUMBER.fullmatch(value) else bytes(value)
        if only_if_absent:
            return bool(cache.add(k, stored, self._timeout(expires_in)))
        cache.set(k, stored, self._timeout(expires_in))
        return True

    def get_value(self, key: str) -> bytes | None:
        """The value of ``key`` (counters as ASCII digits) unless missing or expired."""
        value = self._cache().get(self._k("kv", key))
        if value is None:
            return None
        return str(value).encode() if isinstance(value, int) else bytes(value)

    def delete_value(self, key: str) -> None:
        """Delete ``key`` (a value, counter or set)."""
        self._cache().delete_many([self._k("kv", key), self._k("setgen", key)])

    def close(self) -> None:
        """Close the cache's connections (reopened when used again)."""
        from django.core.cache import caches

        if self.alias in caches:
            caches[self.alias].close()
