"""`opensage server | jobs list|describe|logs [--follow]|stop | tuning list|describe |
models|endpoint-configs|endpoints|transforms list|describe | endpoints invoke |
images load|list|rm | quickstart`.

Errors are usage messages, never tracebacks: a server that cannot be reached, a job that does
not exist, a refused bind address all end with one line on stderr and exit status 1 or 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import botocore.exceptions

from opensage.errors import OpenSageError
from opensage.settings import Settings


def main(argv: list[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        sys.exit(2)
    try:
        args.run(args)
    except OpenSageError as exc:
        sys.exit(f"opensage: {exc.message}")
    except botocore.exceptions.EndpointConnectionError:
        sys.exit(
            f"opensage: cannot reach the server at {_endpoint()}: start one with "
            "`opensage server` or set OPENSAGE_ENDPOINT"
        )
    except botocore.exceptions.ClientError as exc:
        error = exc.response.get("Error", {})
        sys.exit(f"opensage: {error.get('Code')}: {error.get('Message')}")
    except KeyboardInterrupt:
        sys.exit(130)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="opensage", description=__doc__)
    commands = parser.add_subparsers(title="commands")

    server = commands.add_parser("server", help="run the control plane")
    server.add_argument("--host", default="127.0.0.1")
    server.add_argument("--port", type=int, default=8080)
    server.set_defaults(run=_server)

    jobs = commands.add_parser("jobs", help="training jobs").add_subparsers(title="jobs")
    listing = jobs.add_parser("list", help="list training jobs, newest first")
    listing.add_argument("--status", choices=["InProgress", "Completed", "Failed", "Stopping",
                                              "Stopped"])  # fmt: skip
    listing.add_argument("--name-contains")
    listing.set_defaults(run=_jobs_list)
    for name, run, text in (
        ("describe", _jobs_describe, "print DescribeTrainingJob as JSON"),
        ("logs", _jobs_logs, "print the job's logs"),
        ("stop", _jobs_stop, "stop the job"),
    ):
        sub = jobs.add_parser(name, help=text)
        sub.add_argument("name")
        sub.set_defaults(run=run)
        if name == "logs":
            sub.add_argument("--follow", "-f", action="store_true", help="until the job ends")

    from opensage.cli.resources import KINDS

    for kind in KINDS:
        group = commands.add_parser(kind.command, help=kind.help).add_subparsers(title=kind.command)
        listing = group.add_parser("list", help=f"list {kind.help}, newest first")
        listing.add_argument("--name-contains")
        listing.set_defaults(run=_resource_list, kind=kind)
        describe = group.add_parser("describe", help="print its Describe as JSON")
        describe.add_argument("name")
        describe.set_defaults(run=_resource_describe, kind=kind)
        if kind.command == "endpoints":
            invoke = group.add_parser("invoke", help="send one request, print the answer")
            invoke.add_argument("name")
            invoke.add_argument("--body", required=True, help="the request, or @FILE")
            invoke.add_argument("--content-type", default="text/csv")
            invoke.add_argument("--accept")
            invoke.set_defaults(run=_endpoints_invoke)

    tuning = commands.add_parser("tuning", help="hyperparameter tuning jobs").add_subparsers(
        title="tuning"
    )
    listing = tuning.add_parser("list", help="list tuning jobs, newest first")
    listing.add_argument("--status", choices=["InProgress", "Completed", "Failed", "Stopping",
                                              "Stopped"])  # fmt: skip
    listing.add_argument("--name-contains")
    listing.set_defaults(run=_tuning_list)
    describe = tuning.add_parser("describe", help="the job's settings and its trials, best first")
    describe.add_argument("name")
    describe.set_defaults(run=_tuning_describe)

    images = commands.add_parser("images", help="the local image store").add_subparsers(
        title="images"
    )
    load = images.add_parser("load", help="load images from a docker save or OCI archive or layout")
    load.add_argument("path", help="a tar file (docker save, OCI archive) or an OCI layout folder")
    load.add_argument("--name", help="REPOSITORY:TAG for an image whose archive names none")
    load.set_defaults(run=_images_load)
    images.add_parser("list", help="list stored images").set_defaults(run=_images_list)
    remove = images.add_parser("rm", help="untag images and delete what nothing uses")
    remove.add_argument("references", nargs="+", metavar="REFERENCE")
    remove.set_defaults(run=_images_rm)

    quick = commands.add_parser("quickstart", help="train XGBoost on bundled data, end to end")
    quick.set_defaults(run=_quickstart)
    return parser


def _endpoint() -> str:
    return os.environ.get("OPENSAGE_ENDPOINT", "http://127.0.0.1:8080")


def _client(service: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        service,
        config=Config(retries={"total_max_attempts": 2}, connect_timeout=5),
        endpoint_url=_endpoint(),
        region_name=Settings.from_env().region,
        aws_access_key_id="opensage",
        aws_secret_access_key="opensage",
    )


def _server(args: argparse.Namespace) -> None:
    from dataclasses import replace

    from opensage.app import serve

    settings = replace(Settings.from_env(), host=args.host, port=args.port)
    print(f"opensage listening on {settings.endpoint_url} (state in {settings.home}, "
          f"runtime {settings.resolved_runtime()})", flush=True)  # fmt: skip
    serve(settings)


def _jobs_list(args: argparse.Namespace) -> None:
    kwargs: dict[str, Any] = {"SortBy": "CreationTime", "SortOrder": "Descending"}
    if args.status:
        kwargs["StatusEquals"] = args.status
    if args.name_contains:
        kwargs["NameContains"] = args.name_contains
    pages = _client("sagemaker").get_paginator("list_training_jobs").paginate(**kwargs)
    print(f"{'NAME':<48} {'STATUS':<11} {'SECONDARY':<19} CREATED")
    for page in pages:
        for job in page["TrainingJobSummaries"]:
            created = job["CreationTime"].strftime("%Y-%m-%d %H:%M:%S")
            print(f"{job['TrainingJobName']:<48} {job['TrainingJobStatus']:<11} "
                  f"{job.get('SecondaryStatus', ''):<19} {created}")  # fmt: skip


def _jobs_describe(args: argparse.Namespace) -> None:
    desc = _client("sagemaker").describe_training_job(TrainingJobName=args.name)
    desc.pop("ResponseMetadata", None)
    print(json.dumps(desc, indent=2, default=str))


def _jobs_logs(args: argparse.Namespace) -> None:
    from opensage.cli.resources import follow_logs
    from opensage.sdk.logs import LogTailer

    if args.follow:
        follow_logs(_client("sagemaker"), _client("logs"), args.name)
    else:
        LogTailer(_client("logs"), args.name).flush()


def _resource_list(args: argparse.Namespace) -> None:
    args.kind.list(_client("sagemaker"), args.name_contains)


def _resource_describe(args: argparse.Namespace) -> None:
    args.kind.describe(_client("sagemaker"), args.name)


def _endpoints_invoke(args: argparse.Namespace) -> None:
    from opensage.cli.resources import invoke

    invoke(_client("sagemaker-runtime"), args.name, args.body, args.content_type, args.accept)


def _jobs_stop(args: argparse.Namespace) -> None:
    _client("sagemaker").stop_training_job(TrainingJobName=args.name)
    print(f"Stopping {args.name}")


def _tuning_list(args: argparse.Namespace) -> None:
    from opensage.cli.tuning import list_jobs

    list_jobs(_client("sagemaker"), args.status, args.name_contains)


def _tuning_describe(args: argparse.Namespace) -> None:
    from opensage.cli.tuning import describe_job

    describe_job(_client("sagemaker"), args.name)


def _images_load(args: argparse.Namespace) -> None:
    from opensage.cli.images import load_images

    load_images(args.path, args.name)


def _images_list(_args: argparse.Namespace) -> None:
    from opensage.cli.images import list_images

    list_images()


def _images_rm(args: argparse.Namespace) -> None:
    from opensage.cli.images import remove_images

    remove_images(args.references)


def _quickstart(_args: argparse.Namespace) -> None:
    from opensage.cli.quickstart import run

    run()


if __name__ == "__main__":
    main()
