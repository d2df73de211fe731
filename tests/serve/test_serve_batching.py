"""`translate.serve.batching.DynamicBatcher`: batches by key, size and delay; cancelled jobs; full
queues; failing batches; draining on stop."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from translate.serve.batching import BatchStats, DynamicBatcher, QueueFullError


class Recorder:
    """run_batch that records its batches and returns payload * 10; can be held on an event."""

    def __init__(self) -> None:
        self.batches: list[tuple[object, list[int]]] = []
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, key: object, payloads: list[int]) -> list[int]:
        self.gate.wait(10)
        self.batches.append((key, list(payloads)))
        if any(p < 0 for p in payloads):
            raise RuntimeError("negative payload")
        return [p * 10 for p in payloads]


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 30))


def make(recorder: Recorder, **kwargs) -> tuple[DynamicBatcher, list[BatchStats]]:
    stats: list[BatchStats] = []
    settings = {"max_batch": 4, "max_delay_s": 0.05, "max_queue": 16} | kwargs
    batcher = DynamicBatcher(recorder, executor=ThreadPoolExecutor(1), on_batch=stats.append, **settings)
    return batcher, stats


def test_concurrent_jobs_of_one_key_share_a_batch_and_get_their_own_results():
    async def scenario():
        recorder = Recorder()
        batcher, stats = make(recorder, max_delay_s=5.0)  # a full batch goes at once, not after 5 s
        batcher.start()
        started = time.monotonic()
        results = await asyncio.gather(*(batcher.submit("k", i) for i in range(4)))
        elapsed = time.monotonic() - started
        await batcher.stop()
        return recorder, stats, results, elapsed

    recorder, stats, results, elapsed = run(scenario())
    assert [done.result for done in results] == [0, 10, 20, 30]
    assert recorder.batches == [("k", [0, 1, 2, 3])]
    assert all(done.batch_size == 4 for done in results)
    assert stats[0].size == 4 and len(stats[0].queue_waits) == 4
    assert elapsed < 2.0


def test_a_lone_job_waits_at_most_max_delay():
    async def scenario():
        recorder = Recorder()
        batcher, _ = make(recorder, max_delay_s=0.2)
        batcher.start()
        started = time.monotonic()
        done = await batcher.submit("k", 7)
        elapsed = time.monotonic() - started
        await batcher.stop()
        return done, elapsed

    done, elapsed = run(scenario())
    assert done.result == 70 and done.batch_size == 1
    assert 0.15 <= elapsed < 1.5
    assert 0.15 <= done.queue_wait < 1.5


def test_keys_never_mix_and_batches_stop_at_max_batch():
    async def scenario():
        recorder = Recorder()
        batcher, _ = make(recorder, max_batch=3, max_delay_s=0.1)
        batcher.start()
        jobs = [batcher.submit("a" if i % 2 else "b", i) for i in range(10)]
        results = await asyncio.gather(*jobs)
        await batcher.stop()
        return recorder, results

    recorder, results = run(scenario())
    assert [done.result for done in results] == [i * 10 for i in range(10)]
    for key, payloads in recorder.batches:
        assert len(payloads) <= 3
        assert all(("a" if p % 2 else "b") == key for p in payloads)
    assert sorted(p for _, payloads in recorder.batches for p in payloads) == list(range(10))


def test_max_batch_one_turns_batching_off():
    async def scenario():
        recorder = Recorder()
        batcher, _ = make(recorder, max_batch=1, max_delay_s=1.0)
        batcher.start()
        started = time.monotonic()
        await asyncio.gather(*(batcher.submit("k", i) for i in range(3)))
        elapsed = time.monotonic() - started
        await batcher.stop()
        return recorder, elapsed

    recorder, elapsed = run(scenario())
    assert [payloads for _, payloads in recorder.batches] == [[0], [1], [2]]
    assert elapsed < 1.0  # a batch of 1 is full at once: no delay


def test_a_cancelled_job_is_dropped_and_its_batch_goes_on():
    async def scenario():
        recorder = Recorder()
        batcher, _ = make(recorder, max_batch=4, max_delay_s=0.3)
        batcher.start()
        tasks = [asyncio.ensure_future(batcher.submit("k", i)) for i in range(3)]
        await asyncio.sleep(0.05)  # queued; the batch waits for a fourth job until the delay is spent
        tasks[1].cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        await batcher.stop()
        return recorder, results

    recorder, results = run(scenario())
    assert isinstance(results[1], asyncio.CancelledError)
    assert results[0].result == 0 and results[2].result == 20
    assert recorder.batches == [("k", [0, 2])]


def test_a_cancelled_job_leaves_the_queue_at_once():
    # Its place is free for the next job: three later jobs make one full batch (not two and one).
    async def scenario():
        recorder = Recorder()
        batcher, _ = make(recorder, max_batch=3, max_delay_s=5.0)
        batcher.start()
        first = asyncio.ensure_future(batcher.submit("k", 0))
        await asyncio.sleep(0.05)
        first.cancel()
        await asyncio.sleep(0.05)
        waiting_after_cancel = batcher.waiting
        started = time.monotonic()
        results = await asyncio.gather(*(batcher.submit("k", i) for i in (1, 2, 3)))
        elapsed = time.monotonic() - started
        await batcher.stop()
        return recorder, results, waiting_after_cancel, elapsed

    recorder, results, waiting_after_cancel, elapsed = run(scenario())
    assert waiting_after_cancel == 0
    assert recorder.batches == [("k", [1, 2, 3])] and [r.result for r in results] == [10, 20, 30]
    assert elapsed < 2.0


def test_a_job_cancelled_while_its_batch_runs_does_not_disturb_the_others():
    async def scenario():
        recorder = Recorder()
        recorder.gate.clear()
        batcher, _ = make(recorder, max_batch=3, max_delay_s=0.01)
        batcher.start()
        tasks = [asyncio.ensure_future(batcher.submit("k", i)) for i in range(3)]
        await asyncio.sleep(0.2)  # the batch is running, held at the gate
        tasks[0].cancel()
        recorder.gate.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        after = await batcher.submit("k", 5)
        await batcher.stop()
        return recorder, results, after

    recorder, results, after = run(scenario())
    assert recorder.batches[0] == ("k", [0, 1, 2])
    assert isinstance(results[0], asyncio.CancelledError)
    assert [r.result for r in results[1:]] == [10, 20]
    assert after.result == 50


def test_a_full_queue_refuses_new_jobs():
    async def scenario():
        recorder = Recorder()
        recorder.gate.clear()
        batcher, _ = make(recorder, max_batch=1, max_delay_s=0.0, max_queue=2)
        batcher.start()
        running = asyncio.ensure_future(batcher.submit("k", 0))
        await asyncio.sleep(0.1)  # job 0 runs (held); the queue is empty again
        waiting = [asyncio.ensure_future(batcher.submit("k", i)) for i in (1, 2)]
        await asyncio.sleep(0.05)
        with pytest.raises(QueueFullError) as refused:
            await batcher.submit("k", 3)
        recorder.gate.set()
        results = await asyncio.gather(running, *waiting)
        await batcher.stop()
        return refused.value, results

    refused, results = run(scenario())
    assert (refused.waiting, refused.limit) == (2, 2)
    assert [r.result for r in results] == [0, 10, 20]


def test_a_failing_batch_fails_its_jobs_only():
    async def scenario():
        recorder = Recorder()
        batcher, _ = make(recorder, max_batch=2, max_delay_s=0.05)
        batcher.start()
        bad = await asyncio.gather(batcher.submit("k", -1), batcher.submit("k", 1), return_exceptions=True)
        good = await batcher.submit("k", 2)
        await batcher.stop()
        return bad, good

    bad, good = run(scenario())
    assert all(isinstance(r, RuntimeError) and "negative" in str(r) for r in bad)
    assert good.result == 20


def test_stop_runs_what_waits_then_refuses():
    async def scenario():
        recorder = Recorder()
        batcher, _ = make(recorder, max_batch=8, max_delay_s=10.0)
        batcher.start()
        waiting = [asyncio.ensure_future(batcher.submit("k", i)) for i in range(3)]
        await asyncio.sleep(0.05)
        started = time.monotonic()
        await batcher.stop()  # does not wait the 10 s delay
        results = await asyncio.gather(*waiting)
        with pytest.raises(RuntimeError, match="shutting down"):
            await batcher.submit("k", 9)
        return results, time.monotonic() - started

    results, elapsed = run(scenario())
    assert [r.result for r in results] == [0, 10, 20]
    assert elapsed < 5.0
