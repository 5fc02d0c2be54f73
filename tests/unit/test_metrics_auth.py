"""The pure parts of the /metrics guard (the API calls are exercised in tests/e2e/test_metrics_auth.py)."""

from __future__ import annotations

from codepilot_operator.reconcile.metrics_auth import access_review, bearer_token, token_review


def test_only_a_bearer_token_counts() -> None:
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer   abc ") == "abc"
    for header in (None, "", "Bearer", "Bearer  ", "Basic YWxpY2U6c2VjcmV0", "abc"):
        assert bearer_token(header) is None, header


def test_the_access_review_asks_for_exactly_this_user_and_path() -> None:
    """Groups, uid and extra go along: RBAC bindings to a group (system:serviceaccounts) must count."""
    user = {
        "username": "system:serviceaccount:monitoring:prometheus",
        "uid": "u-1",
        "groups": ["system:serviceaccounts", "system:authenticated"],
        "extra": {"k": ["v"]},
    }
    review = access_review(user, "/metrics")
    assert review["kind"] == "SubjectAccessReview" and review["apiVersion"] == "authorization.k8s.io/v1"
    assert review["spec"] == {
        "nonResourceAttributes": {"path": "/metrics", "verb": "get"},
        "user": user["username"],
        "uid": "u-1",
        "groups": user["groups"],
        "extra": {"k": ["v"]},
    }
    assert token_review("t") == {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": "t"},
    }
