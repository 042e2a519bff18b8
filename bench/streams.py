#!/usr/bin/env python3
"""Holds N concurrent /v1/stream viewers against a running server and
measures them: events and bytes received, the first event's latency, and
the server process's RSS and CPU over the run.

Usage: bench/streams.py HTTP_HOST:PORT SERVER_PID [--streams 1000]
       [--seconds 30] [--interval-ms 1000]

Each stream watches a random viewport of about 2 x 2 km inside the SPEC's
city box, as a phone's map would. Bounded: every connection closes after
--seconds. Raise `ulimit -n` above --streams for both sides.
"""
import argparse
import asyncio
import random
import resource
import time


def rss_and_cpu(pid):
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime + stime
    return rss, ticks / 100.0


async def viewer(host, port, path, until, stats):
    started = time.monotonic()
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    await writer.drain()
    first = None
    try:
        while time.monotonic() < until:
            try:
                line = await asyncio.wait_for(reader.readline(), timeout=until - time.monotonic())
            except asyncio.TimeoutError:
                break
            if not line:
                stats["closed_early"] += 1
                break
            stats["bytes"] += len(line)
            if line.startswith(b"data: "):
                stats["events"] += 1
                if first is None:
                    first = time.monotonic() - started
                    stats["first_event_s"].append(first)
    finally:
        writer.close()


async def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("address")
    p.add_argument("server_pid", type=int)
    p.add_argument("--streams", type=int, default=1000)
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--interval-ms", type=int, default=1000)
    a = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, a.streams + 100)), hard))
    host, port = a.address.rsplit(":", 1)
    rng = random.Random(7)
    stats = {"events": 0, "bytes": 0, "closed_early": 0, "first_event_s": []}
    rss0, cpu0 = rss_and_cpu(a.server_pid)
    t0 = time.monotonic()
    until = t0 + a.seconds
    tasks = []
    for _ in range(a.streams):
        lat = rng.uniform(31.0, 31.48)
        lon = rng.uniform(121.2, 121.78)
        path = (f"/v1/stream?bbox={lon},{lat},{lon + 0.02},{lat + 0.018}"
                f"&interval_ms={a.interval_ms}&limit=500")
        tasks.append(asyncio.create_task(viewer(host, int(port), path, until, stats)))
    await asyncio.sleep(a.seconds / 2)
    rss_mid, _ = rss_and_cpu(a.server_pid)
    await asyncio.gather(*tasks, return_exceptions=True)
    rss1, cpu1 = rss_and_cpu(a.server_pid)
    elapsed = time.monotonic() - t0
    firsts = sorted(stats["first_event_s"])
    p99 = firsts[int(len(firsts) * 0.99) - 1] if firsts else float("nan")
    print(f"streams {a.streams}, {elapsed:.1f} s, interval {a.interval_ms} ms: "
          f"{stats['events']} events ({stats['events'] / elapsed:.0f}/s, "
          f"{stats['events'] / a.streams / elapsed:.2f} per stream per s), "
          f"{stats['bytes'] / elapsed / 1e6:.2f} MB/s, "
          f"{len(firsts)} streams got a first event (p50 {firsts[len(firsts) // 2] * 1000:.0f} ms, "
          f"p99 {p99 * 1000:.0f} ms), {stats['closed_early']} closed early; "
          f"server RSS {rss0 / 1e6:.0f} -> {rss_mid / 1e6:.0f} MB with them open, "
          f"CPU {100 * (cpu1 - cpu0) / elapsed:.0f}% of a core")


asyncio.run(main())
