"""The verify tests' DNS world: Knot serving good and broken zones.

Every domain's zone is what a deploy of its spec would publish, then broken
on purpose where the domain's name says so; `inc.test` holds SPF include
targets, `other.test` authorizes DMARC reports, and a reverse zone holds
the PTR records.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from mailbridge.dns.dkim import generate_key, write_key
from mailbridge.dns.policy import mta_sts_policy
from mailbridge.spec.models import DomainSpec
from mailbridge.verify import Report, VerifyOptions
from mailbridge.verify.runner import Subject, verify_many
from tests.servers.knot import KnotServer, start_knot
from tests.verify.certs import TestCA
from tests.verify.https import PolicyServer
from tests.verify.zones import drop, plain_zone, spec_data, spec_zone, with_values

DKIM = {"selectors": [{"name": "s1", "algorithm": "ed25519"}]}

INC_ZONE = "\n".join(
    [
        'ok TXT "v=spf1 ip4:192.0.2.0/24 -all"',
        'deep TXT "v=spf1 '
        + " ".join(f"a:h{i}.inc.test" for i in range(10))
        + ' -all"',
        *(f"h{i} A 192.0.2.{i + 1}" for i in range(10)),
        'void TXT "v=spf1 a:nx1.inc.test a:nx2.inc.test a:nx3.inc.test -all"',
        'manymx TXT "v=spf1 mx -all"',
        *(f"manymx MX {i} m{i}.inc.test." for i in range(11)),
        'loop TXT "v=spf1 include:loop.inc.test -all"',
    ]
)
OTHER_ZONE = 'good.test._report._dmarc TXT "v=DMARC1"\n'
REVERSE_ZONE = """\
10 PTR mx1.good.test.
20 PTR wrong-name.example.net.
"""


@dataclass
class World:
    knot: KnotServer
    policy: PolicyServer
    ca: TestCA
    keys: Path
    specs: dict[str, DomainSpec]
    data: dict[str, dict[str, object]]

    def write_spec(self, domain: str, folder: Path) -> Path:
        """The domain's spec as a YAML file in `folder`."""
        path = folder / f"{domain}.yaml"
        path.write_text(yaml.safe_dump(self.data[domain], sort_keys=False))
        return path

    def options(self, **extra: object) -> VerifyOptions:
        values: dict[str, object] = {
            "resolver": f"127.0.0.1:{self.knot.port}",
            "check_tls": False,
            "mta_sts_address": "127.0.0.1",
            "mta_sts_port": self.policy.port,
            "ca_file": self.ca.path,
            "timeout": 2.0,
        }
        values.update(extra)
        return VerifyOptions.model_validate(values)

    def verify(
        self, *domains: str, bare: bool = False, **extra: object
    ) -> list[Report]:
        options = self.options(**extra)
        subjects = [
            Subject(d) if bare else Subject.from_spec(self.specs[d], self.keys)
            for d in domains
        ]
        return asyncio.run(verify_many(subjects, options))


def _key_value(keys: Path, domain: str) -> str:
    pair = generate_key("ed25519")
    write_key(keys, domain, "s1", pair)
    return pair.record_value()


@contextlib.contextmanager
def build_world(
    tmp_path_factory: pytest.TempPathFactory, test_ca: TestCA
) -> Iterator[World]:
    """Knot and the policy server, running until the block ends."""
    keys = tmp_path_factory.mktemp("keys")
    common = {
        "dkim": DKIM,
        "mta_sts": {"mode": "enforce"},
        "tls_rpt": {"rua": ["mailto:tlsrpt@example.net"]},
    }
    data = {
        "good.test": spec_data(
            "good.test",
            "203.0.113.10",
            spf={"include": ["ok.inc.test"]},
            dmarc={"rua": ["mailto:dmarc@other.test"]},
            no_mail=["www.good.test"],
            **common,
        ),
        "lookups.test": spec_data(
            "lookups.test", "203.0.113.10", spf={"include": ["deep.inc.test"]}
        ),
        "void.test": spec_data(
            "void.test", "203.0.113.10", spf={"include": ["void.inc.test"]}
        ),
        "manymx.test": spec_data(
            "manymx.test", "203.0.113.10", spf={"include": ["manymx.inc.test"]}
        ),
        "loop.test": spec_data(
            "loop.test", "203.0.113.10", spf={"include": ["loop.inc.test"]}
        ),
        "drift.test": spec_data(
            "drift.test",
            "203.0.113.20",
            dmarc={"rua": ["mailto:dmarc@other.test"]},
            no_mail=["www.drift.test"],
            **common,
        ),
        "noptr.test": spec_data("noptr.test", "203.0.113.30"),
        "redirect.test": spec_data("redirect.test", "203.0.113.10"),
    }
    specs = {name: DomainSpec.model_validate(d) for name, d in data.items()}
    zones = {
        "inc.test": plain_zone("inc.test", INC_ZONE),
        "other.test": plain_zone("other.test", OTHER_ZONE),
        "empty.test": plain_zone("empty.test", ""),
        "113.0.203.in-addr.arpa": plain_zone("113.0.203.in-addr.arpa", REVERSE_ZONE),
    }
    for domain, spec in specs.items():
        public = {"s1": _key_value(keys, domain)} if spec.dkim else {}
        zones[domain] = spec_zone(spec, public)
    # drift.test: what an operator changed by hand after the last deploy.
    stray = generate_key("ed25519").record_value()
    zones["drift.test"] = spec_zone(
        specs["drift.test"],
        {"s1": stray},
        {
            ("drift.test", "MX"): with_values("10 mx9.drift.test."),
            ("www.drift.test", "MX"): drop,
            ("_dmarc.drift.test", "TXT"): with_values(
                '"v=DMARC1; p=maybe; rua=mailto:dmarc@other.test"'
            ),
            # An id left from an older policy, and reports sent elsewhere.
            ("_mta-sts.drift.test", "TXT"): with_values('"v=STSv1; id=stale1"'),
            ("_smtp._tls.drift.test", "TXT"): with_values(
                '"v=TLSRPTv1; rua=mailto:reports@elsewhere.example"'
            ),
        },
    )
    # redirect.test: its live SPF hands over to a record of 10 lookups.
    zones["redirect.test"] = spec_zone(
        specs["redirect.test"],
        {},
        {("redirect.test", "TXT"): with_values('"v=spf1 redirect=deep.inc.test"')},
    )
    leaf = test_ca.issue("mta-sts", ["mta-sts.good.test", "mta-sts.drift.test"])
    knot = start_knot(tmp_path_factory.mktemp("knot"), zones)
    try:
        with PolicyServer(leaf.cert, leaf.key) as policy:
            policy.policies["mta-sts.good.test"] = mta_sts_policy(specs["good.test"])
            policy.policies["mta-sts.drift.test"] = (
                "version: STSv1\r\nmode: enforce\r\nmx: mx7.elsewhere.example\r\n"
                "max_age: 604800\r\n"
            )
            yield World(knot, policy, test_ca, keys, specs, data)
    finally:
        knot.stop()
