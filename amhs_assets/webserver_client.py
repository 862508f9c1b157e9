"""A small client of the Dagster webserver's GraphQL API (the one the UI uses): launch an asset
backfill over day partitions and follow it. `amhs backfill` and bench_distributed use it; with
the production profile the daemon runs the backfill and the Celery workers its steps."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable, Sequence

LAUNCH = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
    ... on UnauthorizedError { message }
    ... on PartitionSetNotFoundError { message }
    ... on RunConflict { message }
  }
}"""

STATUS = """
query Status($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill { id status numPartitions }
    ... on PythonError { message }
  }
}"""

ENDED = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}


class WebserverError(RuntimeError):
    """The webserver refused a request or answered an error, with its message."""


def graphql(url: str, query: str, variables: dict, timeout_s: float = 60) -> dict:
    """One GraphQL request to the webserver at url (http://host:port)."""
    request = urllib.request.Request(
        url.rstrip("/") + "/graphql", data=json.dumps({"query": query, "variables": variables}).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout_s) as answer:
        body = json.loads(answer.read())
    if body.get("errors"):
        raise WebserverError(f"{url}: {body['errors'][0].get('message')}")
    return body["data"]


def launch_backfill(url: str, assets: Sequence[str], partitions: Sequence[str],
                    tags: dict[str, str] | None = None) -> str:
    """An asset backfill of `assets` over `partitions` (the daemon orders the days as the
    partition mappings say); its id."""
    params = {"partitionNames": list(partitions),
              "assetSelection": [{"path": [a]} for a in assets],
              "tags": [{"key": k, "value": v} for k, v in (tags or {}).items()]}
    out = graphql(url, LAUNCH, {"params": params})["launchPartitionBackfill"]
    if out["__typename"] != "LaunchBackfillSuccess":
        raise WebserverError(f"backfill not launched ({out['__typename']}): {out.get('message')}")
    return out["backfillId"]


def backfill_status(url: str, backfill_id: str) -> str:
    """REQUESTED, COMPLETED_SUCCESS, COMPLETED_FAILED, FAILED, CANCELED, ..."""
    out = graphql(url, STATUS, {"id": backfill_id})["partitionBackfillOrError"]
    if out["__typename"] != "PartitionBackfill":
        raise WebserverError(f"backfill {backfill_id}: {out.get('message')}")
    return out["status"]


def wait_for_backfill(url: str, backfill_id: str, timeout_s: float = 1800,
                      on_poll: Callable[[str], None] | None = None, poll_s: float = 2) -> str:
    """Poll until the backfill has ended; its final status (TimeoutError if it has not)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = backfill_status(url, backfill_id)
        if on_poll:
            on_poll(status)
        if status in ENDED:
            return status
        time.sleep(poll_s)
    raise TimeoutError(f"backfill {backfill_id} still {status} after {timeout_s:.0f} s")
