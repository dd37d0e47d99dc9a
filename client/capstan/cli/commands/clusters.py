"""`k8s-cluster-*` and `k8s-namespace-list`: clusters registered by kubeconfig."""

from __future__ import annotations

import argparse

from capstan.cli.commands.common import Subparsers, add_command, add_paging, show_page
from capstan.cli.context import Context, UsageError
from capstan.cli.output import Column, print_fields, print_json, timestamp
from capstan.client import to_dict
from capstan.v1 import cluster_pb2

__all__ = ["register"]

CLUSTER_COLUMNS: tuple[Column[cluster_pb2.Cluster], ...] = (
    Column("NAME", lambda c: c.name),
    Column("ID", lambda c: c.id),
    Column("SERVER", lambda c: c.server),
    Column("CREATED", lambda c: timestamp(c.created_at)),
)

NAMESPACE_COLUMNS: tuple[Column[cluster_pb2.Namespace], ...] = (
    Column("NAME", lambda n: n.name),
    Column("STATUS", lambda n: n.status),
    Column("CLUSTER", lambda n: n.cluster),
    Column("CREATED", lambda n: timestamp(n.created_at)),
)


def register(subparsers: Subparsers, parents: list[argparse.ArgumentParser]) -> None:
    """Add the `k8s-cluster-*` and `k8s-namespace-list` subcommands."""
    p = add_command(
        subparsers, "k8s-cluster-create", "Create k8s cluster from a kubeconfig", parents,
        cluster_create,
    )
    p.add_argument("name", metavar="NAME", help="Cluster name")
    p.add_argument(
        "--kubeconfig", required=True, metavar="FILE", help="Kubernetes auth config file"
    )

    p = add_command(subparsers, "k8s-cluster-list", "List k8s clusters", parents, cluster_list)
    add_paging(p)

    p = add_command(
        subparsers, "k8s-cluster-delete", "Delete k8s cluster", parents, cluster_delete
    )
    p.add_argument("name", metavar="NAME", help="Cluster name or id")
    p.add_argument(
        "--force", action="store_true",
        help="Delete even if it still has releases or cannot be reached (they stay in it)",
    )

    p = add_command(
        subparsers, "k8s-namespace-list", "List k8s namespaces", parents, namespace_list
    )
    p.add_argument("--cluster", default="", help="Kubernetes cluster name")
    add_paging(p)


def cluster_create(ctx: Context, args: argparse.Namespace) -> None:
    try:
        with open(args.kubeconfig, encoding="utf-8") as file:
            kubeconfig = file.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"kubeconfig {args.kubeconfig}: {exc.__class__.__name__}: {exc}") from None
    cluster = ctx.client.create_cluster(args.name, kubeconfig)
    if ctx.json:
        print_json(ctx.stdout, to_dict(cluster))
        return
    print_fields(ctx.stdout, [
        ("NAME", cluster.name),
        ("ID", cluster.id),
        ("SERVER", cluster.server),
        ("CREATED", timestamp(cluster.created_at)),
    ])


def cluster_list(ctx: Context, args: argparse.Namespace) -> None:
    page = ctx.client.list_clusters(limit=args.limit, offset=args.offset)
    show_page(ctx, page, CLUSTER_COLUMNS, page.clusters)


def cluster_delete(ctx: Context, args: argparse.Namespace) -> None:
    response = ctx.client.delete_cluster(args.name, force=args.force)
    if ctx.json:
        print_json(ctx.stdout, to_dict(response))
    else:
        ctx.stdout.write(f'cluster "{response.cluster.name or args.name}" deleted\n')


def namespace_list(ctx: Context, args: argparse.Namespace) -> None:
    page = ctx.client.list_namespaces(cluster=args.cluster, limit=args.limit, offset=args.offset)
    show_page(ctx, page, NAMESPACE_COLUMNS, page.namespaces)
