#!/usr/bin/env python3
"""Runs the official Python ACS SDKs (azure-communication-identity, azure-communication-chat)
against a running confab server and asserts real results.

Environment (set by tests/sdk/run.sh):
  CONFAB_CONNECTION_STRING  endpoint=https://127.0.0.1:PORT/;accesskey=<base64>   (required)
  CONFAB_ENDPOINT           https://127.0.0.1:PORT/    (optional; derived from the connection string)
  REQUESTS_CA_BUNDLE        the server's self-signed certificate, so https verification succeeds.
                            (ChatClient.get_chat_thread_client() does not inherit
                            connection_verify, so the certificate is trusted through the environment.)
  CONFAB_SDK_RESULTS        optional path: a JSON summary {"passed": N, "failed": M, "failures": [...]}

Usage: python test_sdk.py [-k SUBSTRING]...     (runs the tests whose name contains a substring)

A plain script with its own tiny runner: it prints one PASS/FAIL line per test and ends with
"python: N passed, M failed". Exit code 0 only if everything passed.

Where the behaviour of the real ACS cloud is not documented, the assertions follow the swagger
(/work/shared/reference/acs/chat-2025-03-15.json) and shared/reference/NOTES.md; those places carry a
comment saying so.
"""

import datetime as dt
import json
import os
import re
import sys
import time
import traceback
import uuid

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
)
from azure.communication.identity import CommunicationIdentityClient, CommunicationTokenScope
from azure.communication.chat import (
    ChatClient,
    ChatMessageType,
    ChatParticipant,
    CommunicationTokenCredential,
)

UTC = dt.timezone.utc

CONN_STR = os.environ.get("CONFAB_CONNECTION_STRING", "")


def _endpoint_from_conn_str(conn_str):
    for part in conn_str.split(";"):
        if part.lower().startswith("endpoint="):
            return part[len("endpoint="):]
    raise SystemExit("CONFAB_CONNECTION_STRING has no endpoint=: %r" % conn_str)


if not CONN_STR:
    raise SystemExit("set CONFAB_CONNECTION_STRING (tests/sdk/run.sh does this)")
ENDPOINT = os.environ.get("CONFAB_ENDPOINT") or _endpoint_from_conn_str(CONN_STR)

# Service limit from the ACS service-limits docs (NOTES.md): a message is at most 28 KB;
# confab counts the UTF-8 bytes of the content.
MAX_MESSAGE_BYTES = 28 * 1024

# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------

identity_client = CommunicationIdentityClient.from_connection_string(CONN_STR)


def now():
    return dt.datetime.now(UTC)


def uid(identifier):
    """The raw id of a CommunicationUserIdentifier from either SDK package."""
    props = getattr(identifier, "properties", None) or {}
    return props.get("id") or getattr(identifier, "raw_id", None)


def expires_on_datetime(expires_on):
    """AccessToken.expires_on is documented as int epoch seconds, but identity 1.5.0 passes the wire
    string (the generated model types expiresOn as str), e.g. "2025-01-01T00:00:00.000Z"."""
    if isinstance(expires_on, dt.datetime):
        return expires_on if expires_on.tzinfo else expires_on.replace(tzinfo=UTC)
    if isinstance(expires_on, str):
        s = expires_on.strip().replace("Z", "+00:00").replace("z", "+00:00")
        s = re.sub(r"(\.\d{6})\d+", r"\1", s)  # .NET-style 7-digit fractions
        parsed = dt.datetime.fromisoformat(s)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return dt.datetime.fromtimestamp(int(expires_on), UTC)


class User:
    def __init__(self, name):
        self.name = name
        self.identifier, tok = identity_client.create_user_and_token(
            scopes=[CommunicationTokenScope.CHAT]
        )
        self.token = tok.token
        self.id = uid(self.identifier)
        self.chat = ChatClient(ENDPOINT, CommunicationTokenCredential(self.token))

    def participant(self, **kw):
        return ChatParticipant(identifier=self.identifier, display_name=self.name, **kw)

    def thread(self, thread_id):
        return self.chat.get_chat_thread_client(thread_id)


def new_thread(owner, topic="topic", others=(), **kw):
    """Creates a thread whose participants are the owner (explicitly) plus `others`."""
    parts = [owner.participant()] + [o.participant() for o in others]
    res = owner.chat.create_chat_thread(topic, thread_participants=parts, **kw)
    assert not res.errors, "create_chat_thread reported invalid participants: %r" % (res.errors,)
    assert res.chat_thread is not None and res.chat_thread.id
    return res.chat_thread.id


def expect_error(fn, status, exc_type=HttpResponseError):
    """Calls fn and asserts it raises exc_type with the given HTTP status."""
    try:
        result = fn()
    except exc_type as e:
        got = getattr(e, "status_code", None)
        if got is None and getattr(e, "response", None) is not None:
            got = e.response.status_code
        assert got == status, "expected HTTP %s, got %s (%s: %s)" % (status, got, type(e).__name__, e)
        return e
    except Exception as e:  # wrong exception type
        raise AssertionError(
            "expected %s with HTTP %s, got %s: %s" % (exc_type.__name__, status, type(e).__name__, e)
        )
    raise AssertionError("expected %s with HTTP %s, but the call succeeded: %r" % (exc_type.__name__, status, result))


def all_messages(thread_client, **kw):
    return list(thread_client.list_messages(**kw))


def msg_type(m):
    t = m.type
    return t.value if hasattr(t, "value") else str(t)


def near(ts, reference, seconds=120):
    assert ts is not None, "timestamp missing"
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    assert abs((ts - reference).total_seconds()) <= seconds, "%s is not within %ss of %s" % (ts, seconds, reference)


# --------------------------------------------------------------------------------------------
# runner
# --------------------------------------------------------------------------------------------

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


# --------------------------------------------------------------------------------------------
# identity
# --------------------------------------------------------------------------------------------


@test
def identity_create_user_without_token():
    u1 = identity_client.create_user()
    u2 = identity_client.create_user()
    assert uid(u1) and uid(u2)
    assert uid(u1) != uid(u2), "two create_user calls returned the same id"
    # Real ACS user ids have the form 8:acs:<resource>_<guid>; the SDKs' raw-id parsing relies on it.
    assert uid(u1).startswith("8:acs:"), "unexpected user id format: %r" % uid(u1)


@test
def identity_create_user_and_token_with_scopes():
    before = now()
    user, token = identity_client.create_user_and_token(
        scopes=[CommunicationTokenScope.CHAT, CommunicationTokenScope.VOIP]
    )
    assert uid(user).startswith("8:acs:")
    assert token.token and token.token.count(".") == 2, "token is not a JWT: %r" % token.token
    # default lifetime is 24 h (expiresInMinutes default 1440)
    exp = expires_on_datetime(token.expires_on)
    near(exp, before + dt.timedelta(hours=24), seconds=300)
    # the Python SDK decodes the JWT payload client-side: constructing the credential must work
    cred = CommunicationTokenCredential(token.token)
    assert cred.get_token().token == token.token
    assert abs(cred.get_token().expires_on - exp.timestamp()) <= 2
    # and the token works for chat
    ChatClient(ENDPOINT, cred).create_chat_thread("token works")


@test
def identity_tokens_parse_client_side():
    # NOTES.md: the Python SDK decodes the JWT payload with plain base64, so a payload segment with
    # '-' or '_' is rejected client-side ("Token is not formatted correctly"). Every token must parse.
    user = identity_client.create_user()
    for _ in range(20):
        tok = identity_client.get_token(user, [CommunicationTokenScope.CHAT])
        payload = tok.token.split(".")[1]
        assert "-" not in payload and "_" not in payload, "payload segment not plain-base64 safe: %r" % payload
        cred = CommunicationTokenCredential(tok.token)
        assert abs(cred.get_token().expires_on - expires_on_datetime(tok.expires_on).timestamp()) <= 2


@test
def identity_get_token_with_expiry():
    user = identity_client.create_user()
    before = now()
    tok = identity_client.get_token(
        user, [CommunicationTokenScope.CHAT], token_expires_in=dt.timedelta(hours=1)
    )
    assert tok.token
    near(expires_on_datetime(tok.expires_on), before + dt.timedelta(hours=1), seconds=120)
    # the JWT's exp claim (what the SDK reads) agrees
    cred = CommunicationTokenCredential(tok.token)
    near(dt.datetime.fromtimestamp(cred.get_token().expires_on, UTC), before + dt.timedelta(hours=1), seconds=120)
    # a token for the 'chat' scope can create a thread that lists the user as creator
    chat = ChatClient(ENDPOINT, cred)
    res = chat.create_chat_thread("t", thread_participants=[ChatParticipant(identifier=user)])
    assert uid(res.chat_thread.created_by) == uid(user)


@test
def identity_revoke_tokens():
    user, tok = identity_client.create_user_and_token(scopes=[CommunicationTokenScope.CHAT])
    chat = ChatClient(ENDPOINT, CommunicationTokenCredential(tok.token))
    chat.create_chat_thread("before revoke")  # works
    identity_client.revoke_tokens(user)
    expect_error(lambda: chat.create_chat_thread("after revoke"), 401, ClientAuthenticationError)
    expect_error(lambda: list(chat.list_chat_threads()), 401, ClientAuthenticationError)
    # a token issued after the revocation works again
    tok2 = identity_client.get_token(user, [CommunicationTokenScope.CHAT])
    res = ChatClient(ENDPOINT, CommunicationTokenCredential(tok2.token)).create_chat_thread("new token")
    assert res.chat_thread.id


@test
def identity_delete_user():
    user, tok = identity_client.create_user_and_token(scopes=[CommunicationTokenScope.CHAT])
    chat = ChatClient(ENDPOINT, CommunicationTokenCredential(tok.token))
    chat.create_chat_thread("before delete")
    identity_client.delete_user(user)
    # NOTES.md (confab decision): deleting an identity invalidates its tokens (401), like revoking.
    expect_error(lambda: chat.create_chat_thread("after delete"), 401, ClientAuthenticationError)


# --------------------------------------------------------------------------------------------
# threads
# --------------------------------------------------------------------------------------------


@test
def thread_create_and_get_properties():
    alice, bob = User("Alice"), User("Bob")
    before = now()
    res = alice.chat.create_chat_thread(
        "Lunch", thread_participants=[alice.participant(), bob.participant()]
    )
    assert not res.errors
    t = res.chat_thread
    assert t.id and t.topic == "Lunch"
    assert uid(t.created_by) == alice.id
    near(t.created_on, before)

    props = alice.thread(t.id).get_properties()
    assert props.id == t.id
    assert props.topic == "Lunch"
    assert uid(props.created_by) == alice.id
    near(props.created_on, before)
    # the other participant sees the same thread
    props_b = bob.thread(t.id).get_properties()
    assert props_b.id == t.id and props_b.topic == "Lunch"

    names = {uid(p.identifier): p.display_name for p in alice.thread(t.id).list_participants()}
    assert names.get(alice.id) == "Alice" and names.get(bob.id) == "Bob", names


@test
def thread_create_idempotency_token():
    alice = User("Alice")
    token = str(uuid.uuid4())
    r1 = alice.chat.create_chat_thread("idem", thread_participants=[alice.participant()], idempotency_token=token)
    r2 = alice.chat.create_chat_thread("idem", thread_participants=[alice.participant()], idempotency_token=token)
    assert r1.chat_thread.id == r2.chat_thread.id, "same idempotency token gave two threads"
    r3 = alice.chat.create_chat_thread("idem", thread_participants=[alice.participant()])
    assert r3.chat_thread.id != r1.chat_thread.id, "a new (implicit) idempotency token must create a new thread"
    ids = [t.id for t in alice.chat.list_chat_threads()]
    assert ids.count(r1.chat_thread.id) == 1 and r3.chat_thread.id in ids, ids


@test
def thread_update_topic_and_system_message():
    alice, bob = User("Alice"), User("Bob")
    tid = new_thread(alice, "old topic", [bob])
    tc = alice.thread(tid)
    tc.update_topic("new topic")
    assert tc.get_properties().topic == "new topic"
    assert bob.thread(tid).get_properties().topic == "new topic"
    msgs = [m for m in all_messages(tc) if msg_type(m) == "topicUpdated"]
    assert len(msgs) == 1, "expected one topicUpdated system message, got %r" % [msg_type(m) for m in all_messages(tc)]
    m = msgs[0]
    assert m.type == ChatMessageType.TOPIC_UPDATED
    assert m.content is not None and m.content.topic == "new topic"
    # NOTES.md: system messages carry the acting identity as initiator
    assert m.content.initiator is not None and uid(m.content.initiator) == alice.id
    # the thread list shows the new topic too
    items = {t.id: t for t in alice.chat.list_chat_threads()}
    assert items[tid].topic == "new topic"


@test
def thread_list_with_paging_and_start_time():
    alice = User("Alice")
    early = [new_thread(alice, "early %d" % i) for i in range(2)]
    time.sleep(1.5)
    start = now()
    time.sleep(0.2)
    late = [new_thread(alice, "late %d" % i) for i in range(3)]

    pages = [list(p) for p in alice.chat.list_chat_threads(results_per_page=2).by_page()]
    ids = [t.id for p in pages for t in p]
    assert all(len(p) <= 2 for p in pages), "page larger than results_per_page=2: %r" % [len(p) for p in pages]
    assert len([p for p in pages if p]) >= 3, "expected >= 3 non-empty pages for 5 threads, got %r" % [len(p) for p in pages]
    assert sorted(ids) == sorted(early + late), "listed %r, created %r" % (ids, early + late)
    assert len(set(ids)) == len(ids), "duplicate thread across pages"
    topics = {t.id: t.topic for p in pages for t in p}
    assert topics[late[0]] == "late 0"

    # startTime: "The earliest point in time to get chat threads up to" (swagger); threads whose
    # last activity is before start_time are left out.
    recent = [t.id for t in alice.chat.list_chat_threads(results_per_page=2, start_time=start)]
    assert sorted(recent) == sorted(late), "start_time filter: got %r, expected %r" % (recent, late)

    # a user who is in no thread lists nothing
    assert list(User("Nobody").chat.list_chat_threads()) == []


@test
def thread_delete():
    alice, bob = User("Alice"), User("Bob")
    tid = new_thread(alice, "doomed", [bob])
    alice.thread(tid).send_message("hi")
    alice.chat.delete_chat_thread(tid)
    expect_error(lambda: alice.thread(tid).get_properties(), 404, ResourceNotFoundError)
    expect_error(lambda: bob.thread(tid).get_properties(), 404, ResourceNotFoundError)
    # a deleted thread is no longer listed as a live thread (ACS may list it with deleted_on set)
    live = [t.id for t in alice.chat.list_chat_threads() if t.deleted_on is None]
    assert tid not in live


# --------------------------------------------------------------------------------------------
# messages
# --------------------------------------------------------------------------------------------


@test
def message_send_text_and_get():
    alice, bob = User("Alice"), User("Bob")
    tid = new_thread(alice, "msgs", [bob])
    before = now()
    res = alice.thread(tid).send_message(
        "hello bob", sender_display_name="Alice A.", metadata={"k1": "v1", "tags": "a,b"}
    )
    assert res.id
    m = bob.thread(tid).get_message(res.id)
    assert m.id == res.id
    assert m.type == ChatMessageType.TEXT
    assert m.content.message == "hello bob"
    assert m.sender_display_name == "Alice A."
    assert m.metadata == {"k1": "v1", "tags": "a,b"}
    assert uid(m.sender) == alice.id
    assert m.sequence_id and int(m.sequence_id) > 0
    assert m.version
    near(m.created_on, before)
    assert m.deleted_on is None and m.edited_on is None


@test
def message_send_html():
    alice = User("Alice")
    tid = new_thread(alice, "html")
    body = "<p>Hello <b>world</b> &amp; <i>friends</i></p>"
    res = alice.thread(tid).send_message(body, chat_message_type=ChatMessageType.HTML, sender_display_name="Alice")
    m = alice.thread(tid).get_message(res.id)
    assert m.type == ChatMessageType.HTML
    assert m.content.message == body
    assert m.sender_display_name == "Alice"
    # the string form is accepted too
    res2 = alice.thread(tid).send_message("<div>x</div>", chat_message_type="html")
    assert alice.thread(tid).get_message(res2.id).type == ChatMessageType.HTML


@test
def message_list_newest_first_with_paging():
    alice, bob = User("Alice"), User("Bob")
    tid = new_thread(alice, "paging", [bob])
    tc = alice.thread(tid)
    sent = [tc.send_message("message %02d" % i).id for i in range(25)]
    assert len(set(sent)) == 25, "send_message returned duplicate ids"

    pages = [list(p) for p in bob.thread(tid).list_messages(results_per_page=10).by_page()]
    sizes = [len(p) for p in pages]
    assert all(s <= 10 for s in sizes), "page larger than results_per_page=10: %r" % sizes
    assert len([s for s in sizes if s]) >= 3, "expected >= 3 pages, got %r" % sizes
    msgs = [m for p in pages for m in p]
    texts = [m for m in msgs if msg_type(m) == "text"]
    ids = [m.id for m in texts]
    assert len(ids) == 25 and len(set(ids)) == 25, "got %d text messages (%d unique)" % (len(ids), len(set(ids)))
    assert set(ids) == set(sent)
    # newest first: our sends in reverse order
    assert ids == list(reversed(sent)), "not newest first"
    assert [m.content.message for m in texts] == ["message %02d" % i for i in reversed(range(25))]
    # sequence ids are numeric and strictly decreasing over the whole list (system messages included)
    seqs = [int(m.sequence_id) for m in msgs]
    assert seqs == sorted(seqs, reverse=True) and len(set(seqs)) == len(seqs), "sequence ids: %r" % seqs
    created = [m.created_on for m in msgs]
    assert created == sorted(created, reverse=True), "created_on not descending"
    # no duplicate message across page boundaries
    all_ids = [m.id for m in msgs]
    assert len(all_ids) == len(set(all_ids)), "duplicate across pages"

    # start_time keeps only messages at or after it
    time.sleep(1.5)
    cut = now()
    time.sleep(0.2)
    late = tc.send_message("late message").id
    recent = [m.id for m in tc.list_messages(start_time=cut) if msg_type(m) == "text"]
    assert recent == [late], "start_time filter: got %r" % recent


@test
def message_update():
    alice = User("Alice")
    tid = new_thread(alice, "edit")
    tc = alice.thread(tid)
    mid = tc.send_message("first draft", metadata={"a": "1"}).id
    m0 = tc.get_message(mid)
    assert m0.edited_on is None
    before = now()
    tc.update_message(mid, content="final text", metadata={"a": "2", "b": "3"})
    m1 = tc.get_message(mid)
    assert m1.content.message == "final text"
    assert m1.metadata == {"a": "2", "b": "3"}
    assert m1.version != m0.version, "version did not change on edit (%r)" % m1.version
    assert m1.edited_on is not None
    near(m1.edited_on, before)
    assert m1.sequence_id == m0.sequence_id and m1.created_on == m0.created_on
    # the listed copy is updated too
    listed = {m.id: m for m in tc.list_messages()}
    assert listed[mid].content.message == "final text"
    assert listed[mid].edited_on is not None


@test
def message_delete():
    alice, bob = User("Alice"), User("Bob")
    tid = new_thread(alice, "delete", [bob])
    tc = alice.thread(tid)
    keep = tc.send_message("keep").id
    gone = tc.send_message("delete me").id
    before = now()
    tc.delete_message(gone)
    # ACS keeps a deleted message readable with deleted_on set.
    m = bob.thread(tid).get_message(gone)
    assert m.deleted_on is not None, "deleted_on not set after delete_message"
    near(m.deleted_on, before)
    assert bob.thread(tid).get_message(keep).deleted_on is None
    # the listing no longer shows it as live
    live = [x.id for x in tc.list_messages() if x.deleted_on is None]
    assert keep in live and gone not in live


@test
def message_get_unknown_id_is_404():
    alice = User("Alice")
    tid = new_thread(alice, "404")
    expect_error(lambda: alice.thread(tid).get_message("1234567890123"), 404, ResourceNotFoundError)


@test
def message_too_large_is_413():
    alice = User("Alice")
    tid = new_thread(alice, "big")
    tc = alice.thread(tid)
    # just below the limit works
    ok = tc.send_message("y" * (MAX_MESSAGE_BYTES - 1024)).id
    assert len(tc.get_message(ok).content.message) == MAX_MESSAGE_BYTES - 1024
    # above 28 KB: the swagger lists no 413, the brief/NOTES (service limit 28 KB) expect 413 Payload Too Large
    expect_error(lambda: tc.send_message("x" * (MAX_MESSAGE_BYTES + 1024)), 413)
    # multi-byte: 10,000 x 3-byte characters = 30,000 bytes > 28 KB, although only 10,000 characters
    expect_error(lambda: tc.send_message("\u20ac" * 10000), 413)
    assert [m.id for m in tc.list_messages() if msg_type(m) == "text"] == [ok]


# --------------------------------------------------------------------------------------------
# participants
# --------------------------------------------------------------------------------------------


@test
def participants_add_with_share_history_time():
    alice, bob, carol = User("Alice"), User("Bob"), User("Carol")
    tid = new_thread(alice, "history", [bob])
    tc = alice.thread(tid)
    old = tc.send_message("old message").id
    time.sleep(1.5)
    share_from = now()
    time.sleep(0.2)
    errors = tc.add_participants([carol.participant(share_history_time=share_from)])
    assert errors == [], "add_participants returned errors: %r" % (errors,)
    new = tc.send_message("new message").id

    seen = [m.id for m in carol.thread(tid).list_messages()]
    assert new in seen, "new participant does not see a message sent after joining"
    assert old not in seen, "new participant sees a message older than share_history_time"
    # bob (full history) still sees both
    seen_b = [m.id for m in bob.thread(tid).list_messages()]
    assert old in seen_b and new in seen_b

    parts = {uid(p.identifier): p for p in tc.list_participants()}
    assert set(parts) == {alice.id, bob.id, carol.id}
    assert parts[carol.id].display_name == "Carol"
    sht = parts[carol.id].share_history_time
    assert sht is not None, "share_history_time not returned"
    near(sht, share_from, seconds=2)

    # re-adding an existing participant is a no-op (NOTES.md)
    assert tc.add_participants([carol.participant()]) == []
    assert len(list(tc.list_participants())) == 3


@test
def participants_list_paging():
    alice = User("Alice")
    others = [User("P%d" % i) for i in range(4)]
    tid = new_thread(alice, "many", others)
    tc = alice.thread(tid)
    pages = [list(p) for p in tc.list_participants(results_per_page=2).by_page()]
    sizes = [len(p) for p in pages]
    assert all(s <= 2 for s in sizes), "page larger than results_per_page=2: %r" % sizes
    assert len([s for s in sizes if s]) >= 3, "expected >= 3 pages for 5 participants, got %r" % sizes
    ids = [uid(p.identifier) for page in pages for p in page]
    assert sorted(ids) == sorted([alice.id] + [o.id for o in others]), ids
    names = {uid(p.identifier): p.display_name for page in pages for p in page}
    assert names[others[2].id] == "P2"
    # skip
    skipped = [uid(p.identifier) for p in tc.list_participants(skip=2)]
    assert len(skipped) == 3 and set(skipped) <= set(ids)


@test
def participants_remove():
    alice, bob, carol = User("Alice"), User("Bob"), User("Carol")
    tid = new_thread(alice, "remove", [bob, carol])
    tc = alice.thread(tid)
    bob.thread(tid).send_message("bob was here")
    tc.remove_participant(bob.identifier)
    ids = {uid(p.identifier) for p in tc.list_participants()}
    assert ids == {alice.id, carol.id}, ids
    e = expect_error(lambda: bob.thread(tid).send_message("still here?"), 403)
    assert not isinstance(e, ResourceNotFoundError)
    expect_error(lambda: list(bob.thread(tid).list_messages()), 403)
    # carol is unaffected
    assert carol.thread(tid).send_message("carol stays").id


@test
def participants_system_messages():
    alice, bob, carol = User("Alice"), User("Bob"), User("Carol")
    tid = new_thread(alice, "system", [bob])
    tc = alice.thread(tid)
    tc.add_participants([carol.participant()])
    tc.remove_participant(bob.identifier)
    tc.update_topic("renamed")
    msgs = all_messages(tc)
    by_type = {}
    for m in msgs:
        by_type.setdefault(msg_type(m), []).append(m)

    added = [m for m in by_type.get("participantAdded", [])
             if carol.id in {uid(p.identifier) for p in (m.content.participants or [])}]
    assert added, "no participantAdded message naming Carol; types: %r" % [msg_type(m) for m in msgs]
    a = added[0]
    assert a.type == ChatMessageType.PARTICIPANT_ADDED
    assert uid(a.content.initiator) == alice.id
    assert [p.display_name for p in a.content.participants if uid(p.identifier) == carol.id] == ["Carol"]

    removed = [m for m in by_type.get("participantRemoved", [])
               if bob.id in {uid(p.identifier) for p in (m.content.participants or [])}]
    assert removed, "no participantRemoved message naming Bob; types: %r" % [msg_type(m) for m in msgs]
    assert removed[0].type == ChatMessageType.PARTICIPANT_REMOVED
    assert uid(removed[0].content.initiator) == alice.id

    topic = by_type.get("topicUpdated", [])
    assert len(topic) == 1 and topic[0].content.topic == "renamed"
    assert topic[0].type == ChatMessageType.TOPIC_UPDATED

    # order: newest first → topicUpdated, participantRemoved, participantAdded
    order = [m.id for m in msgs]
    assert order.index(topic[0].id) < order.index(removed[0].id) < order.index(a.id)
    # system messages have no sender display name requirement, but have sequence ids and versions
    for m in (a, removed[0], topic[0]):
        assert m.sequence_id and m.version and m.created_on


# --------------------------------------------------------------------------------------------
# read receipts, typing
# --------------------------------------------------------------------------------------------


@test
def read_receipts():
    alice, bob = User("Alice"), User("Bob")
    tid = new_thread(alice, "receipts", [bob])
    mid = alice.thread(tid).send_message("please read").id
    before = now()
    bob.thread(tid).send_read_receipt(mid)
    receipts = list(alice.thread(tid).list_read_receipts())
    mine = [r for r in receipts if uid(r.sender) == bob.id]
    assert len(mine) == 1, "expected one read receipt from Bob, got %r" % [(uid(r.sender), r.chat_message_id) for r in receipts]
    assert mine[0].chat_message_id == mid
    near(mine[0].read_on, before)
    # a later receipt is listed too (ACS keeps the latest read message per participant; whether older
    # receipts remain listed is not documented, so only the newest one is asserted), also when paging
    mid2 = alice.thread(tid).send_message("and this").id
    bob.thread(tid).send_read_receipt(mid2)
    mine = [r for r in bob.thread(tid).list_read_receipts(results_per_page=1) if uid(r.sender) == bob.id]
    assert mid2 in [r.chat_message_id for r in mine], [r.chat_message_id for r in mine]


@test
def typing_notification():
    alice, bob = User("Alice"), User("Bob")
    tid = new_thread(alice, "typing", [bob])
    assert bob.thread(tid).send_typing_notification() is None
    assert bob.thread(tid).send_typing_notification(sender_display_name="Bob") is None
    # a non-member cannot send typing notifications (403 like every thread operation)
    expect_error(lambda: User("Eve").thread(tid).send_typing_notification(), 403)


# --------------------------------------------------------------------------------------------
# authorization errors
# --------------------------------------------------------------------------------------------


@test
def non_member_gets_403():
    alice, eve = User("Alice"), User("Eve")
    tid = new_thread(alice, "private")
    mid = alice.thread(tid).send_message("secret").id
    et = eve.thread(tid)
    expect_error(lambda: et.send_message("let me in"), 403)
    expect_error(lambda: et.get_properties(), 403)
    expect_error(lambda: et.get_message(mid), 403)
    expect_error(lambda: list(et.list_messages()), 403)
    expect_error(lambda: list(et.list_participants()), 403)
    expect_error(lambda: et.update_topic("hijacked"), 403)
    assert alice.thread(tid).get_properties().topic == "private"


@test
def invalid_token_is_401():
    # a syntactically valid JWT (payload without '-'/'_') that the server did not issue
    import base64

    def seg(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    for i in range(1000):
        payload = seg({"exp": int(time.time()) + 3600, "skypeid": "acs:fake", "n": i})
        if "-" not in payload and "_" not in payload:
            break
    forged = seg({"alg": "HS256", "typ": "JWT"}) + "." + payload + ".c2lnbmF0dXJl"
    chat = ChatClient(ENDPOINT, CommunicationTokenCredential(forged))
    expect_error(lambda: chat.create_chat_thread("forged"), 401, ClientAuthenticationError)


# --------------------------------------------------------------------------------------------


def main(argv):
    selected = TESTS
    filters = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "-k"]
    if filters:
        selected = [t for t in TESTS if any(f in t.__name__ for f in filters)]
    passed, failures = 0, []
    print("confab Python SDK tests against %s (%d tests)" % (ENDPOINT, len(selected)), flush=True)
    for t in selected:
        start = time.monotonic()
        try:
            t()
        except Exception as e:  # noqa: BLE001 - the runner reports everything
            took = time.monotonic() - start
            failures.append({"test": t.__name__, "error": "%s: %s" % (type(e).__name__, e)})
            print("FAIL %s (%.1fs)" % (t.__name__, took), flush=True)
            # only this file's frames: the SDK's pipeline frames say nothing about the server
            frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == __file__]
            lines = traceback.format_list(frames) + traceback.format_exception_only(type(e), e)
            print("  " + "".join(lines).rstrip().replace("\n", "\n  "), flush=True)
        else:
            passed += 1
            print("PASS %s (%.1fs)" % (t.__name__, time.monotonic() - start), flush=True)
    if failures:
        print("\nfailures:")
        for f in failures:
            print("  %s: %s" % (f["test"], f["error"].splitlines()[0][:400] if f["error"] else ""))
    out = os.environ.get("CONFAB_SDK_RESULTS")
    if out:
        with open(out, "w") as fh:
            json.dump({"passed": passed, "failed": len(failures), "failures": failures}, fh, indent=1)
    print("python: %d passed, %d failed" % (passed, len(failures)), flush=True)
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
