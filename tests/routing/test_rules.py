"""Each rule besides loops, on small specs written in the test."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest

from mailbridge.errors import InputError, Severity
from mailbridge.routing import RULES, evaluate, run_checks
from mailbridge.routing.rules import (
    DEFAULT_MAX_CHAIN,
    DEFAULT_MAX_FANOUT,
    dkim_weak,
    dmarc_no_rua,
    fetch_tls,
    spf_all,
    spf_lookups,
)
from mailbridge.spec import load_specs
from mailbridge.spec.models import DomainSpec
from tests.routing.helpers import WriteSpec, by_rule, check, line_of

FETCH_JOB = """
  - name: {name}
    pop3: {{host: pop.isp.example, username: u, password: "secret:p"{tls}}}
    deliver_to: {deliver_to}
    via: imap
    imap: {{password: "secret:gmail-app"}}
"""


def fetch_block(name: str, deliver_to: str, extra: str = "", tls: str = "") -> str:
    job = FETCH_JOB.format(name=name, deliver_to=deliver_to, tls=tls)
    return "fetch:" + job + (f"    {extra}\n" if extra else "")


def test_example_stacks_pass_without_errors(stacks_dir: Path) -> None:
    findings = run_checks(load_specs([stacks_dir]))
    assert [f for f in findings if f.severity == Severity.ERROR] == []


def test_registry_has_every_rule_id() -> None:
    assert set(RULES) == {
        "loop",
        "self-alias",
        "fanout",
        "chain-length",
        "duplicate-path",
        "no-route",
        "spf-lookups",
        "spf-all",
        "dmarc-no-rua",
        "dkim-weak",
        "fetch-tls",
    }
    assert all(rule.id == key and rule.summary for key, rule in RULES.items())
    assert RULES["dmarc-no-rua"].severity == Severity.WARNING


def test_defaults_match_the_documented_limits() -> None:
    assert (DEFAULT_MAX_FANOUT, DEFAULT_MAX_CHAIN) == (50, 8)


def test_fanout_over_the_default_limit(write_spec: WriteSpec, tmp_path: Path) -> None:
    targets = ", ".join(f"u{i}@gmail.com" for i in range(51))
    spec = write_spec(
        "x.com",
        f"""
        forwarders:
          - {{address: ok@x.com, to: [{targets.replace(", u50@gmail.com", "")}]}}
          - {{address: all@x.com, to: [{targets}]}}
        """,
    )
    [finding] = by_rule(check(tmp_path), "fanout")
    assert finding.message == "all@x.com forwards to 51 addresses, over the limit of 50"
    assert finding.location is not None
    assert finding.location.line == line_of(spec, "all@x.com")


def test_fanout_limit_from_the_spec(write_spec: WriteSpec, tmp_path: Path) -> None:
    write_spec(
        "x.com",
        """
        limits: {max_fanout: 2}
        forwarders:
          - {address: two@x.com, to: [a@gmail.com, b@gmail.com]}
          - {address: three@x.com, to: [a@gmail.com, b@gmail.com, c@gmail.com]}
        """,
    )
    found = by_rule(check(tmp_path), "fanout")
    assert [f.message.split()[0] for f in found] == ["three@x.com"]


def chain_spec(length: int, limits: str = "") -> str:
    """Aliases h0 -> h1 -> ... -> h<length-1> -> end@gmail.com."""
    lines = [limits, "forwarders:"]
    for i in range(length):
        target = f"h{i + 1}@x.com" if i + 1 < length else "end@gmail.com"
        lines.append(f"  - {{address: h{i}@x.com, to: [{target}]}}")
    return "\n".join(lines) + "\n"


def test_chain_of_default_limit_passes(write_spec: WriteSpec, tmp_path: Path) -> None:
    write_spec("x.com", chain_spec(8))
    assert by_rule(check(tmp_path), "chain-length") == []


def test_chain_over_default_limit_reports_its_head(
    write_spec: WriteSpec, tmp_path: Path
) -> None:
    spec = write_spec("x.com", chain_spec(9))
    [finding] = by_rule(check(tmp_path), "chain-length")
    assert finding.message.startswith(
        "forwarding chain of 9 hops from h0@x.com, over the limit of 8: "
        "h0@x.com -> h1@x.com ->"
    )
    assert finding.location is not None
    assert finding.location.line == line_of(spec, "address: h0@x.com")


def test_chain_limit_from_the_spec_counts_external_hops(
    write_spec: WriteSpec, tmp_path: Path
) -> None:
    write_spec(
        "x.com",
        """
        limits: {max_chain: 2}
        forwarders:
          - {address: start@x.com, to: [me@gmail.com]}
        external_forwards:
          - {from: me@gmail.com, to: [me@outlook.example]}
          - {from: me@outlook.example, to: [final@gmail.com]}
        """,
    )
    [finding] = by_rule(check(tmp_path), "chain-length")
    assert finding.message == (
        "forwarding chain of 3 hops from start@x.com, over the limit of 2: "
        "start@x.com -> me@gmail.com -> me@outlook.example -> final@gmail.com"
    )


def test_a_downstream_domain_over_its_own_limit_hears_of_it(
    write_spec: WriteSpec, tmp_path: Path
) -> None:
    """x.com's long chain runs on into y.com, whose own part is over y.com's
    lower limit: each spec gets its own finding, at its own head."""
    x_chain = chain_spec(5, "limits: {max_chain: 2}")
    write_spec("x.com", x_chain.replace("end@gmail.com", "g0@y.com"))
    targets = ["g1@y.com", "g2@y.com", "g3@y.com", "z@gmail.com"]
    y_chain = "".join(
        f"  - {{address: g{i}@y.com, to: [{to}]}}\n" for i, to in enumerate(targets)
    )
    write_spec("y.com", "limits: {max_chain: 3}\nforwarders:\n" + y_chain)
    found = by_rule(check(tmp_path), "chain-length")
    assert sorted(f.message.split(":")[0] for f in found) == [
        "forwarding chain of 4 hops from g0@y.com, over the limit of 3",
        "forwarding chain of 9 hops from h0@x.com, over the limit of 2",
    ]


def test_duplicate_path_without_backup_mark(
    write_spec: WriteSpec, tmp_path: Path
) -> None:
    spec = write_spec(
        "x.com",
        dedent(
            """
            forwarders:
              - {address: me@x.com, to: [me.self@gmail.com]}
            """
        )
        + fetch_block("isp", "meself@gmail.com"),
    )
    [finding] = by_rule(check(tmp_path), "duplicate-path")
    assert finding.message == (
        "two delivery paths into me.self@gmail.com: forwarder me@x.com and "
        "fetch job isp of x.com"
    )
    assert finding.fix is not None and "backup_of: me@x.com" in finding.fix
    assert finding.location is not None
    assert finding.location.line == line_of(spec, "me@x.com")


@pytest.mark.parametrize(
    ("forwarder", "job_extra"),
    [
        ("{address: me@x.com, to: [me@gmail.com], backup: true}", ""),
        ("{address: me@x.com, to: [me@gmail.com]}", "backup_of: me@x.com"),
    ],
)
def test_duplicate_path_marked_as_backup(
    write_spec: WriteSpec, tmp_path: Path, forwarder: str, job_extra: str
) -> None:
    write_spec(
        "x.com",
        f"forwarders:\n  - {forwarder}\n"
        + fetch_block("isp", "me@gmail.com", job_extra),
    )
    assert by_rule(check(tmp_path), "duplicate-path") == []


def test_duplicate_path_through_other_domain_and_external_forward(
    write_spec: WriteSpec, tmp_path: Path
) -> None:
    """The last forwarder before the inbox is reported, past external hops."""
    write_spec("x.com", fetch_block("isp", "me@gmail.com", "backup_of: a@x.com"))
    x = tmp_path / "x.com.yaml"
    x.write_text(
        x.read_text() + "forwarders:\n  - {address: a@x.com, to: [me@gmail.com]}\n"
    )
    write_spec(
        "y.net",
        """
        forwarders:
          - {address: b@y.net, to: [me@work.example]}
        external_forwards:
          - {from: me@work.example, to: [me@gmail.com]}
        """,
    )
    [finding] = by_rule(check(tmp_path), "duplicate-path")
    assert finding.message.startswith(
        "two delivery paths into me@gmail.com: forwarder b@y.net"
    )
    assert finding.location is not None
    assert finding.location.file.endswith("y.net.yaml")
    assert finding.fix is not None and "backup_of" not in finding.fix


def test_no_route_in_a_loaded_domain(write_spec: WriteSpec, tmp_path: Path) -> None:
    write_spec(
        "x.com",
        """
        forwarders:
          - {address: a@x.com, to: [typo@y.net]}
        """,
    )
    write_spec(
        "y.net",
        """
        mailboxes:
          - {address: box@y.net, password: "secret:box"}
        """,
    )
    [finding] = by_rule(check(tmp_path), "no-route")
    assert finding.severity == Severity.WARNING
    assert finding.message.startswith("typo@y.net is no mailbox")


def test_spf_lookups_over_the_limit(write_spec: WriteSpec, tmp_path: Path) -> None:
    includes = ", ".join(f"_spf{i}.example.org" for i in range(11))
    spec = write_spec("x.com", f"spf: {{include: [{includes}]}}\n")
    [finding] = by_rule(check(tmp_path), "spf-lookups")
    assert "needs 11 DNS lookups" in finding.message
    assert finding.location is not None
    assert finding.location.line == line_of(spec, "spf:")


def test_spf_lookups_at_the_limit_pass() -> None:
    assert spf_lookups("x.com", 10) is None
    assert spf_lookups("x.com", 11) is not None


def test_dmarc_none_without_rua_is_a_warning(
    write_spec: WriteSpec, tmp_path: Path
) -> None:
    write_spec("x.com", "dmarc: {policy: none}\n")
    findings = check(tmp_path)
    assert [(f.rule, f.severity) for f in findings] == [
        ("dmarc-no-rua", Severity.WARNING)
    ]


def test_spf_plus_all_is_an_error_and_question_all_a_warning(
    write_spec: WriteSpec, tmp_path: Path
) -> None:
    write_spec("x.com", 'spf: {all: "+all"}\n')
    write_spec("y.com", 'spf: {all: "?all"}\n')
    findings = check(tmp_path)
    assert sorted((f.rule, f.severity, f.path) for f in findings) == [
        ("spf-all", Severity.ERROR, ("spf", "all")),
        ("spf-all", Severity.WARNING, ("spf", "all")),
    ]
    assert spf_all("x.com", "-all") is None
    assert spf_all("x.com", "~all") is None


def test_dmarc_value_rule() -> None:
    assert dmarc_no_rua("x.com", "none", ["mailto:d@x.com"]) is None
    assert dmarc_no_rua("x.com", "reject", []) is None
    assert dmarc_no_rua("x.com", "none", []) is not None


def test_fetch_without_tls_and_insecure_is_a_warning(
    write_spec: WriteSpec, tmp_path: Path
) -> None:
    block = fetch_block("test", "me@gmail.com", tls=", tls: none, insecure: true")
    write_spec("x.com", block)
    [finding] = by_rule(check(tmp_path), "fetch-tls")
    assert finding.severity == Severity.WARNING
    assert finding.path == ("fetch", 0, "pop3", "tls")


def test_fetch_without_tls_is_refused(write_spec: WriteSpec, tmp_path: Path) -> None:
    """The loader refuses it; the rule itself reports an error on the model."""
    write_spec("x.com", fetch_block("test", "me@gmail.com", tls=", tls: none"))
    with pytest.raises(InputError) as caught:
        load_specs([tmp_path])
    assert [p.rule for p in caught.value.problems] == ["fetch-tls"]
    finding = fetch_tls("test", "pop.isp.example", "none", insecure=False)
    assert finding is not None and finding.severity == Severity.ERROR
    assert fetch_tls("test", "pop.isp.example", "starttls", insecure=False) is None


def test_dkim_weak_on_models_the_loader_would_refuse() -> None:
    spec = DomainSpec.model_validate(
        {
            "version": 1,
            "domain": "x.com",
            "mail_host": {"hostname": "mx.x.com"},
            "dkim": {"selectors": [{"name": "old", "algorithm": "rsa", "bits": 1024}]},
        }
    )
    [item] = [i for i in evaluate([spec]) if i.finding.rule == "dkim-weak"]
    assert item.domain == "x.com"
    assert item.finding.path == ("dkim", "selectors", 0, "bits")
    assert item.finding.location is None
    assert dkim_weak("new", "rsa", 2048) is None
    assert dkim_weak("ed", "ed25519", 256) is None
