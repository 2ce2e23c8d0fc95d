"""Benchmark: `mailbridge verify`'s DNS checks for many domains at once.

Starts a real Knot DNS on loopback serving one zone per generated domain
(plus the SPF include targets and the reverse zone), then verifies every
domain through the asyncio resolver and prints domains per second. Each
domain's DKIM key is passed as the deployed key, so the published record is
compared with it as after a real deploy. It is a benchmark, not a test: it
fails only when a domain comes out with an error or unknown finding, and it
prints how many findings were warnings.

    .venv/bin/python bench/verify_bench.py --domains 500 --concurrency 32
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mailbridge.dns.dkim import generate_key  # noqa: E402
from mailbridge.spec.models import DomainSpec  # noqa: E402
from mailbridge.verify import Status, VerifyOptions  # noqa: E402
from mailbridge.verify.deployed import DeployedKeys  # noqa: E402
from mailbridge.verify.runner import Subject, verify_many  # noqa: E402
from tests.servers.knot import start_knot  # noqa: E402
from tests.verify.zones import make_spec, plain_zone, spec_zone  # noqa: E402

INCLUDES = 'mail TXT "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 -all"\n'


def domains(count: int) -> list[tuple[DomainSpec, str, str]]:
    """Specs with SPF includes, DKIM, DMARC and a PTR each; their zones, and
    the public value of each one's DKIM key."""
    made = []
    for i in range(count):
        ip = f"198.18.{i // 250}.{i % 250 + 1}"
        spec = make_spec(
            f"d{i:04d}.bench.test",
            ip,
            spf={"include": ["mail.inc.bench.test"]},
            dkim={"selectors": [{"name": "s1", "algorithm": "ed25519"}]},
            dmarc={"policy": "reject", "rua": [f"mailto:dmarc@d{i:04d}.bench.test"]},
            no_mail=[f"www.d{i:04d}.bench.test"],
        )
        key = generate_key("ed25519").record_value()
        made.append((spec, spec_zone(spec, {"s1": key}), key))
    return made


def reverse_zones(specs: list[DomainSpec]) -> dict[str, str]:
    zones: dict[str, list[str]] = {}
    for spec in specs:
        a, b, c, d = spec.mail_host.ipv4[0].split(".")
        zones.setdefault(f"{c}.{b}.{a}.in-addr.arpa", []).append(
            f"{d} PTR {spec.mail_host.hostname}."
        )
    return {name: plain_zone(name, "\n".join(rows)) for name, rows in zones.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domains", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="  %(name)s: %(message)s")
    # The runner logs the number of DNS queries of each round.
    logging.getLogger("mailbridge.verify.runner").setLevel(logging.INFO)

    started = time.perf_counter()
    made = domains(args.domains)
    specs = [spec for spec, _, _ in made]
    zones = {spec.domain: zone for spec, zone, _ in made}
    zones["inc.bench.test"] = plain_zone("inc.bench.test", INCLUDES)
    zones.update(reverse_zones(specs))
    root = Path(tempfile.mkdtemp(prefix="mailbridge-bench-knot-"))
    knot = start_knot(root, zones)
    print(
        f"knot: {len(zones)} zones on port {knot.port}, "
        f"ready in {time.perf_counter() - started:.1f} s"
    )
    try:
        options = VerifyOptions(
            resolver=f"127.0.0.1:{knot.port}",
            check_tls=False,
            concurrency=args.concurrency,
            timeout=5.0,
        )
        subjects = [
            Subject.from_spec(spec, None, DeployedKeys(spec.domain, {"s1": key}))
            for spec, _, key in made
        ]
        for round_number in range(1, args.rounds + 1):
            t0 = time.perf_counter()
            reports = asyncio.run(verify_many(subjects, options))
            elapsed = time.perf_counter() - t0
            findings = [f for r in reports for f in r.findings]
            warned = sum(f.status == Status.WARNING for f in findings)
            bad = [r for r in reports if r.status not in (Status.OK, Status.WARNING)]
            print(
                f"round {round_number}: {len(reports)} domains, {len(findings)} "
                f"findings in {elapsed:.2f} s = {len(reports) / elapsed:.0f} "
                f"domains/s (concurrency {args.concurrency}); warnings: {warned}, "
                f"errors or unknown: {len(bad)} domains"
            )
            if bad:
                for finding in bad[0].findings:
                    if finding.status not in (Status.OK, Status.WARNING):
                        print(finding.to_text())
                return 1
    finally:
        knot.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
