"""CPU of one conditional GET answered 304: notifier's fetcher against general clients.

    .venv/bin/python benchmarks/conditional_get.py --requests 5000 --rounds 3

Why this exists: an unchanged feed is one conditional GET answered 304, and a daemon with
10,000 feeds makes 10,000 of them a cycle; the client's own CPU per request is then most
of the cycle's. This serves 1,000 feeds from nginx on 16 loopback addresses (as
side_by_side.py does), learns each feed's validators once, and then, in a fresh process
per variant and round (taking turns), sends `--requests` conditional GETs, 50 at a time,
and prints the process's CPU per request (user+sys over the timed part only):

- `notifier`: `notifier.fetch.Fetcher`, as the poller calls it (its own HTTP/1.1,
  `notifier/http1.py`, with its slots, budget and checks);
- `aiohttp`: one `aiohttp.ClientSession`, the way the fetcher used it before (no
  decompression, no redirects, the body read in chunks);
- `httpx`: one `httpx.AsyncClient` (streamed, no redirects).

Needs nginx (installed from Debian's packages if missing, as side_by_side.py does).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from side_by_side import (
    ensure_nginx,
    free_port,
    site,
    start_nginx,
    wait_for_port,
    write_feeds,
)

FEEDS = 1000
AT_ONCE = 50
VARIANTS = ("notifier", "aiohttp", "httpx")


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _urls(origin: str) -> list[str]:
    kinds = ("comments", "posts")
    return [f"{site(origin, i)}/{kinds[i % 2]}/{i}.xml" for i in range(FEEDS)]


async def _notifier(urls: list[str], validators: dict[str, tuple[str, str]],
                    count: int) -> float:
    from notifier.fetch import Fetcher, FetchSettings

    async with Fetcher(FetchSettings(max_connections=AT_ONCE, per_host=AT_ONCE)) as fetcher:
        async def one(url: str) -> None:
            etag, modified = validators[url]
            result = await fetcher.fetch(url, etag=etag, last_modified=modified)
            assert result.status == 304, (result.status, result.error)

        await _waves(urls, count, one)  # warm: connections open
        start = _cpu()
        await _waves(urls, count, one)
        return _cpu() - start


async def _aiohttp(urls: list[str], validators: dict[str, tuple[str, str]],
                   count: int) -> float:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=AT_ONCE, limit_per_host=0)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
        async def one(url: str) -> None:
            etag, modified = validators[url]
            headers = {"If-None-Match": etag, "If-Modified-Since": modified}
            async with session.get(url, headers=headers, allow_redirects=False) as reply:
                assert reply.status == 304
                async for _ in reply.content.iter_chunked(65536):
                    pass

        await _waves(urls, count, one)
        start = _cpu()
        await _waves(urls, count, one)
        return _cpu() - start


async def _httpx(urls: list[str], validators: dict[str, tuple[str, str]],
                 count: int) -> float:
    import httpx

    limits = httpx.Limits(max_connections=AT_ONCE, max_keepalive_connections=AT_ONCE)
    async with httpx.AsyncClient(limits=limits) as client:
        async def one(url: str) -> None:
            etag, modified = validators[url]
            headers = {"If-None-Match": etag, "If-Modified-Since": modified}
            async with client.stream("GET", url, headers=headers,
                                     follow_redirects=False) as reply:
                assert reply.status_code == 304
                async for _ in reply.aiter_raw():
                    pass

        await _waves(urls, count, one)
        start = _cpu()
        await _waves(urls, count, one)
        return _cpu() - start


async def _waves(urls: list[str], count: int, one: object) -> None:
    gate = asyncio.Semaphore(AT_ONCE)

    async def bounded(url: str) -> None:
        async with gate:
            await one(url)  # type: ignore[operator]

    await asyncio.gather(*(bounded(urls[i % len(urls)]) for i in range(count)))


def _child(variant: str, origin: str, validators_file: str, count: int) -> None:
    with contextlib.suppress(ImportError):
        import uvloop
        uvloop.install()
    validators = {k: (v[0], v[1]) for k, v in json.loads(Path(validators_file).read_text()).items()}
    urls = _urls(origin)
    job = {"notifier": _notifier, "aiohttp": _aiohttp, "httpx": _httpx}[variant]
    spent = asyncio.run(job(urls, validators, count))
    print(json.dumps({"variant": variant, "us_per_request": spent / count * 1e6}))


async def _learn(urls: list[str]) -> dict[str, tuple[str, str]]:
    from notifier.fetch import Fetcher, FetchSettings

    async with Fetcher(FetchSettings(max_connections=AT_ONCE, per_host=AT_ONCE)) as fetcher:
        results = await asyncio.gather(*(fetcher.fetch(u) for u in urls))
    failed = [(r.url, r.status, r.error) for r in results if not r.etag]
    if failed:
        raise RuntimeError(f"{len(failed)} feeds gave no validators, e.g. {failed[:3]}")
    return {r.url: (r.etag or "", r.last_modified or "") for r in results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", nargs=3, metavar=("VARIANT", "ORIGIN", "VALIDATORS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child[0], args.child[1], args.child[2], args.requests)
        return
    work = Path(tempfile.mkdtemp(prefix="notifier-get-"))
    work.chmod(0o755)  # nginx's worker runs as another user
    server = None
    try:
        port = free_port()
        origin = f"http://127.0.0.1:{port}"
        write_feeds(work / "www", origin, FEEDS, changed=False)
        server = start_nginx(ensure_nginx(), work, work / "www", port)
        wait_for_port(port)
        validators = asyncio.run(_learn(_urls(origin)))
        stored = work / "validators.json"
        stored.write_text(json.dumps(validators))
        figures: dict[str, list[float]] = {v: [] for v in VARIANTS}
        for _ in range(args.rounds):
            for variant in VARIANTS:
                done = subprocess.run(
                    [sys.executable, __file__, "--requests", str(args.requests),
                     "--child", variant, origin, str(stored)],
                    capture_output=True, text=True, timeout=600, check=True)
                figures[variant].append(json.loads(done.stdout)["us_per_request"])
        load = os.getloadavg()[0]
        print(f"{args.requests} conditional GETs answered 304 per run, {AT_ONCE} at a time, "
              f"nginx on loopback; {args.rounds} rounds taking turns; load {load:.1f}")
        print("| client | CPU per request, min | median |")
        print("| --- | ---: | ---: |")
        for variant in VARIANTS:
            values = figures[variant]
            print(f"| {variant} | {min(values):.0f} us | {statistics.median(values):.0f} us |")
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
