"""Dynamic batching: requests for one model that may share a call are run together.

    batcher = DynamicBatcher(model.run_batch, max_batch=8, max_delay_s=0.005, max_queue=64, executor=pool)
    batcher.start()
    output = await batcher.submit(key, job)     # the job's own result, from a call shared with others

A batch holds jobs of one key (one model, direction and image size) in arrival order. It is sent
when it has `max_batch` jobs, or when its oldest job has waited `max_delay_s`, whichever comes
first; while a batch runs, the next one fills, so under load batches are full without waiting.
Images of different sizes are run apart (padding them to a common size would change the outputs
near the borders, and measured slower on the CPU: docs/benchmarks.md, "translate serve").

The model runs on `executor` (one thread: the model itself uses every core), never on the event
loop. A job whose caller went away (a disconnected client: its future is cancelled) is dropped
before its batch runs, or its result is discarded; the batch's other jobs are unaffected.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["BatchStats", "BatcherStoppedError", "Done", "DynamicBatcher", "QueueFullError"]


class QueueFullError(RuntimeError):
    """`max_queue` jobs are already waiting for this model."""

    def __init__(self, waiting: int, limit: int) -> None:
        self.waiting, self.limit = waiting, limit
        super().__init__(f"{waiting} requests are waiting for this model, the queue's limit ({limit})")


class BatcherStoppedError(RuntimeError):
    """The batcher is stopping (the server is shutting down) and takes no new jobs."""


@dataclass
class BatchStats:
    """What one model call did, for the metrics."""

    size: int
    queue_waits: list[float]  # seconds each job waited before its batch started
    seconds: float  # the model call


@dataclass
class Done:
    """A job's result and how it was reached."""

    result: Any
    batch_size: int
    queue_wait: float  # seconds from submit to the start of its batch
    inference: float  # seconds of its batch's model call


@dataclass(eq=False)  # identity: a job is found in its queue by itself, never by comparing payloads
class _Job:
    key: Hashable
    payload: Any
    future: asyncio.Future
    arrived: float = field(default_factory=time.monotonic)


class DynamicBatcher:
    """Collects jobs into batches and runs them, one batch at a time, on `executor`.

    Args:
        run_batch: `(key, payloads) -> results` (one per payload, in order); runs on `executor`. A
            result that is an Exception is raised to that job's caller alone.
        max_batch: jobs per call (1: no batching).
        max_delay_s: the longest the oldest waiting job waits for its batch to fill.
        max_queue: jobs waiting (not running) before `submit` raises QueueFullError.
        on_batch: called on the event loop with each batch's BatchStats (metrics).
    """

    def __init__(self, run_batch: Callable[[Hashable, Sequence[Any]], Sequence[Any]], *, max_batch: int,
                 max_delay_s: float, max_queue: int, executor: Executor,
                 on_batch: Callable[[BatchStats], None] | None = None) -> None:
        self.run_batch, self.max_batch, self.max_delay_s = run_batch, max_batch, max_delay_s
        self.max_queue, self.executor, self.on_batch = max_queue, executor, on_batch
        self.groups: dict[Hashable, collections.deque[_Job]] = {}
        self.waiting = 0
        self._arrival: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._stopping = False

    def start(self) -> None:
        """Start the batching loop on the running event loop."""
        self._arrival = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="dynamic-batcher")

    async def stop(self) -> None:
        """Run what is waiting, then stop."""
        self._stopping = True
        if self._arrival is not None:
            self._arrival.set()
        if self._task is not None:
            await self._task

    async def submit(self, key: Hashable, payload: Any) -> Done:
        """Queue `payload` and wait for its result (the exception of its batch's call, if that failed).

        Raises:
            QueueFullError: `max_queue` jobs are waiting.
            BatcherStoppedError: the batcher is stopping.
        """
        if self._stopping or self._arrival is None:
            raise BatcherStoppedError("the server is shutting down")
        if self.waiting >= self.max_queue:
            raise QueueFullError(self.waiting, self.max_queue)
        job = _Job(key, payload, asyncio.get_running_loop().create_future())
        self.groups.setdefault(key, collections.deque()).append(job)
        self.waiting += 1
        self._arrival.set()
        try:
            return await job.future
        except asyncio.CancelledError:
            self._withdraw(job)  # its caller went away: it leaves the queue now, not when a batch forms
            raise

    def _withdraw(self, job: _Job) -> None:
        group = self.groups.get(job.key)
        if group is None or job not in group:
            return  # already taken into a batch: its result will be discarded
        group.remove(job)
        self.waiting -= 1
        if not group:
            del self.groups[job.key]
        if self._arrival is not None:
            self._arrival.set()  # a batch waiting on this group's deadline looks again

    def _oldest_key(self) -> Hashable:
        return min(self.groups, key=lambda key: self.groups[key][0].arrived)

    async def _loop(self) -> None:
        assert self._arrival is not None  # set by start()
        while True:
            if not self.groups:
                if self._stopping:
                    return
                self._arrival.clear()
                await self._arrival.wait()
                continue
            key = self._oldest_key()
            if not await self._fill(key):
                continue  # its jobs were withdrawn while it waited: look again
            batch = self._take(key)
            if batch:
                await self._run(key, batch)

    async def _fill(self, key: Hashable) -> bool:
        """Wait until the group of `key` is full or its oldest job's delay is spent; False if the
        group emptied meanwhile (its callers went away)."""
        assert self._arrival is not None
        while not self._stopping:
            group = self.groups.get(key)
            if not group:
                return False
            left = group[0].arrived + self.max_delay_s - time.monotonic()
            if len(group) >= self.max_batch or left <= 0:
                return True
            self._arrival.clear()
            try:
                await asyncio.wait_for(self._arrival.wait(), left)
            except asyncio.TimeoutError:
                pass  # the deadline: checked again above
        return key in self.groups

    def _take(self, key: Hashable) -> list[_Job]:
        """Up to `max_batch` live jobs of `key`, oldest first; cancelled ones are dropped."""
        group, batch = self.groups.get(key, collections.deque()), []
        while group and len(batch) < self.max_batch:
            job = group.popleft()
            self.waiting -= 1
            if not job.future.done():  # done here means cancelled: its client went away
                batch.append(job)
        if not group:
            self.groups.pop(key, None)
        return batch

    async def _run(self, key: Hashable, batch: list[_Job]) -> None:
        started = time.monotonic()
        loop = asyncio.get_running_loop()
        try:
            results = await loop.run_in_executor(self.executor, self.run_batch, key, [job.payload for job in batch])
        except Exception as error:  # noqa: BLE001 - the batch's callers get the error, the loop goes on
            logger.exception("a batch of %d failed", len(batch))
            for job in batch:
                if not job.future.done():
                    job.future.set_exception(error)
            return
        seconds = time.monotonic() - started
        for job, result in zip(batch, results, strict=True):
            if job.future.done():
                continue
            if isinstance(result, Exception):
                job.future.set_exception(result)
            else:
                job.future.set_result(Done(result, len(batch), started - job.arrived, seconds))
        if self.on_batch is not None:
            self.on_batch(BatchStats(len(batch), [started - job.arrived for job in batch], seconds))
