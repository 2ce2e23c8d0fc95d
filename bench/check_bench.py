"""Benchmark of `mailbridge check`: 1,000 domains of 100 aliases each.

The specs are written as YAML files into a temporary folder and go
through the same path as the command: `load_specs` (with the cyclic
garbage collector paused, as the command does), `build_graph`,
`run_checks`. The script prints the total, its ratio to the 2-second
target, and the split between loading and graph plus rules.

Run: .venv/bin/python bench/check_bench.py [--domains N] [--aliases N]
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from pathlib import Path

from mailbridge.perf import paused_gc
from mailbridge.routing import build_graph, has_errors, run_checks
from mailbridge.spec import LoadedSpec, load_specs

TARGET_SECONDS = 2.0


def spec_text(index: int, domains: int, aliases: int) -> str:
    """One domain: two mailboxes, `aliases` aliases, a catch-all.

    Aliases form short chains inside the domain, point into the next
    domain (so routing crosses domains everywhere) and out to Gmail.
    Every tenth domain also has a fetch job, marked as a backup path.
    """
    domain = f"d{index:05d}.example"
    neighbour = f"d{(index + 1) % domains:05d}.example"
    lines = [
        "version: 1",
        f"domain: {domain}",
        f"mail_host: {{hostname: mx.{domain}, ipv4: [203.0.113.10]}}",
        "mailboxes:",
        f'  - {{address: owner@{domain}, password: "secret:owner"}}',
        f'  - {{address: team@{domain}, password: "secret:team"}}',
        "forwarders:",
    ]
    for alias in range(aliases):
        kind = alias % 4
        if kind == 0:
            to = [f"owner@{domain}", f"user{index}.{alias}@gmail.com"]
        elif kind == 1:
            to = [f"a{alias - 1}@{domain}", f"team@{domain}"]
        elif kind == 2:
            to = [f"a{alias - 1}@{neighbour}"]
        else:
            to = [f"a{alias - 1}@{domain}", f"unknown{alias}@{domain}"]
        lines.append(f"  - {{address: a{alias}@{domain}, to: [{', '.join(to)}]}}")
    lines.append(f"  - {{address: '*@{domain}', to: [owner@{domain}]}}")
    if index % 10 == 0:
        lines += [
            "fetch:",
            "  - name: isp",
            "    pop3: {host: pop.isp.example, username: u, password: 'secret:p'}",
            f"    deliver_to: user{index}.0@gmail.com",
            f"    backup_of: a0@{domain}",
            "    via: imap",
            "    imap: {password: 'secret:gmail'}",
        ]
    return "\n".join(lines) + "\n"


def write_specs(folder: Path, domains: int, aliases: int) -> int:
    size = 0
    for index in range(domains):
        text = spec_text(index, domains, aliases)
        (folder / f"d{index:05d}.example.yaml").write_text(text, encoding="utf-8")
        size += len(text)
    return size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domains", type=int, default=1000)
    parser.add_argument("--aliases", type=int, default=100)
    parser.add_argument(
        "--scaling",
        action="store_true",
        help="also time graph + rules on 1/8, 1/4, 1/2 and all of the specs",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="mailbridge-bench-") as tmp:
        folder = Path(tmp)
        size = write_specs(folder, args.domains, args.aliases)
        print(
            f"specs: {args.domains} domains x {args.aliases} aliases, "
            f"{size / 1e6:.1f} MB of YAML in {folder}"
        )

        marks = [_now()]
        # As `mailbridge check` loads: with the cyclic collector paused.
        with paused_gc():
            loaded = load_specs([folder])
        marks.append(_now())
        graph = build_graph(loaded)
        marks.append(_now())
        findings = run_checks(loaded, graph)
        marks.append(_now())
        if args.scaling:
            scaling(loaded)

    print(f"graph: {len(graph.nodes)} nodes, {len(graph.edges)} edges")
    errors = sum(1 for f in findings if f.severity == "error")
    print(
        f"findings: {len(findings)} ({errors} errors, "
        f"{'exit 1' if has_errors(findings) else 'exit 0'})"
    )
    print(f"machine: a 10M-step Python loop takes {_calibrate():.2f} s of CPU")
    print(f"{'phase':<24}{'wall s':>8}{'cpu s':>8}")
    phases = ["load (YAML + models)", "graph", "rules"]
    for name, before, after in zip(phases, marks, marks[1:], strict=False):
        print(f"{name:<24}{after[0] - before[0]:8.3f}{after[1] - before[1]:8.3f}")
    rows = [
        ("graph + rules", marks[1], marks[3]),
        ("total check", marks[0], marks[3]),
    ]
    for name, before, after in rows:
        wall, cpu = after[0] - before[0], after[1] - before[1]
        print(
            f"{name:<24}{wall:8.3f}{cpu:8.3f}   of the {TARGET_SECONDS:.0f} s "
            f"target: {wall / TARGET_SECONDS:.2f}x (wall), "
            f"{cpu / TARGET_SECONDS:.2f}x (cpu)"
        )


def scaling(loaded: list[LoadedSpec]) -> None:
    """Graph + rules on growing shares of the specs: linear means flat µs."""
    print(f"{'domains':>8}{'forwarders':>12}{'cpu s':>8}{'µs per forwarder':>18}")
    for share in (8, 4, 2, 1):
        part = loaded[: len(loaded) // share]
        forwarders = sum(len(s.spec.forwarders) for s in part)
        # Settle the collector first, so no row pays for an earlier one.
        gc.collect()
        before = time.process_time()
        run_checks(part, build_graph(part))
        cpu = time.process_time() - before
        print(f"{len(part):8d}{forwarders:12d}{cpu:8.3f}{cpu / forwarders * 1e6:18.1f}")


def _now() -> tuple[float, float]:
    """Wall clock and this process's CPU time: the machine may be shared."""
    return time.perf_counter(), time.process_time()


def _calibrate() -> float:
    start = time.process_time()
    total = 0
    for step in range(10_000_000):
        total += step
    return time.process_time() - start


if __name__ == "__main__":
    main()
