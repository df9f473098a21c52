"""Schemathesis hooks for `cargo xtask test` (loaded through SCHEMATHESIS_HOOKS).

Every hook models state the OpenAPI document cannot express; none turns off a check.
"""

import ast
import json
import os
import re
import sys
import threading
import uuid

import requests
import schemathesis

# CPython before 3.11.8 / 3.12.1 counts AST recursion depth per interpreter, not per thread
# (gh-106905): two workers running hypothesis' `ast.parse` at once fail with "AST
# constructor recursion depth mismatch". Serialising the calls is enough.
if sys.version_info < (3, 12, 1):
    _AST_LOCK = threading.Lock()
    _ast_parse = ast.parse

    def _serialised_parse(*args, **kwargs):
        with _AST_LOCK:
            return _ast_parse(*args, **kwargs)

    ast.parse = _serialised_parse

# The documented Idempotency-Key schema (ledger/src/openapi.rs).
IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9._:@-]{1,128}$")


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    """Give every schema-valid Idempotency-Key a fresh value, as a real client does.

    The generator repeats small keys ("0", "a") across different bodies, and the contract
    rejects a reused key with a different body (DESIGN.md: 422 idempotency_conflict). A
    valid key keeps its length when it can (the 128 boundary stays tested); invalid keys
    (negative cases) are left alone.
    """
    headers = case.headers or {}
    key = headers.get("Idempotency-Key")
    if not isinstance(key, str) or not IDEMPOTENCY_KEY.match(key):
        return
    fresh = uuid.uuid4().hex
    headers["Idempotency-Key"] = key[: len(key) - len(fresh)] + fresh if len(key) > len(fresh) else fresh


# Field errors for rules JSON Schema cannot state, by message prefix (the ledger's
# FieldError messages): a schema-valid request can break them, so refusing it is right.
INEXPRESSIBLE_RULES = (
    # Relations between fields (ledger/src/catalog/admin/{fields,create}.rs).
    "the window must open before it closes",
    "need 1 <= min_per_order <= max_per_order",
    "all zones of an event share one currency",
    # A date-time `format` has no bounds (domain/src/fields.rs `instant`; the document's
    # descriptions give the range).
    "must be from 2000-01-01",
    # Names from data the schema does not carry: the tz database, the category table.
    "must be an IANA time zone",
    "unknown category",
    # An opaque `next_cursor` only the ledger issues (GET /v1/events).
    "not a cursor from this API",
    # Assigned seating: which fields go with which seating, and counts across a layout
    # (domain/src/seats.rs, ledger/src/catalog/admin/create.rs).
    "give the seats as either `rows` or `list`",
    "only an assigned zone has seats",
    "an assigned zone needs its seats",
    "required for a general-admission zone",
    "an assigned zone's capacity is its seat count",
    "a zone needs at least one seat",
    "the same seat twice",
    "at most 100000 seats per zone",
    "the row's numbers must lie in",
    "each gap after a seat of the row but its last",
    # Seat holds (domain/src/holds.rs): `seats`, `best_available` and `quantity` together,
    # and seat indexes (the schema states count and uniqueness, not each item's range).
    "ask for `seats` or for `best_available`, not both",
    "must be the number of seats",
    "required unless `seats` names the seats",
    "1 to 100 different seat indexes",
    # Webhook endpoints (ledger/src/webhooks/endpoints.rs): where a URL's name resolves,
    # and to what, is known only by looking it up; the per-tenant endpoint count.
    "resolves to a loopback, private, link-local or metadata address",
    "does not resolve",
    "must name a host",
    "a tenant has at most",
    "1 to 1000 different seat indexes",
    # Check-in (domain/src/checkin.rs): a scan's time against the clock, and `force` with it.
    "within the last 30 days and at most 5 minutes ahead",
    "an offline entry (`force`) says when it happened",
)


@schemathesis.hook
def filter_failure(ctx, failure, case, response):
    """Keep every failure but "valid request rejected" answered 422 for those rules alone.

    If any refused field is refused for another reason, the failure stays.
    """
    if failure.code != "ST202" or response.status_code != 422:
        return True
    try:
        problem = json.loads(response.content)
    except ValueError:
        return True
    errors = problem.get("errors") or []
    inexpressible = [
        error for error in errors if str(error.get("message", "")).startswith(INEXPRESSIBLE_RULES)
    ]
    return not (problem.get("code") == "validation_failed" and errors and inexpressible == errors)


# The run's own admin token (schemathesis.toml's `bearer`) must keep working: every admin
# operation after it would answer 401. The token API lists the token's id (GET
# /admin/v1/tokens), and the run threads ids from answers into `POST
# /admin/v1/tokens/{token_id}/revoke`; that one call gets an id of no token (404) instead.
# Revoking the other tokens the run made stays tested.
REVOKE_TOKEN_PATH = "/admin/v1/tokens/{token_id}/revoke"
ADMIN_TOKEN = os.environ.get("TESSERA_ADMIN_TOKEN", "")
# The token's characters the listing shows (tessera_domain::tokens::TOKEN_SHOWN_CHARS).
TOKEN_SHOWN_CHARS = 12
_OWN_TOKEN_LOCK = threading.Lock()
_own_token_id = None


def _own_token(base_url):
    """The id of the run's admin token, looked up once by its listed prefix."""
    global _own_token_id
    with _OWN_TOKEN_LOCK:
        if _own_token_id is None:
            listing = requests.get(
                base_url.rstrip("/") + "/admin/v1/tokens",
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                timeout=15,
            )
            listing.raise_for_status()
            prefix = ADMIN_TOKEN[:TOKEN_SHOWN_CHARS]
            own = [t["token_id"] for t in listing.json()["tokens"] if t.get("prefix") == prefix]
            _own_token_id = own[0] if own else ""
        return _own_token_id


@schemathesis.hook("before_call")
def keep_own_token(ctx, case, **kwargs):
    if case.operation.path != REVOKE_TOKEN_PATH or not ADMIN_TOKEN:
        return
    params = case.path_parameters or {}
    if params.get("token_id") == _own_token(case.operation.schema.get_base_url()):
        params["token_id"] = str(uuid.uuid4())


# A queue poll (GET /v1/events/{event_id}/queue) needs a ticket the deployment signed, which
# only joining that event's queue gives (the document cannot say so): a generated ticket is
# refused 403 every time. When the event's queue is on, the poll gets a real ticket from a
# join (so the 200 answer is checked); otherwise the generated one goes out as it is (404,
# 409 queue_off and the 403 stay tested).
QUEUE_POLL_PATH = "/v1/events/{event_id}/queue"


@schemathesis.hook("before_call")
def poll_with_a_joined_ticket(ctx, case, **kwargs):
    if case.operation.path != QUEUE_POLL_PATH or case.operation.method.upper() != "GET":
        return
    event_id = (case.path_parameters or {}).get("event_id")
    if not isinstance(event_id, str):
        return
    base_url = case.operation.schema.get_base_url().rstrip("/")
    try:
        joined = requests.post(f"{base_url}/v1/events/{event_id}/queue", timeout=15)
    except requests.RequestException:
        return
    if joined.status_code in (200, 201):
        headers = case.headers if case.headers is not None else {}
        headers["Tessera-Queue-Ticket"] = joined.json()["ticket"]
        case.headers = headers
