"""The terminal form of experiment reports (`clickstream experiments ...`): the API's JSON, as tables."""

from __future__ import annotations


def _pct(x) -> str:
    return "-" if x is None else f"{x:.2%}"


def _num(x, digits: int = 2) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def _interval(d: dict | None, pct: bool) -> str:
    if not d:
        return "-"
    f = _pct if pct else _num
    return f"{f(d['estimate'])} [{f(d['low'])}, {f(d['high'])}]"


def list(experiments: list) -> str:  # noqa: A001 - named after the command
    lines = [f"{'id':40} {'kind':16} state"]
    lines += [f"{e['id']:40} {e['kind']:16} {e['state']}" for e in experiments]
    return "\n".join(lines)


def report(r: dict) -> str:
    lines = [
        f"experiment {r['id']} ({r.get('kind')}, {r.get('state')})",
        f"method: {r['method']}, {r['confidence']:.0%} intervals; outcomes within {r['window_hours']:g} h of an exposure",
        f"control: {r['control']}",
        "",
    ]
    head = f"{'arm':20} {'people':>8} {'exposures':>10} {'clicks':>7} {'conv.':>6} {'revenue':>11} {'conv. rate':>10} {'rev/person':>10}"
    lines.append(head)
    for arm, a in r["arms"].items():
        lines.append(
            f"{arm:20} {a['people']:>8} {a['exposures']:>10} {a['clicks']:>7} {a['conversions']:>6} "
            f"{_num(a['revenue']):>11} {_pct(a['conversion_rate']):>10} {_num(a['revenue_per_person']):>10}"
        )
    for arm, c in r["comparisons"].items():
        lines.append("")
        lines.append(f"{arm} against {r['control']}:")
        for metric, pct in (("conversion_rate", True), ("revenue_per_person", False)):
            m = c.get(metric)
            if not m:
                lines.append(f"  {metric}: not enough people yet")
                continue
            lift = m.get("lift")
            lines.append(
                f"  {metric}: difference {_interval(m['difference'], pct)}; CUPED {_interval(m['cuped'], pct)}"
                f" (variance -{_pct(m['variance_reduction'])})"
                + (f"; lift {_pct(lift['estimate'])} [{_pct(lift['low'])}, {_pct(lift['high'])}]" if lift else "")
            )
    srm = r.get("srm")
    lines.append("")
    if srm is None:
        lines.append("sample ratio: not enough people yet")
    else:
        verdict = "MISMATCH: the split is broken, do not trust these numbers" if srm["mismatch"] else "as configured"
        lines.append(
            f"sample ratio: {verdict} (chi-square {srm['chi2']:.2f}, p = {srm['p_value']:.3g}; "
            f"flag below {srm['threshold']:g})"
        )
    lines.append(f"not counted: {r['excluded']}")
    return "\n".join(lines)


def ope(r: dict) -> str:
    lines = [
        f"off-policy estimates for slot {r['slot']} (reward: {r['reward']}, {r['decisions']} logged people, "
        f"{r['confidence']:.0%} intervals)",
        f"logged policy: {_num(r['logged']['estimate'], 4)}",
        "",
    ]
    lines.append(f"{'policy':30} {'IPS':>28} {'doubly robust':>28}")
    for name, p in r["policies"].items():
        lines.append(f"{name:30} {_interval(p['ips'], False):>28} {_interval(p['dr'], False):>28}")
    return "\n".join(lines)
