"""Record sets as the inputs of Cloudflare's and Route 53's Pulumi resources.

Both providers' plugins must be downloaded, which mailbridge's offline
default never does; the components use these inputs with the providers'
type tokens, and the tests check them with Pulumi's mocks only.
"""

from __future__ import annotations

from typing import Any

from mailbridge.dns.record import Record, RecordType, unquote_txt

CLOUDFLARE_RECORD = "cloudflare:index/dnsRecord:DnsRecord"
ROUTE53_RECORD = "aws:route53/record:Record"


def _bare(name: str) -> str:
    return name[:-1] if name.endswith(".") and name != "." else name


def cloudflare_inputs(record: Record, zone_id: str) -> list[dict[str, Any]]:
    """One Cloudflare record per value (Cloudflare has no record sets)."""
    result = []
    for value in record.values:
        item: dict[str, Any] = {
            "zoneId": zone_id,
            "name": record.name,
            "type": str(record.type),
            "ttl": record.ttl,
        }
        if record.type == RecordType.MX:
            priority, target = value.split(None, 1)
            item["priority"] = int(priority)
            item["content"] = _bare(target)
        elif record.type == RecordType.SRV:
            priority, weight, port, target = value.split()
            # Cloudflare wants the priority beside `data` for SRV too.
            item["priority"] = int(priority)
            item["data"] = {
                "priority": int(priority),
                "weight": int(weight),
                "port": int(port),
                "target": _bare(target),
            }
        elif record.type == RecordType.CAA:
            flags, tag, caa_value = value.split(None, 2)
            item["data"] = {
                "flags": int(flags),
                "tag": tag,
                "value": caa_value.strip('"'),
            }
        elif record.type == RecordType.CNAME:
            item["content"] = _bare(value)
        elif record.type == RecordType.TXT:
            # Cloudflare takes the quoted strings and keeps the split.
            item["content"] = value
        else:
            item["content"] = value
        result.append(item)
    return result


def route53_inputs(record: Record, zone_id: str) -> dict[str, Any]:
    """One Route 53 record set; TXT strings joined the way Route 53 splits them."""
    if record.type == RecordType.TXT:
        values = ['""'.join(unquote_txt(v)) for v in record.values]
    else:
        values = list(record.values)
    return {
        "zoneId": zone_id,
        "name": record.name,
        "type": str(record.type),
        "ttl": record.ttl,
        "records": values,
        "allowOverwrite": False,
    }
