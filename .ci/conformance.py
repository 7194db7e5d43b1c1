#!/usr/bin/env python3
"""Run the scim2-tester conformance checks against a running SCIM server.

Usage: python3 .ci/conformance.py BASE_URL TOKEN [--trace FILE] [--allow-skip REGEX]

BASE_URL is the SCIM root, e.g. http://127.0.0.1:8080/scim/v2, and TOKEN the
bearer token sent in every request. The versions of scim2-tester and its
dependencies are pinned in .ci/conformance-requirements.txt.

Every result scim2-tester produces is printed on one line:

    STATUS    check_name [ResourceType]  reason

followed by the details of the failures, and a last line
``N passed, M failed`` (``, K skipped`` is added when some checks were
skipped). The exit status is 0 only when no check failed.

How results are counted:

* passed: SUCCESS, COMPLIANT and ACCEPTABLE (scim2-tester's statuses for
  behaviour that meets the RFCs; 0.5.x only emits SUCCESS);
* skipped: SKIPPED results whose feature the server's ServiceProviderConfig
  declares unsupported (e.g. the patch:* checks when ``patch.supported`` is
  false), and SKIPPED results whose reason matches an ``--allow-skip`` regex;
* failed: everything else (ERROR, CRITICAL, DEVIATION, any other SKIPPED, and
  any exception escaping scim2-tester).

Set SCIMITAR_CONFORMANCE_TRACE=FILE (or pass --trace FILE) to log every HTTP
exchange (the Authorization header is masked).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import traceback
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version
from typing import Any

PASSING = {"SUCCESS", "COMPLIANT", "ACCEPTABLE"}

# Tag prefix of a scim2-tester check -> attribute of ServiceProviderConfig that
# says whether the server supports the feature the check exercises.
SPC_FEATURE_TAGS = {
    "patch": "patch",
    "bulk": "bulk",
    "filter": "filter",
    "sort": "sort",
    "etag": "etag",
    "change-password": "change_password",
    "changePassword": "change_password",
}

DETAIL_LIMIT = 4000


def one_line(text: Any) -> str:
    """Render text on a single line, control characters escaped."""
    text = str(text)
    text = text.replace("\r\n", "\n").replace("\n", " | ")
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def jsonable(value: Any) -> Any:
    """json.dumps fallback: models as their SCIM JSON, anything else as text."""
    if hasattr(value, "model_dump"):
        try:
            return value.model_dump(mode="json", by_alias=True, exclude_none=True)
        except Exception:  # noqa: BLE001 - best effort rendering
            return repr(value)
    return describe_data(value)


def describe_data(data: Any) -> str:
    """Render the debugging data of a result as compact text."""
    try:
        from pydantic import BaseModel

        if isinstance(data, BaseModel):
            try:
                return data.model_dump_json(exclude_none=True, by_alias=True)
            except Exception:  # noqa: BLE001 - best effort rendering
                return repr(data)
        if isinstance(data, list) and data and all(isinstance(d, BaseModel) for d in data):
            return "[" + ", ".join(describe_data(d) for d in data) + "]"
    except ImportError:  # pragma: no cover
        pass

    if hasattr(data, "status_code") and hasattr(data, "text"):
        request = getattr(data, "request", None)
        where = f"{request.method} {request.url} -> " if request is not None else ""
        return f"{where}HTTP {data.status_code} {data.headers.get('content-type', '')} {data.text}"

    if isinstance(data, BaseException):
        return f"{type(data).__name__}: {data}"

    if isinstance(data, dict):
        try:
            return json.dumps(data, default=jsonable)
        except Exception:  # noqa: BLE001
            return repr(data)

    return repr(data)


def make_tracer(path: str):
    """Return httpx event hooks logging every exchange to `path`."""
    trace = open(path, "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the run

    def on_request(request: Any) -> None:
        headers = {
            k: ("Bearer ***" if k.lower() == "authorization" else v)
            for k, v in request.headers.items()
        }
        body = request.content.decode("utf-8", "replace") if request.content else ""
        trace.write(f">>> {request.method} {request.url}\n")
        for k, v in headers.items():
            trace.write(f">>> {k}: {v}\n")
        if body:
            trace.write(f">>> {body}\n")
        trace.flush()

    def on_response(response: Any) -> None:
        response.read()
        trace.write(f"<<< {response.status_code}\n")
        for k, v in response.headers.items():
            trace.write(f"<<< {k}: {v}\n")
        if response.text:
            trace.write(f"<<< {response.text}\n")
        trace.write("\n")
        trace.flush()

    return {"request": [on_request], "response": [on_response]}


def spc_unsupported(config: Any, tags: set[str]) -> str | None:
    """Name the feature the SPC declares unsupported that one of `tags` exercises."""
    if config is None:
        return None
    for tag in tags:
        feature = SPC_FEATURE_TAGS.get(tag.split(":", 1)[0])
        if feature is None:
            continue
        section = getattr(config, feature, None)
        if section is not None and getattr(section, "supported", None) is False:
            return feature
    return None


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Run every scim2-tester check against a SCIM server."
    )
    parser.add_argument("base_url", help="SCIM base URL, e.g. http://127.0.0.1:8080/scim/v2")
    parser.add_argument("token", help="bearer token sent in the Authorization header")
    parser.add_argument(
        "--trace",
        default=os.environ.get("SCIMITAR_CONFORMANCE_TRACE") or None,
        help="append every HTTP request and response to this file",
    )
    parser.add_argument(
        "--allow-skip",
        action="append",
        default=[],
        metavar="REGEX",
        help="count a SKIPPED result whose reason matches REGEX as skipped, not failed",
    )
    parser.add_argument(
        "--require-resource-types",
        default="User,Group",
        help="comma-separated resource types whose CRUD checks must have run "
        "(default: User,Group; empty to disable)",
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="HTTP timeout in seconds")
    args = parser.parse_args()

    try:
        from httpx2 import Client
        from scim2_client.engines.httpx2 import SyncSCIMClient
        from scim2_tester import check_server
    except ImportError as exc:
        print(f"cannot import scim2-tester: {exc}", file=sys.stderr)
        print("install it with: pip install -r .ci/conformance-requirements.txt", file=sys.stderr)
        print("0 passed, 1 failed")
        return 2

    try:
        tester_version = version("scim2-tester")
    except PackageNotFoundError:  # pragma: no cover
        tester_version = "?"

    base_url = args.base_url.rstrip("/")
    print(f"scim2-tester {tester_version}: checking {base_url}")
    sys.stdout.flush()

    http = Client(
        base_url=base_url,
        headers={"Authorization": f"Bearer {args.token}"},
        timeout=args.timeout,
        event_hooks=make_tracer(args.trace) if args.trace else None,
    )
    client = SyncSCIMClient(http)

    # (status, name, reason, counted-as, details)
    rows: list[tuple[str, str, str, str, str | None]] = []

    try:
        results = check_server(client)
    except Exception:  # noqa: BLE001 - anything escaping the tester is a failure
        results = []
        rows.append(
            ("CRITICAL", "check_server", "scim2-tester raised an exception", "failed",
             traceback.format_exc())
        )

    config = None
    try:
        config = client.provider.config
    except Exception:  # noqa: BLE001
        config = None

    allowed_skips = [re.compile(p) for p in args.allow_skip]

    for result in results:
        status = result.status.name
        name = result.title or "?"
        if result.resource_type:
            name = f"{name} [{result.resource_type}]"
        reason = result.reason or ""
        details = None

        if status in PASSING:
            counted = "passed"
        elif status == "SKIPPED":
            feature = spc_unsupported(config, set(result.tags or ()))
            if feature:
                counted = "skipped"
                reason = f"{reason} (ServiceProviderConfig: {feature} unsupported)"
            elif any(p.search(reason) for p in allowed_skips):
                counted = "skipped"
                reason = f"{reason} (allowed by --allow-skip)"
            else:
                counted = "failed"
                reason = f"{reason} (skip not justified by ServiceProviderConfig)"
        else:
            counted = "failed"

        if counted == "failed" and result.data is not None:
            details = describe_data(result.data)
        rows.append((status, name, reason, counted, details))

    # Checks that must have run: scim2-tester stops after discovery when the
    # server cannot be described, and silently tests only what /ResourceTypes lists.
    if results:
        required = [t.strip() for t in args.require_resource_types.split(",") if t.strip()]
        tested = {r.resource_type for r in results if r.resource_type}
        for resource_type in required:
            if resource_type not in tested:
                rows.append(
                    ("ERROR", f"resource_type_checks [{resource_type}]",
                     f"no check ran on resource type {resource_type!r} "
                     "(discovery failed or /ResourceTypes does not list it)",
                     "failed", None)
                )

    width = max((len(r[0]) for r in rows), default=8)
    for status, name, reason, counted, _ in rows:
        mark = {"passed": "ok  ", "failed": "FAIL", "skipped": "skip"}[counted]
        line = f"{mark} {status:<{width}} {name}"
        if reason:
            line += f"  {one_line(reason)}"
        print(line)

    failures = [r for r in rows if r[3] == "failed" and r[4]]
    if failures:
        print()
        print("Failure details:")
        for status, name, _, _, details in failures:
            text = one_line(details) if "Traceback" not in details else details
            if len(text) > DETAIL_LIMIT:
                text = text[:DETAIL_LIMIT] + f"... ({len(text) - DETAIL_LIMIT} more chars)"
            print(f"  {status} {name}: {text}")
        print()

    passed = sum(1 for r in rows if r[3] == "passed")
    failed = sum(1 for r in rows if r[3] == "failed")
    skipped = sum(1 for r in rows if r[3] == "skipped")
    if passed == 0 and failed == 0:
        failed = 1
        print("FAIL no check ran")

    summary = f"{passed} passed, {failed} failed"
    if skipped:
        summary += f", {skipped} skipped"
    print(summary)
    sys.stdout.flush()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
