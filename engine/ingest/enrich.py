"""Server-side enrichment: receive time, user agent and a truncated IP.

The full address never leaves this module: IPv4 keeps its /24, IPv6 its /48.
"""

from __future__ import annotations

import ipaddress

UA_MAX = 512


def truncate_ip(address: str | None) -> str | None:
    if not address:
        return None
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False).network_address)


def enrich(
    event: dict, *, received_at: int, user_agent: str | None, truncated_ip: str | None, country: str | None = None
) -> dict:
    """Adds what the server knows; `truncated_ip` comes from truncate_ip, once per request."""
    event["received_at"] = received_at
    event["v"] = 1
    if user_agent:
        event["ua"] = user_agent[:UA_MAX]
    if truncated_ip:
        event["ip"] = truncated_ip
    if country:
        event["country"] = country[:8]
    return event
