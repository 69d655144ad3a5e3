#!/usr/bin/env python3
"""Drives gitpat's GitLab v4 API with the unmodified python-gitlab client.

Usage:
    python_gitlab_conformance.py [URL [ADMIN_TOKEN]]

or with the environment variables GITPAT_URL and GITPAT_ADMIN_TOKEN (the
token should not go on a command line other users can read). The token must
be an admin's personal access token with the `api` scope.

Only python-gitlab's public API is used (see tests/python/CONTRACT.md for the
HTTP each call sends and what it needs back). Each check prints one line; the
first failure prints FAIL with the reason and exits 1. Token values are never
printed: only token ids.

The script creates its own users, tokens and projects with a random suffix,
so it can run more than once against the same server. It changes instance
settings and restores them at the end. It needs python-gitlab 8.x
(`pip install python-gitlab==8.6.0`) and `git` on PATH (one check clones
with a token made through the API).

Where gitpat's contract and GitLab agree, the script expects exactly that:
status codes, and the error messages GitLab's own clients read.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import shutil
import subprocess
import sys
import traceback
import warnings

try:
    import gitlab
    from gitlab import exceptions as gle
    from gitlab.const import AccessLevel
except ImportError:
    print(
        "FAIL python-gitlab is not installed for this interpreter "
        f"({sys.executable}): install it in a venv "
        "(`python3 -m venv DIR && DIR/bin/pip install python-gitlab==8.6.0`) and run this with DIR/bin/python"
    )
    sys.exit(2)

# python-gitlab warns (UserWarning) when a URL the server returns (a user's
# web_url, a Link header's next page) does not start with the URL the client
# was given: that breaks pagination. Such a warning is a failure here.
warnings.filterwarnings("error", category=UserWarning)

TIMEOUT = 60  # seconds, for every HTTP request

_SECRETS: list[str] = []


class CheckFailed(Exception):
    pass


def secret(value: str) -> str:
    """Remembers a token value so that no output ever shows it."""
    if not isinstance(value, str) or not value:
        raise CheckFailed(f"expected a token string, got {type(value).__name__}")
    _SECRETS.append(value)
    return value


def mask(text: str) -> str:
    for s in _SECRETS:
        text = text.replace(s, "[token]")
    return text


def ok(desc: str) -> None:
    print(mask(f"ok   {desc}"), flush=True)


def check(cond: bool, desc: str, detail: str = "") -> None:
    if not cond:
        raise CheckFailed(f"{desc}: {detail}" if detail else desc)
    ok(desc)


def eq(actual, expected, desc: str) -> None:
    check(actual == expected, desc, f"expected {expected!r}, got {actual!r}")


def raises(exc_cls, code: int, desc: str, fn, error: str | None = None):
    """Calls fn; it must raise python-gitlab's exc_cls with HTTP status `code`
    and, if given, python-gitlab's parsed error message `error` (the body's
    "message", else its "error")."""
    try:
        fn()
    except gle.GitlabError as e:
        got = f"{type(e).__name__} {e.response_code}: {e.error_message!r}"
        if not isinstance(e, exc_cls) or e.response_code != code:
            raise CheckFailed(f"{desc}: expected {exc_cls.__name__} {code}, got {got}") from None
        if error is not None and e.error_message != error:
            raise CheckFailed(f"{desc}: expected the error message {error!r}, got {got}") from None
        ok(f"{desc} -> {exc_cls.__name__} {code}")
        return e
    raise CheckFailed(f"{desc}: expected {exc_cls.__name__} {code}, but the call succeeded")


def utc_timestamp(value, desc: str) -> dt.datetime:
    """An ISO 8601 timestamp in UTC, as GitLab writes them."""
    if not isinstance(value, str):
        raise CheckFailed(f"{desc}: expected an ISO 8601 string, got {value!r}")
    try:
        t = dt.datetime.fromisoformat(value)
    except ValueError:
        raise CheckFailed(f"{desc}: not ISO 8601: {value!r}") from None
    if t.utcoffset() != dt.timedelta(0):
        raise CheckFailed(f"{desc}: not UTC: {value!r}")
    return t


def client(url: str, token: str, **kw) -> gitlab.Gitlab:
    return gitlab.Gitlab(url, private_token=token, timeout=TIMEOUT, **kw)


def today() -> dt.date:
    return dt.datetime.now(dt.timezone.utc).date()


def days(n: int) -> str:
    return (today() + dt.timedelta(days=n)).isoformat()


def authenticates(url: str, token: str) -> bool:
    """True if gl.auth() works with token, False on 401; anything else fails."""
    gl = client(url, token)
    try:
        gl.auth()
    except gle.GitlabAuthenticationError as e:
        if e.response_code != 401:
            raise CheckFailed(f"GitlabAuthenticationError with HTTP {e.response_code}, not 401") from None
        return False
    return True


def run(url: str, admin_token: str) -> None:
    url = url.rstrip("/")
    secret(admin_token)
    sfx = secrets.token_hex(3)
    ok(f"python-gitlab {gitlab.__version__} against {url}, run {sfx}")

    # ---------------------------------------------------------------- basics
    gl = client(url, admin_token)
    version, revision = gl.version()
    check(
        isinstance(version, str) and version not in ("", "unknown"),
        "gl.version(): GET /version gives a version",
        f"python-gitlab read {version!r} (it says 'unknown' when the reply is not JSON with version and revision)",
    )
    check(isinstance(revision, str) and revision not in ("", "unknown"), "gl.version(): and a revision", repr(revision))

    gl.auth()
    check(gl.user is not None and isinstance(gl.user.id, int), "gl.auth(): GET /user as the admin", repr(gl.user))
    eq(gl.user.is_admin, True, "gl.auth(): the admin's is_admin")
    admin_id = gl.user.id

    bogus = "glpat-" + secrets.token_urlsafe(15)[:20]
    e = raises(
        gle.GitlabAuthenticationError,
        401,
        "gl.auth() with an unknown token",
        lambda: client(url, bogus).auth(),
    )
    eq(e.error_message, "401 Unauthorized", "the 401 body's message")

    bearer = gitlab.Gitlab(url, oauth_token=admin_token, timeout=TIMEOUT)
    bearer.auth()
    eq(bearer.user.id, admin_id, "gl.auth() with the token as Authorization: Bearer (oauth_token=)")

    # ----------------------------------------------------------------- users
    password = "pygl-" + secrets.token_hex(8)
    names = ["alice", "bob", "carol", "dave", "erin"]
    users = {}
    for n in names:
        username = f"pygl-{sfx}-{n}"
        u = gl.users.create(
            {
                "username": username,
                "email": f"{username}@example.com",
                "name": f"{n.capitalize()} Pygl",
                "password": password,
                "skip_confirmation": True,
            }
        )
        users[n] = u
        check(isinstance(u.id, int), f"gl.users.create(): {username} has id {u.id}", repr(u.id))
    alice, bob, carol = users["alice"], users["bob"], users["carol"]
    eq(alice.username, f"pygl-{sfx}-alice", "created user: username")
    eq(alice.name, "Alice Pygl", "created user: name")
    eq(alice.email, f"pygl-{sfx}-alice@example.com", "created user: email (shown to an admin)")
    eq(alice.state, "active", "created user: state")
    eq(alice.is_admin, False, "created user: is_admin")
    utc_timestamp(alice.created_at, "created user: created_at")
    ok("created user: created_at is ISO 8601 UTC")

    raises(
        gle.GitlabCreateError,
        409,
        "gl.users.create() with a taken username",
        lambda: gl.users.create(
            {
                "username": alice.username,
                "email": f"other-{sfx}@example.com",
                "name": "Dup",
                "password": password,
            }
        ),
        error="Username has already been taken",
    )
    raises(
        gle.GitlabCreateError,
        400,
        "gl.users.create() without an email",
        lambda: gl.users.create({"username": f"pygl-{sfx}-noemail", "name": "No Email", "password": password}),
        error="email is missing",
    )

    got = gl.users.get(alice.id)
    eq((got.id, got.username, got.email), (alice.id, alice.username, alice.email), "gl.users.get(id)")
    raises(
        gle.GitlabGetError,
        404,
        "gl.users.get() of a missing id",
        lambda: gl.users.get(999999999),
        error="404 User Not Found",
    )

    found = gl.users.list(username=alice.username)
    eq([u.id for u in found], [alice.id], "gl.users.list(username=...)")

    want = {u.id for u in users.values()}
    all_found = gl.users.list(search=sfx, per_page=2, get_all=True)
    eq(sorted(u.id for u in all_found), sorted(want), "gl.users.list(search=, per_page=2, get_all=True) follows Link")

    it = gl.users.list(search=sfx, per_page=2, iterator=True)
    eq(it.per_page, 2, "iterator: X-Per-Page")
    eq(it.total, 5, "iterator: X-Total")
    eq(it.total_pages, 3, "iterator: X-Total-Pages")
    eq(it.current_page, 1, "iterator: X-Page on the first page")
    eq(it.next_page, 2, "iterator: X-Next-Page on the first page")
    eq(it.prev_page, None, "iterator: X-Prev-Page empty or absent on the first page")
    ids = [u.id for u in it]
    eq(sorted(ids), sorted(want), "iterator: every user exactly once over 3 pages")
    eq(it.current_page, 3, "iterator: X-Page on the last page")
    eq(it.next_page, None, "iterator: X-Next-Page empty or absent on the last page")
    eq(it.prev_page, 2, "iterator: X-Prev-Page on the last page")
    page3 = gl.users.list(search=sfx, per_page=2, page=3)
    eq(len(page3), 1, "gl.users.list(per_page=2, page=3): the last page")

    alice.name = "Alice Renamed"
    alice.save()
    eq(alice.name, "Alice Renamed", "user.save(): PUT /users/:id returns the user")
    eq(gl.users.get(alice.id).name, "Alice Renamed", "user.save(): the new name is stored")

    dave = users["dave"]
    eq(dave.block(), True, "user.block(): POST /users/:id/block answers true")
    eq(gl.users.get(dave.id).state, "blocked", "user.block(): state is blocked")
    blocked_ids = {u.id for u in gl.users.list(search=sfx, blocked=True, get_all=True)}
    eq(blocked_ids, {dave.id}, "gl.users.list(blocked=True)")
    active_ids = {u.id for u in gl.users.list(search=sfx, active=True, get_all=True)}
    eq(active_ids, want - {dave.id}, "gl.users.list(active=True)")
    eq(dave.unblock(), True, "user.unblock(): POST /users/:id/unblock answers true")
    eq(gl.users.get(dave.id).state, "active", "user.unblock(): state is active")

    # ------------------------------------------------------ personal tokens
    exp30 = days(30)
    t_alice = alice.personal_access_tokens.create(
        {"name": "pygl-api", "scopes": ["api"], "expires_at": exp30, "description": "python-gitlab conformance"}
    )
    alice_token = secret(t_alice.token)
    check(isinstance(t_alice.id, int), f"user.personal_access_tokens.create(): token id {t_alice.id}")
    eq(t_alice.name, "pygl-api", "created token: name")
    eq(t_alice.scopes, ["api"], "created token: scopes")
    eq(t_alice.expires_at, exp30, "created token: expires_at as YYYY-MM-DD")
    eq(t_alice.description, "python-gitlab conformance", "created token: description")
    eq(t_alice.user_id, alice.id, "created token: user_id")
    eq((t_alice.active, t_alice.revoked), (True, False), "created token: active, not revoked")
    check(alice_token.startswith("glpat-"), "created token: the secret has the glpat- prefix")
    utc_timestamp(t_alice.created_at, "created token: created_at")
    ok("created token: created_at is ISO 8601 UTC")

    agl = client(url, alice_token)
    agl.auth()
    eq(agl.user.username, alice.username, "gl.auth() with the new token: GET /user is alice")
    me = agl.personal_access_tokens.get("self")
    eq((me.id, me.name, me.scopes), (t_alice.id, "pygl-api", ["api"]), "personal_access_tokens.get('self')")
    check(not hasattr(me, "token"), "GET /personal_access_tokens/self does not return the secret")
    got = gl.personal_access_tokens.get(t_alice.id)
    eq((got.id, got.user_id, got.expires_at), (t_alice.id, alice.id, exp30), "personal_access_tokens.get(id) by an admin")
    check(not hasattr(got, "token"), "GET /personal_access_tokens/:id does not return the secret")
    raises(
        gle.GitlabGetError,
        404,
        "personal_access_tokens.get() of a missing id",
        lambda: gl.personal_access_tokens.get(999999999),
        error="404 Personal Access Token Not Found",
    )
    own = agl.personal_access_tokens.list(get_all=True)
    check(
        t_alice.id in {t.id for t in own} and all(t.user_id == alice.id for t in own),
        "a user's personal_access_tokens.list() holds only their tokens",
        repr([(t.id, t.user_id) for t in own]),
    )
    raises(
        gle.GitlabAuthenticationError,
        401,
        "a user's personal_access_tokens.list(user_id=<another user>)",
        lambda: agl.personal_access_tokens.list(user_id=bob.id, get_all=True),
        error="401 Unauthorized",
    )

    # Pagination over a user who has exactly five tokens.
    carol_ids = set()
    for i in range(5):
        t = carol.personal_access_tokens.create({"name": f"pygl-page-{i}", "scopes": ["read_api"], "expires_at": exp30})
        secret(t.token)
        carol_ids.add(t.id)
    ok(f"created 5 tokens for carol: {sorted(carol_ids)}")
    listed = gl.personal_access_tokens.list(user_id=carol.id, per_page=2, get_all=True)
    eq({t.id for t in listed}, carol_ids, "personal_access_tokens.list(user_id=, per_page=2, get_all=True)")
    eq(len(listed), 5, "personal_access_tokens.list(): no token twice")
    it = gl.personal_access_tokens.list(user_id=carol.id, per_page=2, iterator=True)
    eq((it.total, it.total_pages, it.per_page), (5, 3, 2), "token iterator: X-Total, X-Total-Pages, X-Per-Page")
    eq({t.id for t in it}, carol_ids, "token iterator: all five")

    # Revoke through the object.
    t = alice.personal_access_tokens.create({"name": "pygl-revoke", "scopes": ["api"], "expires_at": exp30})
    revoke_me = secret(t.token)
    check(authenticates(url, revoke_me), f"token {t.id} authenticates before revocation")
    gl.personal_access_tokens.get(t.id).delete()
    ok(f"token.delete(): DELETE /personal_access_tokens/{t.id}")
    check(not authenticates(url, revoke_me), f"revoked token {t.id} gets 401")
    got = gl.personal_access_tokens.get(t.id)
    eq((got.revoked, got.active), (True, False), "revoked token: revoked, not active")
    inactive = gl.personal_access_tokens.list(user_id=alice.id, state="inactive", get_all=True)
    check(
        t.id in {x.id for x in inactive} and all(not x.active for x in inactive),
        "personal_access_tokens.list(state='inactive')",
        repr([(x.id, x.active) for x in inactive]),
    )
    revoked = gl.personal_access_tokens.list(user_id=alice.id, revoked=True, get_all=True)
    check(
        t.id in {x.id for x in revoked} and all(x.revoked for x in revoked),
        "personal_access_tokens.list(revoked=True), sent as revoked=True",
        repr([(x.id, x.revoked) for x in revoked]),
    )
    active = gl.personal_access_tokens.list(user_id=alice.id, state="active", get_all=True)
    check(
        t_alice.id in {x.id for x in active} and t.id not in {x.id for x in active},
        "personal_access_tokens.list(state='active')",
        repr([x.id for x in active]),
    )

    # Revoke the calling token.
    t = alice.personal_access_tokens.create({"name": "pygl-self-revoke", "scopes": ["read_user"], "expires_at": exp30})
    self_token = secret(t.token)
    client(url, self_token).personal_access_tokens.delete("self")
    ok(f"personal_access_tokens.delete('self') with token {t.id} (read_user scope)")
    check(not authenticates(url, self_token), "the self-revoked token gets 401")

    # Rotate through the object: the new token works, the old one is refused,
    # and using the old one burns the new one (family revocation).
    t = alice.personal_access_tokens.create({"name": "pygl-rotate", "scopes": ["api"], "expires_at": exp30})
    old_secret, old_id = secret(t.token), t.id
    before = today()
    obj = gl.personal_access_tokens.get(old_id)
    obj.rotate()
    new_secret = secret(obj.token)
    check(obj.id != old_id, f"token.rotate(): POST /personal_access_tokens/{old_id}/rotate gives token {obj.id}")
    check(new_secret != old_secret, "token.rotate(): a new secret")
    eq((obj.name, obj.scopes, obj.user_id), ("pygl-rotate", ["api"], alice.id), "rotated token: same name, scopes, user")
    check(
        obj.expires_at in {(d + dt.timedelta(days=7)).isoformat() for d in (before, today())},
        "rotated token without expires_at: expires in 7 days",
        repr(obj.expires_at),
    )
    check(authenticates(url, new_secret), "the rotated token's new secret authenticates")
    eq(gl.personal_access_tokens.get(old_id).revoked, True, "the rotated-away token is revoked")
    check(not authenticates(url, old_secret), "the rotated-away secret gets 401")
    check(not authenticates(url, new_secret), "using the rotated-away secret revoked its successor too")
    eq(gl.personal_access_tokens.get(obj.id).revoked, True, "the successor is revoked")

    # Rotate through the manager, with an expiry date.
    t = alice.personal_access_tokens.create({"name": "pygl-rotate2", "scopes": ["api"], "expires_at": exp30})
    old_secret = secret(t.token)
    exp14 = days(14)
    res = gl.personal_access_tokens.rotate(t.id, expires_at=exp14)
    check(isinstance(res, dict), "personal_access_tokens.rotate(id, expires_at=) returns the JSON", repr(type(res)))
    new_secret = secret(res["token"])
    check(res["id"] != t.id, f"personal_access_tokens.rotate({t.id}): new token {res['id']}")
    eq(res["expires_at"], exp14, "rotate with expires_at: the new expiry")
    check(authenticates(url, new_secret), "the manager-rotated new secret authenticates")
    raises(
        gle.GitlabRotateError,
        400,
        "rotating the revoked predecessor",
        lambda: gl.personal_access_tokens.rotate(t.id),
        error="400 Bad request - Token already revoked",
    )

    # Rotate the calling token.
    t = alice.personal_access_tokens.create({"name": "pygl-self-rotate", "scopes": ["api"], "expires_at": exp30})
    self_secret = secret(t.token)
    sgl = client(url, self_secret)
    me = sgl.personal_access_tokens.get("self")
    me.rotate(self_rotate=True)
    rotated_secret = secret(me.token)
    check(me.id != t.id, f"token.rotate(self_rotate=True): POST /personal_access_tokens/self/rotate gives {me.id}")
    check(authenticates(url, rotated_secret), "the self-rotated new secret authenticates")
    eq(gl.personal_access_tokens.get(t.id).revoked, True, "the self-rotated-away token is revoked")
    check(not authenticates(url, self_secret), "the self-rotated-away secret gets 401")
    check(not authenticates(url, rotated_secret), "using it revoked the self-rotated successor too")
    t = alice.personal_access_tokens.create({"name": "pygl-self-rotate-ro", "scopes": ["read_api"], "expires_at": exp30})
    ro_gl = client(url, secret(t.token))
    raises(
        gle.GitlabRotateError,
        403,
        "personal_access_tokens.rotate('self') with a read_api token",
        lambda: ro_gl.personal_access_tokens.rotate("self"),
        error="insufficient_scope",
    )
    check(authenticates(url, t.token), "the read_api token that was refused rotation still authenticates")

    # Invalid token requests.
    raises(
        gle.GitlabCreateError,
        400,
        "user.personal_access_tokens.create() with an unknown scope",
        lambda: alice.personal_access_tokens.create({"name": "bad", "scopes": ["no_such_scope"]}),
        error="scopes does not have a valid value",
    )
    raises(
        gle.GitlabCreateError,
        400,
        "user.personal_access_tokens.create() expiring yesterday",
        lambda: alice.personal_access_tokens.create({"name": "bad", "scopes": ["api"], "expires_at": days(-1)}),
    )
    raises(
        gle.GitlabCreateError,
        403,
        "a non-admin's user.personal_access_tokens.create()",
        lambda: agl.users.get(bob.id, lazy=True).personal_access_tokens.create({"name": "x", "scopes": ["api"]}),
        error="403 Forbidden",
    )

    # --------------------------------------------------------------- scopes
    t = bob.personal_access_tokens.create({"name": "pygl-read-api", "scopes": ["read_api"], "expires_at": exp30})
    bgl = client(url, secret(t.token))
    bgl.auth()
    eq(bgl.user.id, bob.id, "a read_api token: gl.auth() works")
    bgl.projects.list(get_all=True)
    ok("a read_api token: gl.projects.list() works")
    e = raises(
        gle.GitlabCreateError,
        403,
        "a read_api token: gl.projects.create()",
        lambda: bgl.projects.create({"name": f"nope-{sfx}"}),
    )
    eq(e.error_message, "insufficient_scope", "the 403 body's error member")
    t = bob.personal_access_tokens.create({"name": "pygl-read-user", "scopes": ["read_user"], "expires_at": exp30})
    rgl = client(url, secret(t.token))
    rgl.auth()
    eq(rgl.user.id, bob.id, "a read_user token: gl.auth() works")
    raises(gle.GitlabListError, 403, "a read_user token: gl.projects.list()", lambda: rgl.projects.list(get_all=True))
    raises(
        gle.GitlabCreateError,
        403,
        "a non-admin's gl.users.create()",
        lambda: agl.users.create(
            {"username": f"pygl-{sfx}-x", "email": f"x-{sfx}@example.com", "name": "X", "password": password}
        ),
        error="403 Forbidden",
    )

    # ------------------------------------------------- impersonation tokens
    imp = alice.impersonationtokens.create({"name": "pygl-imp", "scopes": ["api"], "expires_at": exp30})
    imp_secret = secret(imp.token)
    check(isinstance(imp.id, int), f"user.impersonationtokens.create(): token {imp.id}")
    eq(imp.impersonation, True, "impersonation token: impersonation")
    eq((imp.name, imp.scopes, imp.expires_at), ("pygl-imp", ["api"], exp30), "impersonation token: name, scopes, expiry")
    igl = client(url, imp_secret)
    igl.auth()
    eq(igl.user.id, alice.id, "the impersonation token authenticates as alice")
    got = alice.impersonationtokens.get(imp.id)
    eq((got.id, got.impersonation, got.active), (imp.id, True, True), "user.impersonationtokens.get(id)")
    check(not hasattr(got, "token"), "GET impersonation_tokens/:id does not return the secret")
    act = alice.impersonationtokens.list(state="active", get_all=True)
    check(
        [x.id for x in act] == [imp.id],
        "user.impersonationtokens.list(state='active'): only impersonation tokens",
        repr([x.id for x in act]),
    )
    imp2 = alice.impersonationtokens.create({"name": "pygl-imp2", "scopes": ["read_user"], "expires_at": exp30})
    secret(imp2.token)
    alice.impersonationtokens.get(imp2.id).delete()
    ok(f"impersonation token.delete(): DELETE /users/{alice.id}/impersonation_tokens/{imp2.id}")
    inact = alice.impersonationtokens.list(state="inactive", get_all=True)
    eq([x.id for x in inact], [imp2.id], "user.impersonationtokens.list(state='inactive')")
    every = alice.impersonationtokens.list(get_all=True)
    eq(sorted(x.id for x in every), sorted([imp.id, imp2.id]), "user.impersonationtokens.list(): all states by default")
    imp_obj = alice.impersonationtokens.get(imp.id)
    imp_obj.delete()
    check(not authenticates(url, imp_secret), "the deleted impersonation token gets 401")
    raises(
        gle.GitlabGetError,
        404,
        "user.impersonationtokens.get() of a missing id",
        lambda: alice.impersonationtokens.get(999999999),
        error="404 Impersonation Token Not Found",
    )

    # --------------------------------------------------------------- projects
    tools = agl.projects.create({"name": "tools"})
    pwn = f"{alice.username}/tools"
    check(isinstance(tools.id, int), f"gl.projects.create({{'name': 'tools'}}): project {tools.id}")
    eq((tools.name, tools.path, tools.path_with_namespace), ("tools", "tools", pwn), "project: name, path, path_with_namespace")
    eq(tools.visibility, "private", "project: default visibility")
    eq(tools.http_url_to_repo, f"{url}/{pwn}.git", "project: http_url_to_repo")
    eq(tools.web_url, f"{url}/{pwn}", "project: web_url")
    check(isinstance(tools.namespace, dict), "project: namespace is an object", repr(tools.namespace))
    eq(tools.namespace.get("full_path"), alice.username, "project: namespace.full_path")
    check(isinstance(tools.namespace.get("id"), int), "project: namespace.id", repr(tools.namespace))
    utc_timestamp(tools.created_at, "project: created_at")
    utc_timestamp(tools.last_activity_at, "project: last_activity_at")
    ok("project: created_at and last_activity_at are ISO 8601 UTC")

    second = agl.projects.create(
        {
            "name": "Second Repo",
            "path": "second",
            "visibility": "internal",
            "description": "made by python-gitlab",
            "default_branch": "trunk",
        }
    )
    eq(
        (second.name, second.path, second.visibility, second.description, second.default_branch),
        ("Second Repo", "second", "internal", "made by python-gitlab", "trunk"),
        "gl.projects.create() with name, path, visibility, description, default_branch",
    )
    third = gl.projects.create({"name": "third", "namespace_id": tools.namespace["id"]})
    eq(third.path_with_namespace, f"{alice.username}/third", "an admin's gl.projects.create(namespace_id=alice's)")

    # GitLab answers a taken project path with 400 and per-field errors:
    # {"message": {"name": [...], "path": ["has already been taken"], ...}}.
    e = raises(
        gle.GitlabCreateError,
        400,
        "gl.projects.create() with a taken path",
        lambda: agl.projects.create({"name": "tools"}),
    )
    check(
        isinstance(e.error_message, dict) and "has already been taken" in e.error_message.get("path", []),
        "the 400 body's message holds path: ['has already been taken']",
        repr(e.error_message),
    )

    by_id = agl.projects.get(tools.id)
    by_path = agl.projects.get(pwn)
    eq((by_id.id, by_path.id), (tools.id, tools.id), "gl.projects.get(id) and gl.projects.get('ns/name')")
    e = raises(
        gle.GitlabGetError,
        404,
        "gl.projects.get() of a missing path",
        lambda: agl.projects.get(f"{alice.username}/missing-{sfx}"),
    )
    eq(e.error_message, "404 Project Not Found", "the 404 body's message")
    raises(
        gle.GitlabGetError,
        404,
        "a stranger's gl.projects.get() of a private project",
        lambda: bgl.projects.get(pwn),
        error="404 Project Not Found",
    )

    tools.description = "changed by python-gitlab"
    tools.visibility = "internal"
    tools.save()
    got = agl.projects.get(pwn)
    eq((got.description, got.visibility), ("changed by python-gitlab", "internal"), "project.save(): PUT /projects/:id")

    owned = agl.projects.list(owned=True, per_page=2, get_all=True)
    eq(
        sorted(p.id for p in owned),
        sorted([tools.id, second.id, third.id]),
        "gl.projects.list(owned=True, per_page=2, get_all=True)",
    )
    found = agl.projects.list(owned=True, search="second", get_all=True)
    eq([p.id for p in found], [second.id], "gl.projects.list(search=)")
    vis = agl.projects.list(owned=True, visibility="private", get_all=True)
    eq([p.id for p in vis], [third.id], "gl.projects.list(visibility='private')")

    # ---------------------------------------------------------------- members
    m = tools.members.create({"user_id": bob.id, "access_level": AccessLevel.DEVELOPER})
    eq((m.id, m.username, m.access_level), (bob.id, bob.username, 30), "project.members.create(user_id, access_level=30)")
    raises(
        gle.GitlabCreateError,
        409,
        "project.members.create() of an existing member",
        lambda: tools.members.create({"user_id": bob.id, "access_level": AccessLevel.REPORTER}),
        error="Member already exists",
    )
    members = tools.members.list(get_all=True)
    check(
        {(alice.id, 50), (bob.id, 30)} <= {(x.id, x.access_level) for x in members},
        "project.members.list(): the owner (50) and the new member (30)",
        repr([(x.id, x.access_level) for x in members]),
    )
    m = tools.members.get(bob.id)
    eq((m.id, m.access_level), (bob.id, 30), "project.members.get(user_id)")
    m.access_level = AccessLevel.MAINTAINER
    m.save()
    eq(tools.members.get(bob.id).access_level, 40, "member.save(): PUT /projects/:id/members/:user_id")
    mine = bgl.projects.list(membership=True, get_all=True)
    eq([p.id for p in mine], [tools.id], "gl.projects.list(membership=True) for the member")
    bp = bgl.projects.get(pwn)
    bp.description = "bob was here"
    raises(gle.GitlabUpdateError, 403, "a read_api token: project.save()", bp.save, error="insufficient_scope")

    git = shutil.which("git")
    check(git is not None, "git is on PATH (needed for the Git check)")
    t = bob.personal_access_tokens.create({"name": "pygl-git", "scopes": "read_repository", "expires_at": exp30})
    git_secret = secret(t.token)
    eq(t.scopes, ["read_repository"], "token created with scopes as a string (python-gitlab's documented form)")
    r = git_ls_remote(git, tools.http_url_to_repo, git_secret)
    check(r.returncode == 0, f"git ls-remote {tools.http_url_to_repo} with the read_repository token", mask(r.stderr))
    gl.personal_access_tokens.get(t.id).delete()
    r = git_ls_remote(git, tools.http_url_to_repo, git_secret)
    check(r.returncode != 0, "git ls-remote with that token once revoked fails", mask(r.stdout))

    m.delete()
    ok(f"member.delete(): DELETE /projects/{tools.id}/members/{bob.id}")
    raises(
        gle.GitlabGetError,
        404,
        "project.members.get() of a removed member",
        lambda: tools.members.get(bob.id),
        error="404 Member Not Found",
    )

    # ------------------------------------------------------------------ sudo
    t = gl.users.get(admin_id, lazy=True).personal_access_tokens.create(
        {"name": f"pygl-sudo-{sfx}", "scopes": ["api", "sudo"], "expires_at": exp30}
    )
    sudo_gl = client(url, secret(t.token))
    as_alice = sudo_gl.projects.list(owned=True, sudo=alice.username, get_all=True)
    eq(sorted(p.id for p in as_alice), sorted([tools.id, second.id, third.id]), "gl.projects.list(sudo=alice)")
    raises(
        gle.GitlabListError,
        403,
        "sudo with an api-only token",
        lambda: gl.projects.list(owned=True, sudo=alice.username, get_all=True),
        error="insufficient_scope",
    )
    raises(
        gle.GitlabListError,
        404,
        "sudo as a missing user",
        lambda: sudo_gl.projects.list(sudo=f"pygl-{sfx}-nobody", get_all=True),
        error=f"404 User with ID or username 'pygl-{sfx}-nobody' Not Found",
    )

    # -------------------------------------------------------------- settings
    s = gl.settings.get()
    for key in (
        "max_personal_access_token_lifetime",
        "enforce_personal_access_token_expiration",
        "password_authentication_enabled_for_git",
        "personal_access_token_prefix",
    ):
        check(key in s.attributes, f"gl.settings.get() has {key}", repr(sorted(s.attributes)))
    check(isinstance(s.password_authentication_enabled_for_git, bool), "settings: booleans are JSON booleans")
    original_lifetime = s.max_personal_access_token_lifetime
    original_git_pw = s.password_authentication_enabled_for_git
    raises(gle.GitlabGetError, 403, "a non-admin's gl.settings.get()", lambda: agl.settings.get(), error="403 Forbidden")

    s.max_personal_access_token_lifetime = 30
    s.password_authentication_enabled_for_git = not original_git_pw
    s.save()
    eq(s.max_personal_access_token_lifetime, 30, "settings.save(): PUT /application/settings returns the settings")
    s2 = gl.settings.get()
    eq(
        (s2.max_personal_access_token_lifetime, s2.password_authentication_enabled_for_git),
        (30, not original_git_pw),
        "settings.save(): stored",
    )
    t = users["erin"].personal_access_tokens.create({"name": "pygl-lifetime", "scopes": ["api"]})
    secret(t.token)
    eq(t.expires_at, days(30), "with a 30-day lifetime, a token created without expiry expires in 30 days")
    raises(
        gle.GitlabCreateError,
        400,
        "with a 30-day lifetime, a token expiring in 31 days",
        lambda: users["erin"].personal_access_tokens.create({"name": "x", "scopes": ["api"], "expires_at": days(31)}),
    )

    s2.max_personal_access_token_lifetime = original_lifetime
    s2.password_authentication_enabled_for_git = original_git_pw
    s2.save()
    s3 = gl.settings.get()
    eq(
        (s3.max_personal_access_token_lifetime, s3.password_authentication_enabled_for_git),
        (original_lifetime, original_git_pw),
        "settings restored (null clears the lifetime)",
    )

    # ----------------------------------------------------------- deletions
    for p in (second, third):
        p.delete()
        ok(f"project.delete(): DELETE /projects/{p.id}")
    raises(
        gle.GitlabGetError,
        404,
        "gl.projects.get() of a deleted project",
        lambda: gl.projects.get(second.id),
        error="404 Project Not Found",
    )
    agl.projects.delete(tools.id)
    ok(f"gl.projects.delete(id): DELETE /projects/{tools.id}")
    raises(gle.GitlabGetError, 404, "gl.projects.get() of the deleted path", lambda: gl.projects.get(pwn))

    print("PASS every check", flush=True)


def git_ls_remote(git: str, repo_url: str, token: str) -> subprocess.CompletedProcess:
    """git ls-remote with the token from a credential helper: the token is in
    neither the command line nor the URL."""
    helper = '!f() { test "$1" = get && echo username=pygl && echo "password=$GITPAT_PYGL_GIT_TOKEN"; }; f'
    env = dict(
        os.environ,
        GIT_TERMINAL_PROMPT="0",
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        GITPAT_PYGL_GIT_TOKEN=token,
    )
    return subprocess.run(
        [git, "-c", "credential.helper=", "-c", f"credential.helper={helper}", "ls-remote", repo_url],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def main() -> int:
    args = sys.argv[1:]
    if len(args) > 2 or any(a in ("-h", "--help") for a in args):
        print(__doc__)
        return 2
    url = args[0] if args else os.environ.get("GITPAT_URL", "")
    token = args[1] if len(args) > 1 else os.environ.get("GITPAT_ADMIN_TOKEN", "")
    if not url or not token:
        print("FAIL give the server URL and an admin token (argv, or GITPAT_URL and GITPAT_ADMIN_TOKEN)")
        return 2
    try:
        run(url, token)
    except CheckFailed as e:
        print(mask(f"FAIL {e}"), flush=True)
        return 1
    except Exception:
        print(mask("FAIL unexpected error:\n" + traceback.format_exc()), flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
