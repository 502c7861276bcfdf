"""Schemathesis hooks of tests/suites/api-contract.sh (loaded through SCHEMATHESIS_HOOKS).

HUBPLANE_CONTRACT_MODE selects what a run proves:

  valid    the run holds a valid admin token: schemathesis' own checks apply, and the tokens
           named in HUBPLANE_CONTRACT_KEEP_TOKENS (comma-separated ids) are never revoked, so the
           run cannot lock itself out halfway (schemathesis reuses ids it has seen in responses,
           so DELETE /api/v1/tokens/{id} would otherwise revoke the very token it runs with).
  refused  the run holds no token, or one the hub never issued: the check
           `no_success_without_a_valid_token` fails on every 2xx answer.
"""

from __future__ import annotations

import os
import uuid

import schemathesis
from hypothesis.internal import lambda_sources

MODE = os.environ.get("HUBPLANE_CONTRACT_MODE", "valid")
KEEP_TOKENS = {t for t in os.environ.get("HUBPLANE_CONTRACT_KEEP_TOKENS", "").split(",") if t}

# CPython 3.11 (Debian 12's 3.11.2, and 3.11.7 here) can raise "SystemError: AST constructor
# recursion depth mismatch" from ast.parse when it is called deep in a recursion (CPython
# gh-106905). Hypothesis calls ast.parse only to describe a lambda in a strategy's repr, which
# it builds while drawing recursive JSON values (the `contract` of POST /api/v1/capabilities):
# the run then dies with a schemathesis "Runtime Error" that says nothing about the API. The
# description is cosmetic, so it falls back to a plain one.
_describe_lambda = lambda_sources.lambda_description


def _lambda_description(f):
    try:
        return _describe_lambda(f)
    except SystemError:
        return "lambda: <source unavailable>"


lambda_sources.lambda_description = _lambda_description


@schemathesis.check
def no_success_without_a_valid_token(ctx, response, case):
    """Every documented operation is protected: without a token the hub issued, nothing succeeds."""
    if MODE != "refused":
        return None
    if 200 <= response.status_code < 300:
        raise AssertionError(
            f"{case.method} {case.formatted_path} answered {response.status_code} "
            "to a request without a valid token"
        )
    return None


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    """Keeps the run's own tokens: a revocation of one of them goes to an id nobody holds."""
    if (
        case.method.upper() == "DELETE"
        and case.path == "/api/v1/tokens/{id}"
        and str((case.path_parameters or {}).get("id")) in KEEP_TOKENS
    ):
        case.path_parameters["id"] = str(uuid.UUID(int=0))
