"""The logical clock every sent event carries."""

from __future__ import annotations

import threading

from celeriac.events import LamportClock


def test_the_clock_moves_forward_and_past_what_it_receives() -> None:
    clock = LamportClock()
    first, second = clock.forward(), clock.forward()
    assert first < second <= clock.value
    adjusted = clock.adjust(100)
    assert adjusted > 100
    assert clock.forward() > adjusted
    assert clock.adjust(5) > adjusted  # an older clock never moves it back


def test_threads_never_get_the_same_value() -> None:
    clock = LamportClock()
    taken: list[list[int]] = [[] for _ in range(4)]

    def tick(into: list[int]) -> None:
        for _ in range(10_000):
            into.append(clock.forward())

    threads = [threading.Thread(target=tick, args=(into,)) for into in taken]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    values = [value for into in taken for value in into]
    assert len(set(values)) == len(values)
    assert all(into == sorted(into) for into in taken)
