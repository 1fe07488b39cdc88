"""The `mesh` command: run the local mesh and mint dev tokens.

mesh up | down | status
mesh token --user alice --role customer
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mesh import local
from mesh.auth import ROLES, ensure_keys, mint_token


def _up(_: argparse.Namespace) -> int:
    paths = local.LocalPaths(local.project_root())
    seconds = local.up(paths)
    _print_status()
    print(f"mesh is up in {seconds:.1f} s; logs in {paths.logs}")
    return 0


def _down(_: argparse.Namespace) -> int:
    stopped = local.down(local.LocalPaths(local.project_root()))
    print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    return 0


def _status(_: argparse.Namespace) -> int:
    return 0 if _print_status() else 1


def _print_status() -> bool:
    rows = local.status()
    for name, address, health in rows:
        print(f"{name:<14}{address:<20}{health}")
    return local.all_serving(rows)


def _token(args: argparse.Namespace) -> int:
    paths = local.LocalPaths(local.project_root())
    keys = args.keys_dir or paths.keys
    private, public = keys / "jwt.key", keys / "jwt.pub"
    ensure_keys(private, public)
    token = mint_token(
        private.read_bytes(), args.user, args.role, issuer=args.issuer, audience=args.audience, ttl_s=args.ttl
    )
    # --header prints what `curl -H` and `grpcurl -H` take as is.
    print(f"authorization: Bearer {token}" if args.header else token)
    return 0


def _chat(args: argparse.Namespace) -> int:
    from chat_svc.console import main as chat_main  # lazy: the console lives with its service

    return chat_main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mesh", description="Run and use the Switchboard mesh.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("up", help="start the local mesh").set_defaults(run=_up)
    commands.add_parser("down", help="stop the local mesh").set_defaults(run=_down)
    commands.add_parser("status", help="health of every service").set_defaults(run=_status)
    token = commands.add_parser("token", help="mint a dev JWT")
    token.add_argument("--user", required=True)
    token.add_argument("--role", action="append", choices=sorted(ROLES), required=True)
    token.add_argument("--ttl", type=float, default=3600.0, help="seconds of validity")
    token.add_argument("--issuer", default="switchboard", help="`iss` claim (JWT_ISSUER of the services)")
    token.add_argument("--audience", default="switchboard", help="`aud` claim (JWT_AUDIENCE)")
    token.add_argument("--keys-dir", type=Path, default=None, help="key pair folder (default .data/keys)")
    token.add_argument("--header", action="store_true", help="print 'authorization: Bearer <token>'")
    token.set_defaults(run=_token)
    chat = commands.add_parser("chat", help="console chat client (chat_svc.console)")
    chat.add_argument("--room", required=True)
    chat.add_argument("--user", required=True)
    chat.add_argument("--target", action="append", help="host:port, repeat for failover")
    chat.add_argument("--token", default="", help="bearer JWT; default: a dev token for --user")
    chat.set_defaults(run=_chat)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
