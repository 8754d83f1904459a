"""``qc-station user``: API users, roles and tokens (tokens are shown once, stored hashed)."""

from __future__ import annotations

import argparse
from pathlib import Path

EPILOG = """\
examples:
  qc-station user add alice --role supervisor --config station.toml
  qc-station user add kiosk --role operator --data ./qc-data
  qc-station user list --data ./qc-data
  qc-station user token alice --data ./qc-data     # an extra token (e.g. a new device)
  qc-station user revoke alice --data ./qc-data    # every token of alice stops working

roles (each includes the ones before): operator < supervisor < coordinator < admin
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "user",
        help="add users and API tokens (roles: operator, supervisor, coordinator, admin)",
        description="Manage the API users of a station. A token is printed once and only its SHA-256 is "
        "kept; send it as 'Authorization: Bearer <token>'.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    usub = p.add_subparsers(dest="user_command", metavar="ACTION")

    def common(q: argparse.ArgumentParser) -> None:
        where = q.add_mutually_exclusive_group()
        where.add_argument("--config", help="station.toml (uses its data_dir)")
        where.add_argument("--data", type=Path, help="data folder (default ./qc-data)")

    add = usub.add_parser("add", help="create a user and print its token once")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=["operator", "supervisor", "coordinator", "admin"])
    common(add)
    add.set_defaults(func=_add)
    lst = usub.add_parser("list", help="list users and roles")
    common(lst)
    lst.set_defaults(func=_list)
    tok = usub.add_parser("token", help="issue another token for a user")
    tok.add_argument("name")
    common(tok)
    tok.set_defaults(func=_token)
    rev = usub.add_parser("revoke", help="revoke every token of a user")
    rev.add_argument("name")
    common(rev)
    rev.set_defaults(func=_revoke)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])


def _store(args):
    from qc_station.store import Store

    if args.config:
        from qc_station.config import load_config

        return Store(load_config(args.config).data_dir)
    return Store(args.data or Path("qc-data"))


def _add(args) -> int:
    with _store(args) as store:
        user, token = store.add_user(args.name, args.role)
    print(f"user {user.name} ({user.role}) created. Token (shown once, keep it safe):")
    print(token)
    return 0


def _token(args) -> int:
    with _store(args) as store:
        token = store.new_token(args.name)
    print(f"new token for {args.name} (shown once):")
    print(token)
    return 0


def _revoke(args) -> int:
    with _store(args) as store:
        n = store.revoke_tokens(args.name)
    print(f"revoked {n} token(s) of {args.name}")
    return 0


def _list(args) -> int:
    with _store(args) as store:
        for u in store.list_users():
            print(f"{u.name:20s} {u.role:12s} since {u.created_at}{'  (disabled)' if u.disabled else ''}")
    return 0
