"""`k8s-release-*`: create, list, show, upgrade, history, rollback, delete and recover releases.

Names, positional arguments, flags and help texts are climc's (see DESIGN.md), plus `--wait`,
`--atomic`, `--create-namespace` and `--description` where Helm has them.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from capstan.cli.commands.common import (
    Subparsers,
    add_cluster,
    add_command,
    add_namespace,
    add_paging,
    add_timeout,
    bounded_int,
    show_page,
)
from capstan.cli.context import Context
from capstan.cli.output import (
    Column,
    print_fields,
    print_json,
    print_table,
    print_text_block,
    print_yaml_block,
    timestamp,
)
from capstan.cli.progress import WatchTarget, run_with_progress
from capstan.cli.values_files import read_values_files
from capstan.client import to_dict
from capstan.v1 import release_pb2

__all__ = ["register"]

_CHART_HELP = "Helm chart name, e.g stable/etcd"
_NAME_HELP = "Release instance name"
_VERSION_HELP = (
    "Specify the exact chart version to install. If not specified, latest version installed"
)

RELEASE_COLUMNS: tuple[Column[release_pb2.Release], ...] = (
    Column("NAME", lambda r: r.name),
    Column("NAMESPACE", lambda r: r.namespace),
    Column("CLUSTER", lambda r: r.cluster),
    Column("REVISION", lambda r: r.version),
    Column("STATUS", lambda r: r.status),
    Column("CHART", lambda r: _chart(r)),
    Column("APP VERSION", lambda r: r.app_version),
    Column("UPDATED", lambda r: timestamp(r.updated_at)),
)

REVISION_COLUMNS: tuple[Column[release_pb2.ReleaseRevision], ...] = (
    Column("REVISION", lambda r: r.revision),
    Column("UPDATED", lambda r: timestamp(r.updated)),
    Column("STATUS", lambda r: r.status),
    Column("CHART", lambda r: r.chart),
    Column("APP VERSION", lambda r: r.app_version),
    Column("DESCRIPTION", lambda r: r.description),
)


def register(subparsers: Subparsers, parents: list[argparse.ArgumentParser]) -> None:
    """Add the `k8s-release-*` subcommands."""
    p = add_command(subparsers, "k8s-release-create", "Create release", parents, create)
    p.add_argument("chart_name", metavar="CHARTNAME", help=_CHART_HELP)
    add_cluster(p)
    _add_values(p)
    p.add_argument("--version", default="", help=_VERSION_HELP)
    p.add_argument("--dry-run", action="store_true", help="Simulate an install")
    _add_details(p)
    add_timeout(p)
    p.add_argument(
        "--name", default="", help="Release name, If unspecified, it will autogenerate one for you"
    )
    add_namespace(p)
    _add_wait(p, atomic="Uninstall the release if the install fails; implies --wait")
    p.add_argument(
        "--create-namespace", action="store_true",
        help="Create the release namespace if not present",
    )
    p.add_argument("--description", default="", help="Add a custom description")

    p = add_command(subparsers, "k8s-release-list", "List releases", parents, list_)
    add_paging(p)
    p.add_argument("--details", action="store_true", help="Show more details")
    p.add_argument("--search", default="", help="Filter results by a simple keyword search")
    p.add_argument("--name", default="", help="List by name")
    add_namespace(p)
    for status in ("deployed", "deleting", "failed", "superseded", "pending"):
        p.add_argument(
            f"--{status}", action="store_true", help=f"Show {status} status releases"
        )
    p.add_argument(
        "--type", choices=("internal", "external"), default="", help="Release type"
    )
    add_cluster(p)

    p = add_command(subparsers, "k8s-release-show", "Get helm release details", parents, show)
    p.add_argument("name", metavar="NAME", help="Name ident of the resource")
    add_namespace(p)
    add_cluster(p)
    p.add_argument("--objects", action="store_true",
                   help="Include each resource's whole live object (with --output json)")

    p = add_command(subparsers, "k8s-release-upgrade", "Upgrade release", parents, upgrade)
    p.add_argument("name", metavar="NAME", help=_NAME_HELP)
    p.add_argument("chart_name", metavar="CHARTNAME", help=_CHART_HELP)
    add_cluster(p)
    _add_values(p)
    p.add_argument("--version", default="", help=_VERSION_HELP)
    p.add_argument("--dry-run", action="store_true", help="Simulate an install")
    _add_details(p)
    add_timeout(p)
    p.add_argument(
        "--reuse-values", action="store_true",
        help="When upgrading, reuse the last release's values, and merge in any new values. "
        "If '--reset-values' is specified, this is ignored",
    )
    p.add_argument(
        "--reset-values", action="store_true",
        help="When upgrading, reset the values to the ones built into the chart",
    )
    add_namespace(p)
    _add_wait(p, atomic="Roll back to the previous revision if the upgrade fails; implies --wait")

    p = add_command(subparsers, "k8s-release-history", "Get release history", parents, history)
    p.add_argument("name", metavar="NAME", help=_NAME_HELP)
    add_cluster(p)
    p.add_argument("--max", type=bounded_int(0), default=0, help="History limit size")
    add_namespace(p)

    p = add_command(
        subparsers, "k8s-release-rollback", "Rollback release by history revision number",
        parents, rollback,
    )
    p.add_argument("name", metavar="NAME", help=_NAME_HELP)
    p.add_argument(
        "revision", metavar="REVISION", type=bounded_int(0), help="Release history revision number"
    )
    add_cluster(p)
    p.add_argument("--description", default="", help="Release rollback description string")
    add_namespace(p)
    _add_wait(p)
    add_timeout(p)

    p = add_command(subparsers, "k8s-release-delete", "Delete release", parents, delete)
    p.add_argument("name", metavar="NAME", help=_NAME_HELP)
    add_cluster(p)
    add_namespace(p)

    p = add_command(
        subparsers, "k8s-release-recover",
        "Recover a release stuck in pending-install, pending-upgrade or pending-rollback",
        parents, recover,
    )
    p.add_argument("name", metavar="NAME", help=_NAME_HELP)
    p.add_argument(
        "--action", required=True, choices=("rollback", "mark-failed"),
        help="rollback: back to the last deployed revision; mark-failed: mark the stuck "
        "revision failed so that a new upgrade may run",
    )
    p.add_argument(
        "--stuck-after", type=bounded_int(0), default=0, metavar="SECONDS",
        help="How long the release must have been pending to count as stuck (default 300)",
    )
    add_cluster(p)
    add_namespace(p)


def _add_values(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-f", "--values", action="append", default=[], metavar="VALUES",
        help="Specify values in a YAML file (can specify multiple)",
    )


def _add_details(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--details", action="store_true",
        help="Show release deploy details, include kubernetes created resources",
    )


def _add_wait(parser: argparse.ArgumentParser, atomic: str | None = None) -> None:
    parser.add_argument(
        "--wait", action="store_true",
        help="Wait until the release's workloads are ready, showing progress on stderr",
    )
    if atomic is not None:
        parser.add_argument("--atomic", action="store_true", help=atomic)


# -- handlers ---------------------------------------------------------------------------------


def create(ctx: Context, args: argparse.Namespace) -> None:
    values = read_values_files(args.values)

    def operation() -> release_pb2.Release:
        return ctx.client.create_release(
            args.chart_name,
            cluster=args.cluster,
            namespace=args.namespace,
            release_name=args.name,
            version=args.version,
            values=values,
            dry_run=args.dry_run,
            timeout=args.timeout,
            wait=args.wait,
            atomic=args.atomic,
            description=args.description,
            create_namespace=args.create_namespace,
            details=args.details,
        )

    # A generated name is only known once the server answers: nothing to watch before that.
    waiting = (args.wait or args.atomic) and args.name and not args.dry_run
    target = WatchTarget(args.name, args.cluster, args.namespace or "default")
    _show_release(ctx, _run(ctx, target if waiting else None, operation))


def list_(ctx: Context, args: argparse.Namespace) -> None:
    page = ctx.client.list_releases(
        cluster=args.cluster,
        namespace=args.namespace,
        name=args.name,
        search=args.search,
        type=args.type,
        limit=args.limit,
        offset=args.offset,
        details=args.details,
        deployed=args.deployed,
        deleting=args.deleting,
        failed=args.failed,
        superseded=args.superseded,
        pending=args.pending,
    )
    show_page(ctx, page, RELEASE_COLUMNS, page.releases)
    if ctx.json:
        return
    # The list (and its total) is incomplete: say so where a reader of the table sees it, but
    # not on stdout, which scripts may parse. JSON output carries `unreachable_clusters`.
    for cluster in page.unreachable_clusters:
        if cluster.stale_seconds:
            ctx.stderr.write(
                f"Warning: releases of cluster {cluster.name} are listed as they were "
                f"{cluster.stale_seconds:.0f}s ago ({cluster.message})\n"
            )
        else:
            ctx.stderr.write(
                f"Warning: releases of cluster {cluster.name} are not listed ({cluster.message})\n"
            )


def show(ctx: Context, args: argparse.Namespace) -> None:
    release = ctx.client.get_release(args.name, cluster=args.cluster, namespace=args.namespace,
                                     objects=args.objects)
    _show_release(ctx, release)


def upgrade(ctx: Context, args: argparse.Namespace) -> None:
    values = read_values_files(args.values)

    def operation() -> release_pb2.Release:
        return ctx.client.upgrade_release(
            args.name,
            args.chart_name,
            cluster=args.cluster,
            namespace=args.namespace,
            version=args.version,
            values=values,
            reuse_values=args.reuse_values,
            reset_values=args.reset_values,
            dry_run=args.dry_run,
            timeout=args.timeout,
            wait=args.wait,
            atomic=args.atomic,
            details=args.details,
        )

    waiting = (args.wait or args.atomic) and not args.dry_run
    target = WatchTarget(args.name, args.cluster, args.namespace)
    _show_release(ctx, _run(ctx, target if waiting else None, operation))


def history(ctx: Context, args: argparse.Namespace) -> None:
    response = ctx.client.get_release_history(
        args.name, cluster=args.cluster, namespace=args.namespace, max=args.max
    )
    if ctx.json:
        # The gateway answers history with the bare array of revisions.
        print_json(ctx.stdout, to_dict(response)["revisions"])
        return
    print_table(ctx.stdout, REVISION_COLUMNS, response.revisions)


def rollback(ctx: Context, args: argparse.Namespace) -> None:
    def operation() -> release_pb2.Release:
        return ctx.client.rollback_release(
            args.name,
            args.revision,
            cluster=args.cluster,
            namespace=args.namespace,
            description=args.description,
            timeout=args.timeout,
            wait=args.wait,
        )

    target = WatchTarget(args.name, args.cluster, args.namespace)
    _show_release(ctx, _run(ctx, target if args.wait else None, operation))


def delete(ctx: Context, args: argparse.Namespace) -> None:
    response = ctx.client.delete_release(
        args.name, cluster=args.cluster, namespace=args.namespace
    )
    if ctx.json:
        print_json(ctx.stdout, to_dict(response))
    else:
        ctx.stdout.write(f'release "{response.release.name or args.name}" uninstalled\n')


def recover(ctx: Context, args: argparse.Namespace) -> None:
    release = ctx.client.recover_release(
        args.name,
        args.action,
        cluster=args.cluster,
        namespace=args.namespace,
        stuck_after_seconds=args.stuck_after,
    )
    _show_release(ctx, release)


# -- helpers ----------------------------------------------------------------------------------


def _run(
    ctx: Context,
    target: WatchTarget | None,
    operation: Callable[[], release_pb2.Release],
) -> release_pb2.Release:
    if target is None:
        return operation()
    return run_with_progress(ctx.client, ctx.stderr, target, operation)


def _chart(release: release_pb2.Release) -> str:
    """`etcd-8.11.1`, as helm and the history show a chart."""
    if release.chart and release.chart_version:
        return f"{release.chart}-{release.chart_version}"
    return release.chart


def _show_release(ctx: Context, release: release_pb2.Release) -> None:
    if ctx.json:
        print_json(ctx.stdout, to_dict(release))
        return
    out = ctx.stdout
    print_fields(out, [
        ("NAME", release.name),
        ("ID", release.id),
        ("CLUSTER", release.cluster),
        ("NAMESPACE", release.namespace),
        ("CHART", _chart(release)),
        ("APP VERSION", release.app_version),
        ("REVISION", release.version),
        ("STATUS", release.status + (" (dry run)" if release.dry_run else "")),
        ("TYPE", release.type),
        ("CREATED", timestamp(release.created_at)),
        ("UPDATED", timestamp(release.updated_at)),
        ("DESCRIPTION", release.description),
    ])
    as_json = to_dict(release)
    print_yaml_block(out, "CONFIG", as_json.get("config"))
    print_yaml_block(out, "RESOURCES", _resource_names(as_json.get("resources", {})))
    print_text_block(out, "NOTES", release.notes)
    print_text_block(out, "MANIFEST", release.manifest)


def _resource_names(resources: dict[str, list[object]]) -> dict[str, list[str]]:
    """Kind key -> object names (of `Release.resources` as JSON), `(missing)` marking objects
    absent from the cluster."""
    names: dict[str, list[str]] = {}
    for kind, objects in sorted(resources.items()):
        for obj in objects:
            if not isinstance(obj, dict):
                continue
            name = obj.get("name") or "?"
            state = ("(missing)" if obj.get("missing")
                     else f"(cannot parse: {obj['error']})" if obj.get("error") else "")
            names.setdefault(kind, []).append(f"{name} {state}".rstrip())
    return names
