"""`mailbridge verify`: live DNS, TLS and delivery checks against the spec."""

from __future__ import annotations

import asyncio
import ipaddress
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import click
from rich.console import Console
from rich.text import Text

from mailbridge.cli.common import emit_json, json_option
from mailbridge.cli.main import EXIT_FINDINGS
from mailbridge.cli.records import default_keys_dir
from mailbridge.errors import InputError, Location, Problem
from mailbridge.spec import load_specs
from mailbridge.spec.types import FieldValueError, normalize_hostname
from mailbridge.verify import Report, Status, VerifyOptions
from mailbridge.verify.deployed import OPTION as DEPLOYED_OPTION
from mailbridge.verify.deployed import DeployedKeys, read_stack_outputs
from mailbridge.verify.options import SERVICES, parse_address, parse_ports
from mailbridge.verify.runner import Subject, verify_many

STYLES = {
    Status.OK: "green",
    Status.WARNING: "yellow",
    Status.ERROR: "bold red",
    Status.UNKNOWN: "magenta",
}


def subjects_from(
    targets: Sequence[str],
    keys_dir: Path | None,
    deployed: Mapping[str, DeployedKeys] | None = None,
) -> list[Subject]:
    """Spec files and folders become spec subjects; other words, bare domains.

    `deployed` maps domains to the DKIM keys their stacks published.
    """
    paths = [Path(t) for t in targets if Path(t).exists()]
    subjects = []
    if paths:
        for item in load_specs(paths):
            keys = keys_dir if keys_dir is not None else default_keys_dir(item.path)
            from_stack = (deployed or {}).get(item.spec.domain)
            subjects.append(Subject.from_spec(item.spec, keys, from_stack))
    problems = []
    for target in targets:
        if Path(target).exists():
            continue
        if target.lower().endswith((".yaml", ".yml")) or "/" in target:
            # A mistyped spec path is not a domain to check live.
            problems.append(
                Problem(
                    f"no such spec file or folder: {target}",
                    location=Location(target),
                    expected="an existing spec file or folder, or a domain name",
                    found=target,
                    fix="check the path (spec files are stacks/<domain>.yaml)",
                )
            )
            continue
        try:
            subjects.append(Subject(normalize_hostname(target)))
        except FieldValueError as err:
            problems.append(
                Problem(
                    f"{target!r} is neither a spec file nor a domain: {err}",
                    location=Location(target),
                    expected="a spec file, a folder of specs, or a domain name",
                    found=target,
                )
            )
    if problems:
        raise InputError(problems)
    return subjects


@click.command("verify")
@click.argument("targets", nargs=-1, required=True)
@click.option(
    "--resolver",
    metavar="IP[:PORT]",
    help="DNS server to ask; the system's if unset.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.01),
    default=3.0,
    show_default=True,
    help="Seconds per DNS query or connection.",
)
@click.option(
    "--host-address", metavar="IP", help="Dial the mail host at this IP instead."
)
@click.option(
    "--ports",
    "ports_text",
    metavar="NAME=PORT,...",
    default="",
    help="Port overrides, e.g. smtp=2525,imaps=9993.",
)
@click.option(
    "--services",
    metavar="NAME,...",
    default=",".join(SERVICES),
    show_default=True,
    help="Which mail host services to dial.",
)
@click.option(
    "--ca-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Trust this CA bundle instead of the system's.",
)
@click.option(
    "--mta-sts-address",
    metavar="IP[:PORT]",
    help="Fetch the MTA-STS policy from IP[:PORT] instead of its A record.",
)
@click.option(
    "--keys",
    "keys_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Deployed DKIM keys. Default: keys/ beside each spec file.",
)
@click.option(
    DEPLOYED_OPTION,
    "stack_outputs",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    metavar="FILE",
    help="A stack's `pulumi stack output --json`: compare DKIM records with "
    "the keys it deployed. Once per stack.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=32,
    show_default=True,
    help="Domains checked at once.",
)
@click.option("--dns/--no-dns", "check_dns", default=True, help="Check DNS.")
@click.option(
    "--tls/--no-tls", "check_tls", default=True, help="Dial the mail host's ports."
)
@click.option(
    "--delivery/--no-delivery",
    "check_delivery",
    default=True,
    help="RCPT TO the spec's addresses on port 25 (no mail is sent).",
)
@click.option("--show-ok", is_flag=True, help="List passing checks too.")
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress bar (default: on a terminal).",
)
@json_option
def command(
    targets: tuple[str, ...],
    resolver: str | None,
    timeout: float,
    host_address: str | None,
    ports_text: str,
    services: str,
    ca_file: Path | None,
    mta_sts_address: str | None,
    keys_dir: Path | None,
    stack_outputs: tuple[Path, ...],
    concurrency: int,
    check_dns: bool,
    check_tls: bool,
    check_delivery: bool,
    show_ok: bool,
    progress: bool | None,
    as_json: bool,
) -> None:
    """Check that domains really work: live DNS, TLS, ports and delivery.

    TARGETS are spec files, folders of specs, or bare domain names (checked
    from live data only). Exits 1 when any finding is an error.
    """
    sts_address, sts_port = None, 443
    if mta_sts_address:
        sts_address, sts_port = parse_address(
            mta_sts_address, default_port=443, what="--mta-sts-address"
        )
    if resolver:
        parse_address(resolver, default_port=53, what="--resolver")
    if host_address:
        host_address = _ip(host_address, "--host-address")
    chosen = tuple(s.strip() for s in services.split(",") if s.strip())
    unknown = [s for s in chosen if s not in SERVICES]
    if unknown:
        raise InputError.single(
            f"unknown services: {', '.join(unknown)}",
            path=("--services",),
            expected=", ".join(SERVICES),
            found=services,
        )
    options = VerifyOptions(
        resolver=resolver,
        timeout=timeout,
        host_address=host_address,
        ports=parse_ports(ports_text),
        services=chosen,
        ca_file=ca_file,
        mta_sts_address=sts_address,
        mta_sts_port=sts_port,
        concurrency=concurrency,
        check_dns=check_dns,
        check_tls=check_tls,
        check_delivery=check_delivery,
    )
    deployed = read_stack_outputs(stack_outputs)
    subjects = subjects_from(targets, keys_dir, deployed)
    show_bar = sys.stderr.isatty() and not as_json if progress is None else progress
    try:
        reports = _run(subjects, options, show_bar and len(subjects) > 1)
    except KeyboardInterrupt as err:
        raise click.Abort from err
    if as_json:
        emit_json(to_json(reports))
    else:
        console = Console(highlight=False)
        console.soft_wrap = not console.is_terminal
        print_reports(console, reports, show_ok=show_ok)
        if no_dns_answer(reports):
            where = resolver or "the system's resolver (/etc/resolv.conf)"
            other = "" if resolver else ", or pass --resolver IP[:PORT]"
            click.echo(
                f"verify: no DNS answer at all from {where}: check that it is "
                f"reachable and answers{other}",
                err=True,
            )
    if any(r.status == Status.ERROR for r in reports):
        sys.exit(EXIT_FINDINGS)


def _ip(text: str, option: str) -> str:
    try:
        return str(ipaddress.ip_address(text.strip().strip("[]")))
    except ValueError as err:
        raise InputError.single(
            f"{text!r} is not an IP address",
            path=(option,),
            expected="an IPv4 or IPv6 address, e.g. 127.0.0.1",
            found=text,
        ) from err


def _run(subjects: list[Subject], options: VerifyOptions, bar: bool) -> list[Report]:
    if not bar:
        return asyncio.run(verify_many(subjects, options))
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    columns = (
        TextColumn("verify"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[last]}"),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as shown:
        task = shown.add_task("verify", total=len(subjects), last="")

        def advance(report: Report) -> None:
            shown.update(task, advance=1, last=report.domain)

        return asyncio.run(verify_many(subjects, options, on_done=advance))


# Findings of dials to the mail host; every other finding needs DNS.
_DIAL_CHECKS = ("port.", "tls.", "delivery.")


def no_dns_answer(reports: Sequence[Report]) -> bool:
    """True when DNS checks ran and not one of them got an answer."""
    dns = [
        f for r in reports for f in r.findings if not f.check.startswith(_DIAL_CHECKS)
    ]
    return bool(dns) and all(f.status == Status.UNKNOWN for f in dns)


def to_json(reports: Sequence[Report]) -> dict[str, object]:
    counts = {str(s): 0 for s in Status}
    for report in reports:
        for finding in report.findings:
            counts[str(finding.status)] += 1
    return {
        "ok": not any(r.status == Status.ERROR for r in reports),
        "summary": {"domains": len(reports), **counts},
        "domains": [r.to_dict() for r in reports],
    }


def print_reports(
    console: Console, reports: Sequence[Report], *, show_ok: bool
) -> None:
    for report in reports:
        status = report.status
        counts = ", ".join(f"{report.count(s)} {s}" for s in Status if report.count(s))
        line = Text(f"{report.domain}  ")
        line.append(str(status).upper(), style=STYLES[status])
        line.append(f"  ({counts or 'no findings'})")
        console.print(line)
        for finding in report.findings:
            if finding.status == Status.OK and not show_ok:
                continue
            head = Text("  ")
            head.append(
                f"{str(finding.status).upper():8}", style=STYLES[finding.status]
            )
            head.append(f" {finding.check}  {finding.subject}")
            console.print(head)
            if finding.status == Status.OK:
                continue
            for label, value in (
                ("expected", finding.expected),
                ("found", finding.found),
                ("why", finding.why),
                ("fix", finding.fix),
            ):
                if value:
                    console.print(Text(f"           {label + ':':9} {value}"))
    errors = sum(r.status == Status.ERROR for r in reports)
    unknown = sum(r.count(Status.UNKNOWN) > 0 for r in reports)
    text = (
        f"{len(reports)} domain{'s' if len(reports) != 1 else ''} verified, "
        f"{errors} with errors"
    )
    if unknown:
        text += f", {unknown} with unanswered checks (retry)"
    console.print(text)
