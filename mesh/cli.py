"""The `mesh` command: run the local mesh and mint dev tokens.

mesh up | down | status
mesh token --user alice --role customer
mesh chat --room ROOM --user alice
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mesh import local
from mesh.auth import ROLES, mint_token, user_id_problem


def _up(_: argparse.Namespace) -> int:
    layout = local.LocalLayout.from_env()
    seconds = local.up(layout)
    _print_status(layout)
    print(f"mesh is up in {seconds:.1f} s; logs in {layout.paths.logs}")
    return 0


def _down(_: argparse.Namespace) -> int:
    stopped = local.down(local.LocalLayout.from_env())
    print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    return 0


def _status(_: argparse.Namespace) -> int:
    return 0 if _print_status(local.LocalLayout.from_env()) else 1


def _print_status(layout: local.LocalLayout) -> bool:
    rows = local.status(layout)
    print(f"{'name':<14}{'address':<20}{'health':<13}{'pid':<9}restarts")
    for row in rows:
        pid = str(row.pid) if row.pid is not None else "-"
        print(f"{row.name:<14}{row.address:<20}{row.health:<13}{pid:<9}{row.restarts}")
    return local.all_serving(rows)


def _token(args: argparse.Namespace) -> int:
    problems = _token_problems(args)
    if problems:
        for problem in problems:
            print(f"mesh token: {problem}", file=sys.stderr)
        return 2
    explicit = args.key_file or (args.keys_dir / "jwt.key" if args.keys_dir else None)
    try:
        private = local.signing_key(explicit)
    except local.SigningKeyNotFound as exc:
        print(f"mesh token: {exc}", file=sys.stderr)
        return 1
    token = mint_token(
        private.read_bytes(), args.user, args.role, issuer=args.issuer, audience=args.audience, ttl_s=args.ttl
    )
    # --header prints what `curl -H` and `grpcurl -H` take as is.
    print(f"authorization: Bearer {token}" if args.header else token)
    return 0


MAX_TOKEN_TTL_S = 30 * 24 * 3600.0


def _token_problems(args: argparse.Namespace) -> list[str]:
    """Everything wrong with the request, so one run names every fix."""
    problems = []
    user_problem = user_id_problem(args.user)
    if user_problem is not None:
        problems.append(f"--user {args.user!r} {user_problem}")
    if not 0 < args.ttl <= MAX_TOKEN_TTL_S:
        problems.append(f"--ttl must be more than 0 and at most {MAX_TOKEN_TTL_S:.0f} seconds")
    for flag, value in (("--issuer", args.issuer), ("--audience", args.audience)):
        if not value.strip():
            problems.append(f"{flag} must not be empty")
    return problems


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
    token.add_argument("--user", required=True, help="the subject: 1-128 of A-Z a-z 0-9 . _ @ + : -")
    token.add_argument("--role", action="append", choices=sorted(ROLES), required=True, help="repeatable")
    token.add_argument("--ttl", type=float, default=3600.0, help="seconds of validity")
    token.add_argument("--issuer", default="switchboard", help="`iss` claim (JWT_ISSUER of the services)")
    token.add_argument("--audience", default="switchboard", help="`aud` claim (JWT_AUDIENCE)")
    token.add_argument(
        "--key-file", type=Path, default=None, help="private key (default: $JWT_PRIVATE_KEY_FILE, .data/keys)"
    )
    token.add_argument("--keys-dir", type=Path, default=None, help="folder holding jwt.key (as --key-file)")
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
