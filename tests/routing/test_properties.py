"""Random routing set-ups: the linear algorithms agree with brute force.

Specs are built as models here (not YAML) so hypothesis can try many of
them quickly; the YAML path and its locations are covered by the other
tests. The brute force below follows mail from the specs on its own,
without the graph builder, and searches by repeated depth-first search.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from mailbridge.routing import build_graph, evaluate
from mailbridge.routing.paths import Analysis, duplicate_paths, longest_chains
from mailbridge.routing.scc import strongly_connected
from mailbridge.spec.models import DomainSpec

MANAGED = ["d0.test", "d1.test", "d2.test"]
LOCALS = ["a", "b", "c", "d"]
OUTSIDE = [
    "x@ext.test",
    "y@ext.test",
    "a.b@gmail.com",
    "ab@gmail.com",
    "a.b+tag@googlemail.com",
    "c@gmail.com",
]
ADDRESSES = [f"{local}@{domain}" for domain in MANAGED for local in LOCALS] + OUTSIDE


def canonical(address: str) -> str:
    """Gmail's view of an address, written independently of the package."""
    local, domain = address.split("@")
    if domain in ("gmail.com", "googlemail.com"):
        return local.split("+")[0].replace(".", "") + "@gmail.com"
    return address


targets = st.lists(st.sampled_from(ADDRESSES), min_size=1, max_size=3)
mailbox_locals = st.sets(st.sampled_from(LOCALS), max_size=2)
alias_targets = st.dictionaries(st.sampled_from(LOCALS), targets, max_size=4)
catch_all_targets = st.none() | targets
external_forwards = st.lists(
    st.fixed_dictionaries({"from": st.sampled_from(ADDRESSES), "to": targets}),
    max_size=2,
)
# A fetch job: the inbox it delivers to, and maybe the forwarder it backs up.
fetch_jobs = st.none() | st.tuples(
    st.sampled_from(OUTSIDE), st.none() | st.sampled_from(ADDRESSES)
)


def fetch_entry(deliver_to: str, backup_of: str | None) -> dict[str, object]:
    return {
        "name": "job",
        "pop3": {"host": "pop.ext.test", "username": "u", "password": "secret:p"},
        "deliver_to": deliver_to,
        "backup_of": backup_of,
        "via": "imap",
        "imap": {"password": "secret:p"},
    }


@st.composite
def domain_specs(draw: st.DrawFn) -> list[DomainSpec]:
    specs = []
    for domain in MANAGED:
        aliases = draw(alias_targets)
        forwarders = [
            {"address": f"{local}@{domain}", "to": to, "backup": draw(st.booleans())}
            for local, to in aliases.items()
        ]
        catch_all = draw(catch_all_targets)
        if catch_all is not None:
            forwarders.append({"address": f"*@{domain}", "to": catch_all})
        data = {
            "version": 1,
            "domain": domain,
            "mail_host": {"hostname": f"mx.{domain}"},
            "mailboxes": [
                {"address": f"{b}@{domain}", "password": "secret:p"}
                for b in sorted(draw(mailbox_locals))
            ],
            "forwarders": forwarders,
            "external_forwards": draw(external_forwards),
            "fetch": [fetch_entry(*job)] if (job := draw(fetch_jobs)) else [],
        }
        specs.append(DomainSpec.model_validate(data))
    return specs


@dataclass
class BruteForce:
    """Where mail goes, read straight from the specs."""

    hops: Mapping[str, list[tuple[str, int]]]

    @classmethod
    def of(cls, specs: Sequence[DomainSpec]) -> BruteForce:
        hops: dict[str, list[tuple[str, int]]] = {}
        nodes = {canonical(a) for a in ADDRESSES}
        for spec in specs:
            boxes = {m.address for m in spec.mailboxes}
            aliases = {f.address: f.to for f in spec.forwarders}
            catch_all = f"*@{spec.domain}"
            nodes.add(catch_all)
            for address in [a for a in ADDRESSES if spec.owns(a)] + [catch_all]:
                if address in aliases:
                    keep = address in boxes
                    hops[address] = [
                        (canonical(t), 1)
                        for t in aliases[address]
                        if not (keep and t == address)
                    ]
                elif address not in boxes and catch_all in aliases:
                    hops[address] = [(catch_all, 0)]
        for spec in specs:
            for ext in spec.external_forwards:
                source = canonical(ext.from_)
                hops.setdefault(source, [])
                hops[source].extend((canonical(t), 1) for t in ext.to)
        return cls({n: hops.get(n, []) for n in nodes})

    def reachable(self, start: str) -> set[str]:
        """Every node one or more hops from `start`."""
        seen: set[str] = set()
        stack = [t for t, _ in self.hops[start]]
        while stack:
            node = stack.pop()
            if node not in seen:
                seen.add(node)
                stack.extend(t for t, _ in self.hops[node])
        return seen

    def on_cycle(self) -> set[str]:
        return {n for n in self.hops if n in self.reachable(n)}

    def longest(self, start: str) -> int:
        """Longest weighted path from `start`; only for nodes off every loop."""
        return max((w + self.longest(t) for t, w in self.hops[start]), default=0)


@settings(max_examples=150, deadline=None)
@given(domain_specs())
def test_loop_verdict_matches_brute_force(specs: list[DomainSpec]) -> None:
    brute = BruteForce.of(specs)
    analysis = Analysis.of(build_graph(specs))
    assert analysis.on_cycle() == brute.on_cycle()


@settings(max_examples=150, deadline=None)
@given(domain_specs())
def test_each_loop_group_reported_once_with_a_real_cycle(
    specs: list[DomainSpec],
) -> None:
    brute = BruteForce.of(specs)
    cyclic = brute.on_cycle()
    reach = {n: brute.reachable(n) for n in cyclic}
    groups = {
        frozenset(m for m in cyclic if m in reach[n] and n in reach[m]) for n in cyclic
    }
    found = [
        item.finding
        for item in evaluate(specs)
        if item.finding.rule in ("loop", "self-alias")
    ]
    assert len(found) == len(groups)
    for finding in found:
        if finding.rule != "loop":
            continue
        cycle = finding.message.removeprefix("forwarding loop: ").split(" -> ")
        assert cycle[0] == cycle[-1]
        for source, target in zip(cycle, cycle[1:], strict=False):
            assert canonical(target) in {t for t, _ in brute.hops[canonical(source)]}


@settings(max_examples=150, deadline=None)
@given(domain_specs())
def test_chain_lengths_match_brute_force_off_loops(specs: list[DomainSpec]) -> None:
    brute = BruteForce.of(specs)
    cyclic = brute.on_cycle()
    graph = build_graph(specs)
    analysis = Analysis.of(graph)
    chains = longest_chains(analysis)
    for node in brute.hops:
        if node in cyclic or brute.reachable(node) & cyclic:
            continue
        position = graph.index.get(node)
        if position is None:
            continue  # never mentioned: no node, and no hops either
        component = analysis.components.of[position]
        assert chains.hops[component] == brute.longest(node), node


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=1, max_value=12).flatmap(
        lambda n: st.lists(
            st.lists(st.integers(min_value=0, max_value=n - 1), max_size=3),
            min_size=n,
            max_size=n,
        )
    )
)
def test_components_are_mutual_reachability(adjacency: list[list[int]]) -> None:
    def reach(start: int) -> set[int]:
        seen: set[int] = set()
        stack = list(adjacency[start])
        while stack:
            node = stack.pop()
            if node not in seen:
                seen.add(node)
                stack.extend(adjacency[node])
        return seen

    reached = [reach(n) for n in range(len(adjacency))]
    components = strongly_connected(adjacency)
    for a in range(len(adjacency)):
        for b in range(len(adjacency)):
            together = components.of[a] == components.of[b]
            mutual = a == b or (b in reached[a] and a in reached[b])
            assert together == mutual
        assert components.on_cycle(a) == (a in reached[a])
    for source, targets_ in enumerate(adjacency):
        for target in targets_:
            assert components.of[target] <= components.of[source]


DUPLICATE = re.compile(
    r"two delivery paths into (\S+): forwarder (\S+) and fetch job (\S+) of (\S+)$"
)


@settings(max_examples=150, deadline=None)
@given(domain_specs())
def test_duplicate_paths_match_brute_force(specs: list[DomainSpec]) -> None:
    """The last forwarder before a fetch job's inbox, unless marked backup."""
    brute = BruteForce.of(specs)
    forwarders = {
        canonical(f.address): f.backup for spec in specs for f in spec.forwarders
    }

    def reaches(start: str, inbox: str) -> bool:
        """A path from `start` to `inbox` through no forwarder at all."""
        if start in forwarders:
            return False
        seen, stack = {start}, [start]
        while stack:
            node = stack.pop()
            if node == inbox:
                return True
            for target, _ in brute.hops[node]:
                if target not in forwarders and target not in seen:
                    seen.add(target)
                    stack.append(target)
        return False

    expected = set()
    for spec in specs:
        for job in spec.fetch:
            inbox = canonical(job.deliver_to)
            for source, backup in forwarders.items():
                named = job.backup_of and canonical(job.backup_of) == source
                if backup or named:
                    continue
                if any(reaches(t, inbox) for t, _ in brute.hops[source]):
                    expected.add((inbox, source, spec.domain))
    found = set()
    for item in duplicate_paths(build_graph(specs)):
        match = DUPLICATE.match(item.finding.message)
        assert match is not None, item.finding.message
        inbox, source, _, domain = match.groups()
        found.add((canonical(inbox), canonical(source), domain))
    assert found == expected
