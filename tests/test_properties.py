"""Property tests: arbitrary input to the public API, arbitrary JSON to the decoders.

Every call either works (or fails with a typed error after asking the server) or raises
`InvalidConfigError`, a `ValueError`, before any request reaches the transport. Every decoder
returns a model or raises a typed error, never anything else.
"""

from __future__ import annotations

import contextlib
import math
import string
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import attrs
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from local_kit import API_KEY, BASE_MODEL, FAST_RETRY, small_timeouts

from fireworks_deploy import (
    APITimeoutError,
    AsyncDeploymentManager,
    DeploymentConfig,
    DeploymentManager,
    FireworksError,
    IncrementalSnapshotMetadata,
    InvalidConfigError,
    ResponseValidationError,
    RetryPolicy,
    Timeouts,
    WaitTimeoutError,
    _wire,
)
from fireworks_deploy._config import POLL_INTERVAL_FLOOR_S, check_poll_interval
from fireworks_deploy._errors import (
    ANYWHERE_SECRET_LEN,
    MIN_SEARCHED_SECRET_LEN,
    redact_secret,
    redact_text,
)
from fireworks_deploy._models import validate_deployment_id
from fireworks_deploy.local import LocalControlPlane

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


class CountingTransport(httpx.AsyncBaseTransport):
    """Counts the requests that reach it, and lets a local control plane answer them."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.count = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.count += 1
        return await self.inner.handle_async_request(request)


@pytest.fixture
def counting() -> CountingTransport:
    plane = LocalControlPlane(boot_seconds=0, hotload_seconds=0)
    plane.create_deployment("exists", BASE_MODEL)
    return CountingTransport(plane.transport())


@pytest.fixture
async def fw(counting: CountingTransport) -> AsyncIterator[AsyncDeploymentManager]:
    async with AsyncDeploymentManager(
        api_key=API_KEY,
        base_url="http://local.fireworks.test",
        transport=counting,
        retry=FAST_RETRY,
        timeouts=small_timeouts(1.0, 1.0),
    ) as manager:
        yield manager


async def check_call(counting: CountingTransport, call: Callable[[], Awaitable[Any]]) -> None:
    """Works, or fails typed after a request, or raises InvalidConfigError before any."""
    counting.count = 0
    try:
        await call()
    except InvalidConfigError:
        assert counting.count == 0, "InvalidConfigError after a request was sent"
    except (APITimeoutError, WaitTimeoutError):
        pass  # a valid but tiny deadline may expire before the first request
    except FireworksError:
        assert counting.count > 0, "a non-input error without asking the server"


# -- strategies --------------------------------------------------------------------------------

junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.binary(max_size=8),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
hashable_junk = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.binary(max_size=8)
)
texts = st.text(max_size=40)
ids = st.one_of(
    st.from_regex(r"[a-z][a-z0-9-]{0,20}[a-z0-9]", fullmatch=True), st.just("exists"), texts, junk
)
models = st.one_of(st.just(BASE_MODEL), texts, junk)
identities = st.one_of(st.from_regex(r"[A-Za-z0-9._-]{1,20}", fullmatch=True), texts, junk)
small_seconds = st.one_of(
    st.floats(min_value=0.001, max_value=0.05),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-3, max_value=0),
    junk,
)
metadata = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {"previous_snapshot_identity": identities},
        optional={
            "compression_format": st.one_of(st.just("arc_v2"), texts),
            "checksum_format": st.one_of(st.just("alder32"), texts),
            "extra": junk,
        },
    ),
    junk,
)
urls = st.one_of(
    st.builds(
        lambda scheme, host, port, path: f"{scheme}://{host}{port}{path}",
        st.sampled_from(["http", "https", "ftp", "", "HTTP"]),
        st.one_of(st.just("local.fireworks.test"), st.just("[::1]"), st.just("127.0.0.1"), texts),
        st.one_of(st.just(""), st.integers(-5, 70000).map(lambda p: f":{p}"), texts),
        st.one_of(st.just(""), st.just("/"), st.just("/v1/"), texts),
    ),
    texts,
    junk,
)
headers = st.one_of(
    st.none(),
    st.dictionaries(st.text(max_size=12), st.text(max_size=12), max_size=3),
    st.dictionaries(
        st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,10}", fullmatch=True),
        st.text(max_size=12),
        max_size=3,
    ),
    st.dictionaries(hashable_junk, junk, max_size=2),
    junk,
)
config_fields = st.fixed_dictionaries(
    {"deployment_id": ids, "base_model": models},
    optional={
        "min_replica_count": st.one_of(st.integers(-2, 3), junk),
        "max_replica_count": st.one_of(st.integers(-2, 3), junk),
        "accelerator_type": st.one_of(texts, junk),
        "region": st.one_of(texts, junk),
        "hot_load_transition_type": st.one_of(st.sampled_from(["sync", "ASYNC", "x"]), junk),
        "extra_args": st.one_of(st.lists(texts, max_size=2), junk),
        "extra_values": st.one_of(st.dictionaries(texts, texts, max_size=2), junk),
        "annotations": st.one_of(st.dictionaries(texts, texts, max_size=2), junk),
        "enable_hot_load": st.one_of(st.booleans(), junk),
        "deployment_shape": st.one_of(texts, junk),
        "preemptible": st.one_of(st.booleans(), junk),
    },
)


def make_config(fields: dict[str, Any]) -> DeploymentConfig:
    return DeploymentConfig(**fields)


# -- constructors ------------------------------------------------------------------------------


@SETTINGS
@given(
    api_key=st.one_of(st.just(API_KEY), texts, junk),
    account_id=st.one_of(st.none(), st.just("local"), texts, junk),
    base_url=urls,
    inference_url=st.one_of(st.none(), urls),
    additional_headers=headers,
    verify_ssl=st.one_of(st.none(), st.booleans(), junk),
    max_concurrency=st.one_of(st.integers(-2, 64), junk),
)
async def test_async_constructor(counting: CountingTransport, **kwargs: Any) -> None:
    """The async constructor works or raises InvalidConfigError; it never sends a request."""
    try:
        manager = AsyncDeploymentManager(transport=counting, retry=FAST_RETRY, **kwargs)
    except InvalidConfigError:
        return
    finally:
        assert counting.count == 0
    async with manager:
        # A manager that was accepted sends well-formed requests (or fails typed).
        await check_call(counting, lambda: manager.get("exists"))


@settings(max_examples=25, deadline=None)
@given(
    api_key=st.one_of(st.just(API_KEY), texts, junk),
    base_url=urls,
    additional_headers=headers,
    max_concurrency=st.one_of(st.integers(-2, 64), junk),
)
def test_sync_constructor(**kwargs: Any) -> None:
    """The blocking constructor raises InvalidConfigError in the caller and leaves no portal."""
    transport = httpx.MockTransport(lambda request: httpx.Response(404))
    try:
        manager = DeploymentManager(transport=transport, **kwargs)
    except InvalidConfigError:
        return
    manager.close()


@SETTINGS
@given(fields=config_fields)
def test_deployment_config(fields: dict[str, Any]) -> None:
    """DeploymentConfig accepts a valid config or raises InvalidConfigError, nothing else."""
    with contextlib.suppress(InvalidConfigError):
        make_config(fields)


@SETTINGS
@given(value=metadata)
def test_incremental_metadata(value: Any) -> None:
    """Delta metadata coerces from the typed class or a dict, or raises InvalidConfigError."""
    with contextlib.suppress(InvalidConfigError):
        IncrementalSnapshotMetadata.coerce(value)


# -- methods -----------------------------------------------------------------------------------


@SETTINGS
@given(deployment_id=ids)
async def test_get(
    fw: AsyncDeploymentManager, counting: CountingTransport, deployment_id: Any
) -> None:
    """get() validates the id before any request."""
    await check_call(counting, lambda: fw.get(deployment_id))


@SETTINGS
@given(fields=config_fields, force=st.one_of(st.booleans(), junk), timeout_s=small_seconds)
async def test_create_or_get(
    fw: AsyncDeploymentManager, counting: CountingTransport, fields: Any, force: Any, timeout_s: Any
) -> None:
    """create_or_get() validates the config and timeout before any request."""

    async def call() -> Any:
        return await fw.create_or_get(make_config(fields), force, timeout_s=timeout_s)

    await check_call(counting, call)


@SETTINGS
@given(deployment_id=ids, timeout_s=small_seconds, poll=small_seconds)
async def test_wait_for_ready(
    fw: AsyncDeploymentManager,
    counting: CountingTransport,
    deployment_id: Any,
    timeout_s: Any,
    poll: Any,
) -> None:
    """wait_for_ready() validates its id and durations before any request."""
    await check_call(counting, lambda: fw.wait_for_ready(deployment_id, timeout_s, poll))


@SETTINGS
@given(
    deployment_id=ids,
    base_model=models,
    identity=identities,
    meta=metadata,
    reset=st.one_of(st.booleans(), junk),
    timeout=small_seconds,
    path=st.one_of(st.none(), texts, junk),
    cmek=st.one_of(st.none(), texts, junk),
)
async def test_hotload(
    fw: AsyncDeploymentManager, counting: CountingTransport, **kwargs: Any
) -> None:
    """hotload() validates ids, identities, metadata and paths before any request."""
    await check_call(
        counting,
        lambda: fw.hotload(
            kwargs["deployment_id"],
            kwargs["base_model"],
            kwargs["identity"],
            kwargs["meta"],
            kwargs["reset"],
            kwargs["timeout"],
            kwargs["path"],
            kwargs["cmek"],
        ),
    )


@SETTINGS
@given(
    deployment_ids=st.one_of(st.lists(ids, max_size=3), texts, junk),
    identity=identities,
    timeout=small_seconds,
    poll=small_seconds,
)
async def test_hotload_and_wait_many(
    fw: AsyncDeploymentManager,
    counting: CountingTransport,
    deployment_ids: Any,
    identity: Any,
    timeout: Any,
    poll: Any,
) -> None:
    """The fleet hot-load validates every id and argument before any request."""

    async def call() -> Any:
        return await fw.hotload_and_wait_many(
            deployment_ids, BASE_MODEL, identity, None, True, timeout, poll, return_exceptions=True
        )

    await check_call(counting, call)


@SETTINGS
@given(
    deployment_id=ids,
    body=st.one_of(st.dictionaries(st.one_of(texts, hashable_junk), junk, max_size=3), junk),
    mask=st.one_of(st.none(), texts, st.lists(st.one_of(texts, junk), max_size=3), junk),
)
async def test_update(
    fw: AsyncDeploymentManager,
    counting: CountingTransport,
    deployment_id: Any,
    body: Any,
    mask: Any,
) -> None:
    """update() validates the body and the update mask before any request."""
    await check_call(counting, lambda: fw.update(deployment_id, body, mask))


@SETTINGS
@given(
    model=st.one_of(st.just("accounts/local/deployments/exists"), texts, junk),
    retries=st.one_of(st.integers(-1, 2), junk),
    interval=st.one_of(st.floats(0, 0.01), small_seconds),
)
async def test_warmup(
    fw: AsyncDeploymentManager, counting: CountingTransport, model: Any, retries: Any, interval: Any
) -> None:
    """warmup() validates the model and its retry settings before any request."""
    await check_call(counting, lambda: fw.warmup(model, retries, interval, timeout_s=1.0))


@SETTINGS
@given(deployment_id=ids, timeout_s=small_seconds, missing_ok=st.booleans())
async def test_delete_and_scale(
    fw: AsyncDeploymentManager,
    counting: CountingTransport,
    deployment_id: Any,
    timeout_s: Any,
    missing_ok: bool,
) -> None:
    """delete() and scale_to_zero() validate their arguments before any request."""
    await check_call(
        counting, lambda: fw.delete(deployment_id, timeout_s=timeout_s, missing_ok=missing_ok)
    )
    await check_call(counting, lambda: fw.scale_to_zero(deployment_id))


# -- decoders ----------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
# Objects with the keys the decoders look for, so the fuzzer reaches past the first check.
DEPLOYMENT_KEYS = [
    "name",
    "state",
    "baseModel",
    "minReplicaCount",
    "placement",
    "region",
    "hotLoadTransitionType",
    "replicaCount",
    "enableHotLoad",
    "createTime",
]
deployment_like = st.dictionaries(st.sampled_from(DEPLOYMENT_KEYS), json_values, max_size=6)
replica_like = st.dictionaries(
    st.sampled_from(
        ["identity", "readiness", "current_snapshot_identity", "loading_state", "loaded_adapters"]
    ),
    st.one_of(
        json_values,
        st.dictionaries(st.sampled_from(["stage", "target_snapshot_identity"]), json_values),
        st.lists(st.dictionaries(st.sampled_from(["identity", "status"]), json_values), max_size=2),
    ),
    max_size=5,
)
payloads = st.one_of(
    json_values,
    deployment_like,
    st.fixed_dictionaries({"replicas": st.one_of(st.lists(replica_like, max_size=3), json_values)}),
    st.fixed_dictionaries(
        {"deployments": st.one_of(st.lists(deployment_like, max_size=3), json_values)},
        optional={"nextPageToken": json_values},
    ),
    st.fixed_dictionaries(
        {
            "accounts": st.one_of(
                st.lists(st.dictionaries(st.just("name"), json_values), max_size=2), json_values
            )
        }
    ),
)

DECODERS: dict[str, Callable[[Any], Any]] = {
    "deployment_from_wire": lambda p: _wire.deployment_from_wire(p, account_id="local"),
    "deployment_from_wire(id)": lambda p: _wire.deployment_from_wire(
        p, account_id="local", deployment_id="d"
    ),
    "hotload_status_from_wire": lambda p: _wire.hotload_status_from_wire(p, deployment_id="d"),
    "deployments_page_from_wire": lambda p: _wire.deployments_page_from_wire(p, account_id="local"),
    "account_from_accounts": _wire.account_from_accounts,
}


@pytest.mark.parametrize("decoder", list(DECODERS))
@settings(max_examples=400, deadline=None)
@given(payload=payloads)
def test_decoders_raise_only_typed_errors(decoder: str, payload: Any) -> None:
    """A decoder given any JSON returns a model or raises a typed error, nothing else."""
    with contextlib.suppress(ResponseValidationError, InvalidConfigError):
        DECODERS[decoder](payload)


@settings(max_examples=200, deadline=None)
@given(value=st.floats() | st.integers(min_value=-(2**70), max_value=2**70) | st.text(max_size=25))
def test_integer_fields_reject_or_read(value: Any) -> None:
    """Replica counts that are floats, huge, NaN or strings are read exactly or rejected typed."""
    try:
        info = _wire.deployment_from_wire(
            {"name": "accounts/a/deployments/d", "minReplicaCount": value}, account_id="a"
        )
    except ResponseValidationError:
        return
    count = info.min_replica_count
    assert count is None or isinstance(count, int)
    if isinstance(value, float) and count is not None:
        assert math.isfinite(value)
        assert count == value


header_text = st.text(min_size=1, max_size=12)


@SETTINGS
@given(api_key=header_text, value=header_text, base_model=header_text, path=header_text)
async def test_header_carried_strings(
    counting: CountingTransport, api_key: str, value: str, base_model: str, path: str
) -> None:
    """Strings sent in headers (key, extra headers, model, paths) are checked before any request."""

    try:
        fw = AsyncDeploymentManager(
            api_key=api_key,
            account_id="local",
            base_url="http://local.fireworks.test",
            additional_headers={"X-Team": value},
            transport=counting,
            retry=FAST_RETRY,
            timeouts=small_timeouts(1.0, 1.0),
        )
    except InvalidConfigError:
        return
    async with fw:
        await check_call(counting, lambda: fw.get("exists"))
        await check_call(counting, lambda: fw.hotload_status("exists", base_model))
        await check_call(counting, lambda: fw.hotload("exists", BASE_MODEL, "s", path=path))


# -- configuration, redaction, ids ---------------------------------------------------------------

seconds_like = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-5, 5),
    st.booleans(),
    junk,
)


@settings(max_examples=300, deadline=None)
@given(value=seconds_like, field=st.sampled_from([f.name for f in attrs.fields(Timeouts)]))
def test_timeouts_construct_only_with_positive_finite_numbers(value: Any, field: str) -> None:
    """Timeouts takes positive finite numbers and raises InvalidConfigError for anything else."""
    valid = (
        not isinstance(value, bool)
        and isinstance(value, (int, float))
        and math.isfinite(value)
        and value > 0
    )
    try:
        timeouts = Timeouts(**{field: value})
    except InvalidConfigError as exc:
        message = str(exc)
        assert not valid
        assert field in message
    else:
        assert valid
        assert getattr(timeouts, field) == value


@settings(max_examples=300, deadline=None)
@given(
    value=seconds_like,
    field=st.sampled_from(["initial_s", "max_s", "max_retry_after_s"]),
    retry_after=st.none() | st.floats(min_value=0, max_value=1e12),
)
def test_retry_policy_caps_every_retry_after(value: Any, field: str, retry_after: Any) -> None:
    """A RetryPolicy is valid or refused; a valid one never waits beyond its caps."""
    try:
        policy = RetryPolicy(**{field: value})
    except InvalidConfigError:
        return
    capped = policy.cap_retry_after(retry_after)
    assert capped is None or 0 <= capped <= policy.max_retry_after_s
    assert policy.delay(50, retry_after) <= max(policy.max_s, policy.max_retry_after_s)


@settings(max_examples=300, deadline=None)
@given(value=seconds_like)
def test_poll_interval_is_refused_or_at_least_the_floor(value: Any) -> None:
    """check_poll_interval returns a finite interval >= the floor, or raises InvalidConfigError."""
    try:
        interval = check_poll_interval("poll_interval_s", value)
    except InvalidConfigError:
        return
    assert POLL_INTERVAL_FLOOR_S <= interval < math.inf


printable = st.characters(min_codepoint=32, max_codepoint=126)
long_keys = st.text(alphabet=printable, min_size=ANYWHERE_SECRET_LEN, max_size=60)


@settings(max_examples=300, deadline=None)
@given(key=long_keys, before=st.text(max_size=30), after=st.text(max_size=30))
def test_a_long_key_never_survives_redaction(key: str, before: str, after: str) -> None:
    """A key of 24+ characters is gone from any text it is embedded in, however glued."""
    assert key not in redact_text(before + key + after, key)
    assert key not in str(redact_secret({"a": [before + key + after]}, key))


@settings(max_examples=300, deadline=None)
@given(key=st.text(alphabet=printable, min_size=1, max_size=60), text=st.text(max_size=80))
def test_text_without_the_key_is_untouched(key: str, text: str) -> None:
    """Redaction never changes text that does not contain the key."""
    if key not in text:
        assert redact_text(text, key) == text


word = string.ascii_letters + string.digits + "_-"


@settings(max_examples=300, deadline=None)
@given(
    key=st.text(alphabet=word, min_size=MIN_SEARCHED_SECRET_LEN, max_size=ANYWHERE_SECRET_LEN - 1),
    sep=st.sampled_from(list(" ,;:\"'()=&/\n\t")),
    text=st.text(alphabet=" ,.;", max_size=20),
)
def test_a_key_standing_as_a_token_is_redacted(key: str, sep: str, text: str) -> None:
    """A mid-length key between separators (quotes, spaces, '=', ...) is redacted."""
    assert key not in redact_text(text + sep + key + sep + text, key)


@settings(max_examples=300, deadline=None)
@given(
    key=st.text(alphabet=word, min_size=MIN_SEARCHED_SECRET_LEN, max_size=ANYWHERE_SECRET_LEN - 1)
)
def test_a_key_inside_a_longer_word_is_left(key: str) -> None:
    """A mid-length key glued into a longer word is part of that word, not the key."""
    text = f"x{key}y"
    assert redact_text(text, key) == text


@settings(max_examples=300, deadline=None)
@given(key=st.text(alphabet=printable, min_size=1, max_size=7), text=st.text(max_size=80))
def test_short_keys_leave_text_alone(key: str, text: str) -> None:
    """A key under 8 characters is never searched for: only a whole value equal to it changes."""
    if redact_text(text, key) != text:
        stripped = text.strip()
        assert key in (stripped, stripped.partition(" ")[2].strip())


@settings(max_examples=300, deadline=None)
@given(value=st.text(max_size=70))
def test_deployment_ids_match_in_full(value: str) -> None:
    """A deployment id is accepted iff the whole string matches; a newline is never accepted."""
    import re

    whole = re.fullmatch(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?", value) is not None
    try:
        validate_deployment_id(value)
    except InvalidConfigError:
        assert not whole
    else:
        assert whole
        assert "\n" not in value
    with contextlib.suppress(InvalidConfigError):
        validate_deployment_id(value + "\n")
        raise AssertionError("a trailing newline was accepted")
