"""Runs the benchmark scenarios side by side and writes bench/results/latest.{json,md}.

    python -m bench            # full run
    python -m bench --quick    # under 3 minutes: fewer streams and pairs, shorter loops

Throughput is reported as a ratio to the ceiling (the cheapest authenticated route)
measured on the same server in the same run, so figures compare across machines."""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path

from bench import ceiling, chat, cluster, e2ee, erasure, logins, streams, upload
from bench.common import Figure, Report, create_user, raise_nofile_limit, running_server, write_results

RESULTS = Path(__file__).resolve().parent / "results"
SCENARIOS = ("ceiling", "chat", "logins", "streams", "upload", "erasure", "cluster", "e2ee")


@dataclass(frozen=True)
class Plan:
    """How big and how long each scenario runs."""

    ceiling_seconds: float
    chat_pairs: tuple[int, ...]
    chat_seconds: float
    idle_streams: int
    idle_seconds: float
    storm_seconds: float
    erasure_seconds: float
    cluster_messages: int  # per route, one at a time
    cluster_files: int  # 20 MiB uploads per store
    e2ee_messages: int  # per body, side and step (encrypt, decrypt)
    e2ee_safety_numbers: int  # per side
    e2ee_seconds: float  # the cap on each of those loops


FULL = Plan(
    ceiling_seconds=10,
    chat_pairs=(16, 128),
    chat_seconds=10,
    idle_streams=1000,
    idle_seconds=20,
    storm_seconds=10,
    erasure_seconds=10,
    cluster_messages=50,
    cluster_files=3,
    e2ee_messages=2000,
    e2ee_safety_numbers=20,
    e2ee_seconds=20,
)
QUICK = Plan(
    ceiling_seconds=5,
    chat_pairs=(16,),
    chat_seconds=5,
    idle_streams=300,
    idle_seconds=8,
    storm_seconds=5,
    erasure_seconds=5,
    cluster_messages=20,
    cluster_files=1,
    e2ee_messages=500,
    e2ee_safety_numbers=5,
    e2ee_seconds=4,
)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the short run (under 3 minutes)")
    parser.add_argument(
        "--only", action="append", choices=SCENARIOS, help="run just this scenario (repeatable)"
    )
    parser.add_argument(
        "--pairs", type=int, action="append", help="chat pairs instead of the plan's (repeatable)"
    )
    parser.add_argument("--streams", type=int, help="idle streams instead of the plan's")
    return parser.parse_args(argv)


def _attempt(report: Report, name: str, scenario: Callable[[], list[Figure]]) -> list[Figure]:
    """Run one scenario and keep its figures; a crash becomes a failed row and the run goes on."""
    started = time.monotonic()
    try:
        figures = scenario()
    except Exception as exc:
        traceback.print_exc()
        figures = []
        report.figures.append(Figure(name, "scenario crashed", None, target="completes", passed=False))
        report.notes.append(f"{name} crashed: {exc!r}"[:500])
    report.figures += figures
    print(f"  {name}: {time.monotonic() - started:.0f} s", file=sys.stderr)
    return figures


def _run(report: Report, plan: Plan, wanted: list[str]) -> None:
    """The scenarios in `wanted`, on servers started for them and always stopped after."""
    if {"ceiling", "chat", "logins"} & set(wanted):
        # One server for the ceiling and every figure reported as a ratio to it.
        with running_server() as server:
            url = server.url
            yardstick = create_user(url, "yardstick")
            found = _attempt(report, "ceiling", partial(ceiling.run, url, yardstick, plan.ceiling_seconds))
            rate = found[0].value if found else None  # the first figure is the ceiling itself
            if "chat" in wanted:
                for n in plan.chat_pairs:
                    _attempt(report, f"chat {n} pairs", partial(chat.run, url, rate, n, plan.chat_seconds))
            if "logins" in wanted:
                _attempt(report, "logins", partial(logins.run, url, yardstick, rate, plan.storm_seconds))
    if "streams" in wanted:
        # A fresh server, so that memory per stream is not blurred by what earlier scenarios left.
        with running_server() as server:
            _attempt(report, "streams", partial(streams.run, server, plan.idle_streams, plan.idle_seconds))
    if "upload" in wanted:
        _attempt(report, "upload", upload.run)
    if "erasure" in wanted:
        with running_server() as server:  # its own database, so the deletions free real pages
            _attempt(report, "erasure", partial(erasure.run, server.url, plan.erasure_seconds))
    if "cluster" in wanted:  # starts its own two nodes, services and one-node baseline
        _attempt(report, "cluster", partial(cluster.run, plan.cluster_messages, plan.cluster_files))
    if "e2ee" in wanted:  # no server: Python in process, the browser on a page of its own
        run = partial(e2ee.run, plan.e2ee_messages, plan.e2ee_seconds, plan.e2ee_safety_numbers)
        _attempt(report, "e2ee", run)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    plan = QUICK if args.quick else FULL
    plan = replace(
        plan, chat_pairs=tuple(args.pairs or plan.chat_pairs), idle_streams=args.streams or plan.idle_streams
    )
    wanted = [name for name in SCENARIOS if name in (args.only or SCENARIOS)]
    mode = "quick" if args.quick else "full"
    if args.only or args.pairs or args.streams:
        mode += f", custom: {' '.join(sys.argv[1:] if argv is None else argv)}"
    report = Report(mode, time.strftime("%Y-%m-%d %H:%M:%S %z"), plan=asdict(plan))
    raise_nofile_limit()
    load_before, began = os.getloadavg()[0], time.monotonic()

    try:
        _run(report, plan, wanted)
    except Exception as exc:  # e.g. a server that does not start: still write what there is
        traceback.print_exc()
        report.figures.append(Figure("run", "aborted", None, target="completes", passed=False))
        report.notes.append(f"run aborted: {exc!r}"[:500])

    report.notes.append(
        f"total time {time.monotonic() - began:.0f} s on {os.cpu_count()} CPUs shared by client and server; "
        f"load average before {load_before:.1f}, after {os.getloadavg()[0]:.1f} (other work skews figures)"
    )
    if args.quick:
        report.notes.append(
            f"quick mode: {plan.idle_streams} idle streams (the full run opens 1,000), "
            f"chat pairs {', '.join(map(str, plan.chat_pairs))} (full: 16 and 128), "
            f"{plan.e2ee_messages} e2ee messages per loop (full: 2,000), shorter loops"
        )
    print(write_results(report, RESULTS))
    print(f"written: {RESULTS / 'latest.json'}, {RESULTS / 'latest.md'}")
    return 1 if any(f.target == "completes" for f in report.figures) else 0


if __name__ == "__main__":
    sys.exit(main())
