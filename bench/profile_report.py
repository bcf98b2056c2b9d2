#!/usr/bin/env python3
"""Sums a libtorch profiler trace (Chrome trace JSON from ptune_step_profile --trace) per op.

    python3 bench/profile_report.py TRACE.json [--steps N] [--top 25]

Self time is an op's duration minus the ops nested in it on the same thread (the profiler's own
overhead is included in both, so use the shares, not the absolute times, and time steps without
the profiler). Prints a Markdown table: op, calls per step, self ms per step, share of the total.
"""
import argparse
import collections
import json


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("trace")
    ap.add_argument("--steps", type=int, default=1, help="steps the trace covers (per-step figures)")
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    with open(args.trace) as f:
        events = [e for e in json.load(f) if e.get("ph") == "X"]
    by_thread = collections.defaultdict(list)
    for e in events:
        by_thread[e["tid"]].append(e)
    self_us = collections.Counter()
    calls = collections.Counter()
    for evs in by_thread.values():
        evs.sort(key=lambda e: (e["ts"], -e["dur"]))
        stack = []  # [end, name, child time]
        def close(item):
            name, dur, child = item[1], item[3], item[2]
            self_us[name] += max(0.0, dur - child)
        for e in evs:
            start, dur = e["ts"], e["dur"]
            while stack and stack[-1][0] <= start:
                close(stack.pop())
            if stack:
                stack[-1][2] += dur
            stack.append([start + dur, e["name"], 0.0, dur])
            calls[e["name"]] += 1
        while stack:
            close(stack.pop())
    total = sum(self_us.values())
    print(f"| op | calls/step | self ms/step | share |")
    print("|---|---:|---:|---:|")
    for name, us in self_us.most_common(args.top):
        print(f"| {name} | {calls[name] / args.steps:.0f} | {us / 1000 / args.steps:.2f} | {100 * us / total:.1f}% |")
    print(f"| total | {sum(calls.values()) / args.steps:.0f} | {total / 1000 / args.steps:.2f} | 100% |")


if __name__ == "__main__":
    main()
