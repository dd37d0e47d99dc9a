"""``kubesim``: run the simulator standalone and write a kubeconfig for it."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path

from .identity import UserInfo, parse_user_token
from .persistence import StateError, open_state
from .server import KubeSim
from .store import Store


def _user_token(text: str) -> tuple[str, UserInfo]:
    try:
        return parse_user_token(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubesim", description="A Kubernetes API server simulator for helm and kubectl."
    )
    parser.add_argument("--listen", type=_parse_listen, default=("127.0.0.1", 0),
                        metavar="HOST:PORT", help="address to serve on (port 0: any free port)")
    parser.add_argument("--kubeconfig-out", type=Path, metavar="FILE",
                        help="write a kubeconfig for this server here")
    parser.add_argument("--tls", action="store_true",
                        help="serve HTTPS with a generated CA (its cert goes in the kubeconfig)")
    parser.add_argument("--token", help="bearer token to require (default: random)")
    parser.add_argument("--user-token", type=_user_token, action="append", default=[],
                        metavar="USER:TOKEN[:GROUP,...]",
                        help="a bearer token of a user whom RBAC authorizes (repeatable); the "
                             "--token one is the cluster admin")
    parser.add_argument("--require-token", action="store_true",
                        help="refuse requests without a token even over plain HTTP (helm and "
                             "kubectl send tokens only over TLS, so use it with --tls)")
    parser.add_argument("--state", type=Path, metavar="FILE",
                        help="load objects from FILE (and FILE.journal) at start, if present, "
                             "and persist every write there before answering it")
    parser.add_argument("--no-controllers", action="store_true",
                        help="do not run the simulated controllers")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


async def _serve(args: argparse.Namespace) -> None:
    store = Store()
    state = open_state(store, args.state) if args.state else None
    host, port = args.listen
    sim = KubeSim(store, host=host, port=port, token=args.token, tls=args.tls,
                  controllers=not args.no_controllers,
                  anonymous=False if args.require_token else None,
                  user_tokens=dict(args.user_token))
    await sim.start()
    if args.kubeconfig_out:
        sim.write_kubeconfig(args.kubeconfig_out)
    print(f"kubesim serving {sim.url}", flush=True)
    if args.kubeconfig_out:
        print(f"kubeconfig written to {args.kubeconfig_out}", flush=True)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stopped.set)
    try:
        await stopped.wait()
    finally:
        await sim.stop()
        if state is not None:
            state.close()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        asyncio.run(_serve(args))
    except KeyboardInterrupt:
        pass
    except (OSError, StateError) as exc:
        print(f"kubesim: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
