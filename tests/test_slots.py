"""The worker's slots alone, in this process: what starts when, and cancels."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

from django_qtasks.context import RunState
from django_qtasks.models import Task
from django_qtasks.worker.slots import Running, Slots


def task(number: int) -> Task:
    return Task(uuid=uuid.uuid4(), task_name="echo", args=[number])


def run(slots: Slots, record: Task) -> Running:
    entry = Running(record, RunState(record.uuid, log_limit=10))
    slots.add(entry)
    return entry


def numbers(records: list[Task]) -> list[int]:
    return [record.args[0] for record in records]


def test_reserved_tasks_start_in_order_one_per_free_slot():
    slots = Slots(concurrency=2)
    slots.reserved.extend(task(n) for n in range(4))

    first = slots.to_start()
    for record in first:
        run(slots, record)

    assert numbers(first) == [0, 1]
    assert slots.to_start() == []  # both slots taken
    assert numbers(list(slots.reserved)) == [2, 3]
    slots.running[first[0].uuid].ended_at = datetime.now(timezone.utc)  # its outcome is known
    assert numbers(slots.to_start()) == [2]
    assert slots.under_way_keys() == [first[1].uuid]
    assert set(slots.held_keys()) == {first[0].pk, first[1].pk, slots.reserved[0].pk}


def test_a_task_cancelled_in_the_reserve_starts_at_once_and_takes_no_free_slot_from_others():
    slots = Slots(concurrency=1)
    busy = run(slots, task(0))
    waiting, cancelled = task(1), task(2)
    slots.reserved.extend([waiting, cancelled])

    assert slots.request_cancels([(cancelled.pk, "not needed")]) is True
    assert numbers(slots.to_start()) == [2]  # to end as cancelled; the slot stays busy
    assert slots.early_cancels == {cancelled.pk: "not needed"}

    assert slots.request_cancels([(busy.record.pk, "stop")]) is False
    assert busy.run.cancel_reason == "stop"
    slots.remove(busy.record.uuid)
    (started,) = slots.to_start()
    assert numbers([started]) == [1]
    run(slots, started)
    assert slots.idle() is False
    slots.remove(started.uuid)
    assert slots.idle() is True
