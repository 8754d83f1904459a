"""``qc-station spec``: show, check and list product specs (``teach`` lives here too)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "spec",
        help="show, check or teach a product spec",
        description="Product specs are versioned TOML files. Bundled: resilience-pleated "
        "(default), afnor-pleated-2, afnor-child.",
    )
    ssub = p.add_subparsers(dest="spec_command", metavar="ACTION")
    show = ssub.add_parser("show", help="print a spec (bundled name or TOML file) as TOML")
    show.add_argument("spec", nargs="?", default=None, help="name or file (default: the default)")
    show.set_defaults(func=_show)
    check = ssub.add_parser("check", help="validate a spec file; exit 0 if valid")
    check.add_argument("spec")
    check.set_defaults(func=_check)
    lst = ssub.add_parser("list", help="list the bundled specs")
    lst.set_defaults(func=_list)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])


def _show(args) -> int:
    from qc_station.spec import dump_spec_toml, load_spec

    spec = load_spec(args.spec)
    print(f"# {spec.spec_id}")
    print(dump_spec_toml(spec), end="")
    return 0


def _check(args) -> int:
    from qc_station.spec import load_spec

    spec = load_spec(args.spec)
    print(f"ok: {spec.name} v{spec.version} ({spec.spec_id})")
    return 0


def _list(args) -> int:
    from qc_station.spec import bundled_specs, load_spec

    for name in bundled_specs():
        spec = load_spec(name)
        print(f"{name:22s} v{spec.version}  {spec.description}")
    return 0
