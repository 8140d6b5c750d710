"""Deadlines sharing one timer per tick behave as `asyncio.timeout` does for their callers."""

from __future__ import annotations

import asyncio

import pytest

from notifier.budget import TICK, Budget, deadline, pause_budget


def test_a_deadline_cuts_off_the_wait_at_its_time_and_not_before() -> None:
    async def drive() -> float:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(TimeoutError):
            async with deadline(0.2):
                await asyncio.sleep(5)
        return loop.time() - started

    waited = asyncio.run(drive())
    assert 0.2 <= waited < 2.0


def test_deadlines_left_in_time_never_fire_and_those_overrun_do() -> None:
    """Many deadlines end in one tick: the work that finished is left alone, the rest cut."""
    async def one(work: float) -> str:
        try:
            async with deadline(0.1):
                await asyncio.sleep(work)
        except TimeoutError:
            return "cut"
        await asyncio.sleep(0.2)  # past the deadline it had: nothing may fire in here
        return "done"

    async def drive() -> list[str]:
        return await asyncio.gather(*(one(0.0 if n % 2 else 3.0) for n in range(50)))

    assert asyncio.run(drive()) == ["cut", "done"] * 25


def test_a_cancellation_from_outside_is_not_taken_for_a_timeout() -> None:
    async def drive() -> None:
        async def inner() -> None:
            async with deadline(5.0):
                await asyncio.sleep(5)

        task = asyncio.create_task(inner())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(drive())


def test_a_paused_budget_does_not_run_out_and_runs_on_when_resumed() -> None:
    async def drive() -> tuple[bool, bool]:
        loop = asyncio.get_running_loop()
        budget = Budget(0.2)
        async with budget:
            budget.start(loop)
            resume = pause_budget(budget, loop)
            await asyncio.sleep(0.4)  # twice the budget, standing still
            resume()
            finished = True
        cut = False
        try:
            budget = Budget(0.1)
            async with budget:
                budget.start(loop)
                await asyncio.sleep(0.1 + 20 * TICK)
        except TimeoutError:
            cut = True
        return finished, cut

    assert asyncio.run(drive()) == (True, True)
