"""`k8s-chart-*` and `k8s-repo-*`: chart repositories and the charts in them."""

from __future__ import annotations

import argparse
import sys

from capstan.cli.commands.common import Subparsers, add_command, add_paging, show_page
from capstan.cli.context import Context, UsageError
from capstan.cli.output import Column, print_fields, print_json, print_yaml_block, timestamp
from capstan.client import to_dict
from capstan.v1 import chart_pb2

__all__ = ["register"]

CHART_COLUMNS: tuple[Column[chart_pb2.ChartVersion], ...] = (
    Column("REPO", lambda c: c.repo),
    Column("NAME", lambda c: c.name),
    Column("VERSION", lambda c: c.version),
    Column("APP VERSION", lambda c: c.app_version),
    Column("DESCRIPTION", lambda c: c.description),
)

REPO_COLUMNS: tuple[Column[chart_pb2.Repository], ...] = (
    Column("NAME", lambda r: r.name),
    Column("TYPE", lambda r: r.type),
    Column("URL", lambda r: r.url),
    Column("CHARTS", lambda r: r.chart_count),
    Column("SYNCED", lambda r: timestamp(r.synced_at)),
)


def register(subparsers: Subparsers, parents: list[argparse.ArgumentParser]) -> None:
    """Add the `k8s-chart-*` and `k8s-repo-*` subcommands."""
    p = add_command(subparsers, "k8s-chart-show", "Show chart details", parents, chart_show)
    p.add_argument("repo", metavar="REPO", help="Helm repository name")
    p.add_argument("chart", metavar="CHART", help="Helm chart name, e.g etcd")
    p.add_argument("--version", default="", help="Chart version; latest version if not specified")

    p = add_command(subparsers, "k8s-chart-list", "List helm charts", parents, chart_list)
    p.add_argument("--repo", default="", help="Helm repository name")
    p.add_argument("--keyword", default="", help="Chart keyword")
    p.add_argument("--version", default="", help="Chart semver version filter")
    p.add_argument(
        "--all-version", action="store_true", help="Get Chart all history versions"
    )
    add_paging(p)

    p = add_command(subparsers, "k8s-repo-create", "Create helm repository", parents, repo_create)
    p.add_argument("name", metavar="NAME", help="Repository name")
    p.add_argument(
        "url", metavar="URL", help="Repository url: http(s)://... or oci://HOST/PATH (a registry)"
    )
    p.add_argument(
        "--type", choices=("internal", "external"), default="", help="Repository type"
    )
    p.add_argument("--username", default="", help="Basic auth user name of the repository")
    password = p.add_mutually_exclusive_group()
    password.add_argument("--password", default="", help="Basic auth password of the repository")
    password.add_argument(
        "--password-stdin", action="store_true",
        help="Read the password (or registry token) from standard input",
    )
    p.add_argument(
        "--plain-http", action="store_true",
        help="OCI: talk to the registry over plain HTTP (e.g. a registry on loopback)",
    )
    p.add_argument(
        "--ca-file", default="",
        help="OCI: PEM file of the CA certificates that sign the registry's certificate",
    )
    p.add_argument(
        "--chart", action="append", default=[], metavar="NAME", dest="charts",
        help="OCI: a chart of the repository (repeatable), for registries without a catalog",
    )

    p = add_command(subparsers, "k8s-repo-list", "List helm repositories", parents, repo_list)
    add_paging(p)

    p = add_command(subparsers, "k8s-repo-delete", "Delete helm repository", parents, repo_delete)
    p.add_argument("name", metavar="NAME", help="Repository name or id")
    p.add_argument(
        "--force", action="store_true",
        help="Delete without checking the clusters for releases installed from it",
    )

    p = add_command(
        subparsers, "k8s-repo-sync", "Sync helm repository charts", parents, repo_sync
    )
    p.add_argument("name", metavar="NAME", help="Repository name or id")


def chart_show(ctx: Context, args: argparse.Namespace) -> None:
    response = ctx.client.get_chart(args.chart, repo=args.repo, version=args.version)
    if ctx.json:
        print_json(ctx.stdout, to_dict(response))
        return
    chart = response.chart
    meta = chart.chart.metadata
    print_fields(ctx.stdout, [
        ("NAME", chart.name),
        ("VERSION", chart.version),
        ("REPO", chart.repo),
        ("APP VERSION", meta.app_version),
        ("DESCRIPTION", meta.description),
        ("HOME", meta.home),
        ("VERSIONS", [version.version for version in chart.versions]),
    ])
    print_yaml_block(ctx.stdout, "VALUES", to_dict(chart.chart).get("values"))


def chart_list(ctx: Context, args: argparse.Namespace) -> None:
    page = ctx.client.list_charts(
        repo=args.repo,
        keyword=args.keyword,
        version=args.version,
        all_version=args.all_version,
        limit=args.limit,
        offset=args.offset,
    )
    show_page(ctx, page, CHART_COLUMNS, page.charts)


def repo_create(ctx: Context, args: argparse.Namespace) -> None:
    password = args.password
    if args.password_stdin:
        # Like `helm registry login --password-stdin`: one line, without its line break.
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise UsageError("--password-stdin: standard input holds no password")
    ca_pem = ""
    if args.ca_file:
        try:
            with open(args.ca_file, encoding="utf-8") as file:
                ca_pem = file.read()
        except (OSError, UnicodeDecodeError) as err:
            raise UsageError(f"--ca-file {args.ca_file}: {err}") from None
    repo = ctx.client.create_repository(
        args.name, args.url, type=args.type, username=args.username, password=password,
        plain_http=args.plain_http, ca_pem=ca_pem, charts=args.charts,
    )
    _show_repo(ctx, repo)


def repo_list(ctx: Context, args: argparse.Namespace) -> None:
    page = ctx.client.list_repositories(limit=args.limit, offset=args.offset)
    show_page(ctx, page, REPO_COLUMNS, page.repos)


def repo_delete(ctx: Context, args: argparse.Namespace) -> None:
    response = ctx.client.delete_repository(args.name, force=args.force)
    if ctx.json:
        print_json(ctx.stdout, to_dict(response))
    else:
        ctx.stdout.write(f'repository "{response.repo.name or args.name}" deleted\n')


def repo_sync(ctx: Context, args: argparse.Namespace) -> None:
    _show_repo(ctx, ctx.client.sync_repository(args.name))


def _show_repo(ctx: Context, repo: chart_pb2.Repository) -> None:
    if ctx.json:
        print_json(ctx.stdout, to_dict(repo))
        return
    print_fields(ctx.stdout, [
        ("NAME", repo.name),
        ("ID", repo.id),
        ("URL", repo.url),
        ("TYPE", repo.type),
        ("USERNAME", repo.username),
        ("CHARTS", repo.chart_count),
        *([("PLAIN HTTP", "yes")] if repo.plain_http else []),
        *([("CHART NAMES", list(repo.charts))] if repo.charts else []),
        ("CREATED", timestamp(repo.created_at)),
        ("SYNCED", timestamp(repo.synced_at)),
    ])
