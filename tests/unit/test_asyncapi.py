"""docs/asyncapi.yaml must describe what the code does, so the docs cannot drift.

Every payload schema in the document is compared with the JSON Schema msgspec
derives from the wire structs (property names, required fields, JSON types and
the constraints the structs enforce), and every example goes through the real
decoders.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, get_args

import msgspec
import pytest
import yaml

from deltasense import alerts, contract, gateway_status, health, silences
from deltasense.contract import (
    FIELDS_BY_KIND,
    HEALTH_FIELDS,
    IDENT_PATTERN,
    MAX_BATCH,
    MAX_PAYLOAD_BYTES,
    Channel,
    ContractError,
    Kind,
)
from deltasense.reasons import Reason

ROOT = Path(__file__).resolve().parents[2]
DOC: dict[str, Any] = yaml.safe_load((ROOT / "docs" / "asyncapi.yaml").read_text("utf-8"))
SCHEMAS: dict[str, Any] = DOC["components"]["schemas"]
MESSAGES: dict[str, Any] = DOC["components"]["messages"]
# Later than every example's ts, so none is rejected as future_ts.
NOW_MS = 1_763_600_000_000
# Retained flag per channel, from the contract's topic table.
RETAIN = {
    "tele": False,
    "status": True,
    "meta": True,
    "cmd": False,
    "ack": False,
    "cfg": True,
    "alerts": True,
    "acks": False,
    "silences": True,
    "ingestHealth": False,
    "edgeStatus": True,
    "edgeAlert": False,
    "brokerDropped": True,
    "brokerStored": True,
}
# Devices, gateways, operators' tools and the broker → platform.
RECEIVED = {
    "tele",
    "status",
    "meta",
    "ack",
    "acks",
    "edgeStatus",
    "edgeAlert",
    "brokerDropped",
    "brokerStored",
}
QOS0 = {"brokerDropped", "brokerStored"}  # Mosquitto publishes its $SYS tree at QoS 0
CONSTRAINTS = (
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
)


def _deref(root: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), ref
        target: Any = root
        for part in ref[2:].split("/"):
            target = target[part]
        node = target
    return node


def _flatten(root: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """Deref a schema and merge ``allOf`` parts into one object schema."""
    node = _deref(root, node)
    if "allOf" not in node:
        return node
    merged: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
    for part in node["allOf"]:
        flat = _flatten(root, part)
        merged["properties"].update(flat.get("properties", {}))
        merged["required"] += flat.get("required", [])
    return merged


def _types(root: dict[str, Any], node: dict[str, Any]) -> frozenset[str]:
    node = _flatten(root, node)
    if "enum" in node:
        return frozenset(f"enum:{v}" for v in node["enum"])
    for key in ("anyOf", "oneOf"):
        if key in node:
            return frozenset().union(*(_types(root, n) for n in node[key]))
    kind = node.get("type")
    if "properties" in node and kind is None:
        kind = "object"
    assert kind is not None, f"schema without a type: {node}"
    return frozenset([kind] if isinstance(kind, str) else kind)


def _branches(root: dict[str, Any], node: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The object and array alternatives of a (possibly union) schema."""
    node = _flatten(root, node)
    out: dict[str, dict[str, Any]] = {}
    for sub in node.get("anyOf", node.get("oneOf", [node])):
        sub = _flatten(root, sub)
        if "properties" in sub or sub.get("type") == "object":
            out["object"] = sub
        elif sub.get("type") == "array":
            out["array"] = sub
    return out


def assert_same_shape(doc_node: dict[str, Any], code: dict[str, Any], path: str) -> None:
    """The documented schema accepts the shapes the code's wire struct accepts."""
    # ``code`` is msgspec's schema: the root of its own "$defs" refs.
    doc_s, code_s = _flatten(DOC, doc_node), _flatten(code, code)
    assert _types(DOC, doc_s) == _types(code, code_s), path
    for key in CONSTRAINTS:
        if key in code_s:
            assert _deref(DOC, doc_s).get(key) == code_s[key], f"{path}: {key}"
    if code_s.get("additionalProperties") is False:  # unknown fields refused
        assert _deref(DOC, doc_s).get("additionalProperties") is False, path
    _assert_same_scalar_branches(doc_s, code_s, path)
    doc_b, code_b = _branches(DOC, doc_s), _branches(code, code_s)
    if "object" in code_b and "properties" in code_b["object"]:
        d, c = doc_b["object"], code_b["object"]
        assert set(d.get("properties", {})) == set(c["properties"]), path
        assert set(d.get("required", [])) == set(c.get("required", [])), f"{path}: required"
        for name, sub in c["properties"].items():
            assert_same_shape(
                d["properties"][name], {**sub, "$defs": code["$defs"]}, path + "." + name
            )
    if "array" in code_b:
        doc_items = doc_b["array"]["items"]
        assert_same_shape(
            doc_items, {**code_b["array"]["items"], "$defs": code["$defs"]}, path + "[]"
        )


def _scalars(root: dict[str, Any], node: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The integer, number and string alternatives of a union, by type."""
    out: dict[str, dict[str, Any]] = {}
    for sub in node.get("anyOf", node.get("oneOf", [])):
        sub = _flatten(root, sub)
        if sub.get("type") in {"integer", "number", "string"}:
            out[sub["type"]] = sub
    return out


def _assert_same_scalar_branches(doc_s: dict[str, Any], code_s: dict[str, Any], path: str) -> None:
    """A nullable number keeps its range: each scalar branch of a union has the
    code's constraints."""
    doc_scalars = _scalars(DOC, doc_s)
    for kind, code_branch in _scalars(code_s, code_s).items():
        for key in CONSTRAINTS:
            if key in code_branch:
                got = doc_scalars[kind].get(key)
                assert got == code_branch[key], f"{path} ({kind}): {key}"


def _code_schema(tp: Any) -> dict[str, Any]:
    schema: dict[str, Any] = msgspec.json.schema(tp)
    return schema


def _channel(name: str) -> dict[str, Any]:
    channel: dict[str, Any] = DOC["channels"][name]
    return channel


def _operation_for(channel: str) -> dict[str, Any]:
    ops = [
        op for op in DOC["operations"].values() if op["channel"]["$ref"] == f"#/channels/{channel}"
    ]
    assert len(ops) == 1, f"expected one operation on {channel}, got {len(ops)}"
    op: dict[str, Any] = ops[0]
    return op


def _channel_messages(channel: str) -> list[dict[str, Any]]:
    return [_deref(DOC, m) for m in _channel(channel)["messages"].values()]


def _tele_messages() -> dict[str, dict[str, Any]]:
    return {m["x-kind"]: m for m in _channel_messages("tele")}


def _walk(node: Any) -> Any:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


# --- document structure --------------------------------------------------------
def test_asyncapi_version_is_3() -> None:
    assert str(DOC["asyncapi"]).startswith("3.")
    assert DOC["defaultContentType"] == "application/json"


def test_every_internal_ref_resolves() -> None:
    refs = [n["$ref"] for n in _walk(DOC) if isinstance(n.get("$ref"), str)]
    assert refs
    for ref in refs:
        _deref(DOC, {"$ref": ref})  # raises KeyError on a dangling ref


def test_local_server_is_the_dev_broker() -> None:
    servers = DOC["servers"].values()
    assert {(s["host"], s["protocol"]) for s in servers} == {("127.0.0.1:1883", "mqtt")}
    assert {str(s["protocolVersion"]) for s in servers} == {"3.1.1", "5"}


def test_device_channels_follow_the_topic_grammar() -> None:
    for channel in Channel:
        ch = _channel(channel.value)
        assert ch["address"] == f"{{site}}/{{district}}/{{kind}}/{{device}}/{channel.value}"
        assert set(ch["parameters"]) == {"site", "district", "kind", "device"}


def test_alerts_channel_matches_alert_topic() -> None:
    ch = _channel("alerts")
    assert ch["address"] == f"{{site}}/{contract.ALERTS_DISTRICT}/{{kind}}/{{rule}}/{{subject}}"
    event = alerts.decode(json.dumps(MESSAGES["AlertEvent"]["examples"][0]["payload"]).encode())
    address = ch["address"].format(
        site="baclieu", kind=event.kind, rule=event.rule, subject=event.subject
    )
    assert alerts.alert_topic("baclieu", event) == address
    kind_param = _deref(DOC, ch["parameters"]["kind"])
    assert set(kind_param["enum"]) == set(get_args(alerts.AlertKind))


def test_identifier_pattern_equals_contract() -> None:
    anchored = f"^{IDENT_PATTERN}$"
    assert SCHEMAS["Identifier"]["pattern"] == anchored
    params = DOC["components"]["parameters"]
    for name in ("site", "district", "device", "rule", "subject"):
        assert params[name]["x-pattern"] == anchored, name
        assert anchored in params[name]["description"], name
    # Every pattern-like mention of an identifier in the document is the same one.
    mentions = set(re.findall(r"\^\[a-z0-9\][^$`']*\$", yaml.safe_dump(DOC)))
    assert mentions == {anchored}


def test_kind_parameter_enum_equals_contract() -> None:
    kind = DOC["components"]["parameters"]["kind"]
    assert kind["enum"] == [k.value for k in Kind]


@pytest.mark.parametrize("channel", sorted(RETAIN))
def test_operation_binding_qos_retain_and_direction(channel: str) -> None:
    op = _operation_for(channel)
    assert op["action"] == ("receive" if channel in RECEIVED else "send")
    binding = op["bindings"]["mqtt"]
    assert binding["qos"] == (0 if channel in QOS0 else 1)
    assert binding["retain"] is RETAIN[channel]
    # AsyncAPI 3: an operation's messages must be messages of its channel.
    prefix = f"#/channels/{channel}/messages/"
    assert [m["$ref"] for m in op["messages"]] == [
        prefix + k for k in _channel(channel)["messages"]
    ]


def test_every_channel_has_an_operation() -> None:
    assert set(DOC["channels"]) == set(RETAIN)


# --- payload schemas against the wire structs ------------------------------------
def test_one_tele_message_per_kind() -> None:
    assert set(_tele_messages()) == {k.value for k in Kind}


@pytest.mark.parametrize("kind", list(Kind))
def test_reading_schema_properties_are_the_kind_fields(kind: Kind) -> None:
    tele = _flatten(DOC, _tele_messages()[kind.value]["payload"])
    reading = _branches(DOC, tele)["object"]
    expected = set(FIELDS_BY_KIND[kind]) | set(contract.COMMON_FIELDS)
    assert set(reading["properties"]) == expected
    assert set(HEALTH_FIELDS) | {"ts", "seq", "boot", "hist"} == set(contract.COMMON_FIELDS)
    assert set(reading["required"]) == {"seq", "boot"}


@pytest.mark.parametrize("kind", list(Kind))
def test_tele_schema_matches_wire_struct(kind: Kind) -> None:
    wire = contract.WIRE_TYPES[kind]
    payload = _tele_messages()[kind.value]["payload"]
    assert_same_shape(payload, _code_schema(wire | list[wire]), f"tele.{kind}")  # type: ignore[valid-type]


@pytest.mark.parametrize("kind", list(Kind))
def test_tele_limits_match_contract(kind: Kind) -> None:
    message = _tele_messages()[kind.value]
    assert message["x-max-bytes"] == MAX_PAYLOAD_BYTES
    batch = _branches(DOC, message["payload"])["array"]
    assert (batch["minItems"], batch["maxItems"]) == (1, MAX_BATCH)


@pytest.mark.parametrize(
    ("schema", "wire"),
    [
        ("Status", contract.Status),
        ("Meta", contract.Meta),
        ("Command", contract.Command),
        ("Ack", contract.Ack),
        ("AlertEvent", alerts.AlertEvent),
        ("Silence", silences.SilenceWire),
        ("IngestReport", health.IngestReport),
        ("GatewayStatus", gateway_status.GatewayStatus),
    ],
)
def test_message_schema_matches_wire_struct(schema: str, wire: type[msgspec.Struct]) -> None:
    assert_same_shape(SCHEMAS[schema], _code_schema(wire), schema)


def test_alert_event_properties_are_struct_fields() -> None:
    event = SCHEMAS["AlertEvent"]
    assert set(event["properties"]) == set(alerts.AlertEvent.__struct_fields__)
    props = event["properties"]
    assert set(props["severity"]["enum"]) == set(alerts.SEVERITY_RANK)
    assert set(props["state"]["enum"]) == set(get_args(alerts.AlertState))
    assert set(props["message"]["properties"]) == set(alerts.Message.__struct_fields__)
    ack = _branches(DOC, props["ack"])["object"]
    assert set(ack["properties"]) == set(alerts.Ack.__struct_fields__)
    assert _types(DOC, props["ack"]) == {"object", "null"}
    # alert_id() makes the documented id shape.
    assert re.fullmatch(props["id"]["pattern"], alerts.alert_id("r", "s", 1))


def test_alert_message_is_bound_to_the_alerts_channel() -> None:
    assert _channel_messages("alerts") == [MESSAGES["AlertEvent"]]


def test_acks_channel_matches_ack_topic() -> None:
    ch = _channel("acks")
    assert ch["address"] == f"{{site}}/{contract.ACKS_DISTRICT}/{{alertId}}"
    assert _channel_messages("acks") == [MESSAGES["AlertAck"]]
    pattern = DOC["components"]["parameters"]["alertId"]["x-pattern"]
    assert re.fullmatch(pattern, alerts.alert_id("r", "s", 1))
    for payload in _examples(MESSAGES["AlertAck"]):
        topic = ch["address"].format(site="baclieu", alertId=payload["id"])
        event = alerts.decode_ack("baclieu", topic, json.dumps(payload).encode())
        assert alerts.ack_topic("baclieu", event.id) == topic
        assert event.ack is not None


def test_silences_channel_matches_silence_topic() -> None:
    ch = _channel("silences")
    assert ch["address"] == f"{{site}}/{contract.SILENCES_DISTRICT}/{{silenceId}}"
    assert _channel_messages("silences") == [MESSAGES["Silence"]]
    pattern = DOC["components"]["parameters"]["silenceId"]["x-pattern"]
    matchers = SCHEMAS["Silence"]["properties"]["matchers"]["description"]
    for field in silences.SILENCE_FIELDS:
        assert f"`{field}`" in matchers, field
    for example in MESSAGES["Silence"]["examples"]:
        silence_id = re.search(r"_silences/([a-z0-9-]+)", example["summary"]).group(1)  # type: ignore[union-attr]
        assert re.fullmatch(pattern, silence_id)
        decoded = silences.decode(silence_id, json.dumps(example["payload"]).encode())
        assert silences.silence_topic("baclieu", decoded.id) == ch["address"].format(
            site="baclieu", silenceId=silence_id
        )


def test_ingest_health_channel_matches_health_topic() -> None:
    ch = _channel("ingestHealth")
    assert ch["address"] == f"{{site}}/{health.HEALTH_DISTRICT}/ingest/{{worker}}"
    assert _channel_messages("ingestHealth") == [MESSAGES["IngestReport"]]
    assert MESSAGES["IngestReport"]["x-max-bytes"] == health.REPORT_MAX_BYTES
    pattern = DOC["components"]["parameters"]["worker"]["x-pattern"]
    assert re.fullmatch(pattern, "0") and re.fullmatch(pattern, "999")
    assert not any(re.fullmatch(pattern, w) for w in ("1000", "01", "-1", "x"))
    for example in MESSAGES["IngestReport"]["examples"]:
        report = health.decode(json.dumps(example["payload"]).encode())
        assert json.loads(health.encode(report)) == example["payload"]
        topic = ch["address"].format(site="baclieu", worker=report.worker)
        assert f"`{topic}`" in example["summary"]
        assert health.ingest_topic("baclieu", report.worker) == topic
    with pytest.raises(health.HealthError):  # what the schema refuses, the decoder does
        health.decode(json.dumps(_examples(MESSAGES["IngestReport"])[0] | {"x": 1}).encode())


def test_edge_status_channel_matches_gateway_topic() -> None:
    ch = _channel("edgeStatus")
    assert ch["address"] == f"{{site}}/{contract.EDGE_DISTRICT}/{{district}}/status"
    assert _channel_messages("edgeStatus") == [MESSAGES["GatewayStatus"]]
    assert MESSAGES["GatewayStatus"]["x-max-bytes"] == gateway_status.STATUS_MAX_BYTES
    assert set(SCHEMAS["GatewayDropped"]["properties"]) == set(
        gateway_status.Dropped.__struct_fields__
    )
    examples = MESSAGES["GatewayStatus"]["examples"]
    will = [e["payload"] for e in examples if e["name"] == "last-will"]
    assert [json.dumps(p, separators=(",", ":")).encode() for p in will] == [gateway_status.OFFLINE]
    for example in examples:
        district = re.search(r"_edge/([a-z0-9-]+)/status", example["summary"]).group(1)  # type: ignore[union-attr]
        topic = ch["address"].format(site="baclieu", district=district)
        assert gateway_status.district_of("baclieu", topic) == district
        raw = json.dumps(example["payload"]).encode()
        decoded = msgspec.to_builtins(gateway_status.decode(raw, district))
        assert {k: v for k, v in decoded.items() if v is not None} == example["payload"]
        if "district" in example["payload"]:
            with pytest.raises(gateway_status.GatewayStatusError):  # the topic is the truth
                gateway_status.decode(raw, "other-ward")


def test_edge_alert_channel_matches_the_gateway_alert_topic() -> None:
    ch = _channel("edgeAlert")
    assert ch["address"] == f"{{site}}/{contract.EDGE_DISTRICT}/{{district}}/alert"
    assert _channel_messages("edgeAlert") == [MESSAGES["EdgeAlert"]]
    assert MESSAGES["EdgeAlert"]["payload"] == MESSAGES["AlertEvent"]["payload"]
    for example in MESSAGES["EdgeAlert"]["examples"]:
        district = re.search(r"_edge/([a-z0-9-]+)/alert", example["summary"]).group(1)  # type: ignore[union-attr]
        topic = ch["address"].format(site="baclieu", district=district)
        assert contract.edge_alert_topic("baclieu", district) == topic
        assert contract.edge_district_of("baclieu", topic) == district
        event = alerts.decode(json.dumps(example["payload"]).encode())
        assert json.loads(alerts.encode(event)) == example["payload"]
        assert event.id == alerts.alert_id(event.rule, event.subject, event.started)
        assert (event.rule, event.district) == ("street-flood", district)
        assert (event.message.vi, event.message.en) == ("", "")


def test_broker_counter_channels_are_the_topics_analytics_reads() -> None:
    addresses = (_channel("brokerDropped")["address"], _channel("brokerStored")["address"])
    assert addresses == health.BROKER_TOPICS
    for name in ("brokerDropped", "brokerStored"):
        assert _channel_messages(name) == [MESSAGES["BrokerCounter"]]
    pattern = SCHEMAS["BrokerCounter"]["pattern"]
    for payload in _examples(MESSAGES["BrokerCounter"]):
        assert re.fullmatch(pattern, payload)
        assert health.broker_counter(payload.encode()) == int(payload)
    for bad in ("", "-1", "12a", "1.5"):
        assert not re.fullmatch(pattern, bad)
        with pytest.raises(health.HealthError):
            health.broker_counter(bad.encode())


# --- dead letters -----------------------------------------------------------------
def test_deadletter_reasons_match_code() -> None:
    """Every reason the code can record is documented, in the code's order, and
    nothing else; the code names them only through ``Reason``."""
    documented = SCHEMAS["DeadLetterReason"]["enum"]
    assert documented == [r.value for r in Reason]
    for reason in documented:
        assert f"`{reason}`" in SCHEMAS["DeadLetterReason"]["description"], reason
    literal = re.compile(r"(?:ContractError|_deadletter|deadletter_line)\(\s*\"")
    for package in ("deltasense", "ingest", "analytics"):
        for path in (ROOT / package).rglob("*.py"):
            assert not literal.search(path.read_text("utf-8")), f"{path}: a reason literal"


def test_documented_ranges_match_code() -> None:
    common = SCHEMAS["ReadingCommon"]["properties"]
    assert common["ts"]["minimum"] == contract.MIN_TS_MS
    counter = SCHEMAS["Counter"]
    assert (counter["minimum"], counter["maximum"]) == (0, contract.MAX_COUNTER)


def _feed(topic_str: str, payload: bytes) -> None:
    """Run a message through the contract the way ingest does; raises ContractError."""
    topic = contract.parse_topic(topic_str)
    if topic.channel is Channel.TELE:
        contract.decode_tele(topic, payload, NOW_MS)
    elif topic.channel is Channel.STATUS:
        contract.decode_status(payload)
    elif topic.channel is Channel.META:
        contract.decode_meta(payload)
    else:  # pragma: no cover - the examples only use the channels ingest decodes
        raise AssertionError(f"no decoder for {topic.channel}")


DEADLETTER_EXAMPLES = SCHEMAS["DeadLetter"]["examples"]


@pytest.mark.parametrize("example", DEADLETTER_EXAMPLES, ids=lambda e: e["reason"])
def test_deadletter_example_is_rejected_for_its_reason(example: dict[str, str]) -> None:
    with pytest.raises(ContractError) as info:
        _feed(example["topic"], example["payload"].encode())
    assert info.value.reason == example["reason"]


def test_deadletter_examples_cover_the_reasons() -> None:
    # too_large and batch_too_large need long payloads (tested below); the
    # storage-side reasons are not caused by a payload alone.
    shown = {e["reason"] for e in DEADLETTER_EXAMPLES}
    documented = set(SCHEMAS["DeadLetterReason"]["enum"])
    assert shown == documented - {"too_large", "batch_too_large", "store_rejected", "unstorable"}


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"seq":1,"boot":0,"lux":' + b"1" * MAX_PAYLOAD_BYTES + b"}", "too_large"),
        (
            b"[" + b",".join([b'{"seq":1,"boot":0,"t_c":1}'] * (MAX_BATCH + 1)) + b"]",
            "batch_too_large",
        ),
    ],
)
def test_documented_limits_reject(payload: bytes, reason: str) -> None:
    with pytest.raises(ContractError) as info:
        _feed("baclieu/p3/weather/ws-01/tele", payload)
    assert info.value.reason == reason


# --- examples through the real decoders ---------------------------------------------
def _examples(message: dict[str, Any]) -> list[Any]:
    examples = message.get("examples", [])
    assert examples, f"{message['name']} has no example"
    return [e["payload"] for e in examples]


def _tele_cases() -> list[tuple[str, Any]]:
    return [(kind, p) for kind, m in _tele_messages().items() for p in _examples(m)]


@pytest.mark.parametrize(("kind", "payload"), _tele_cases())
def test_tele_example_decodes(kind: str, payload: Any) -> None:
    raw = json.dumps(payload, ensure_ascii=False).encode()
    assert len(raw) <= MAX_PAYLOAD_BYTES
    topic = contract.parse_topic(f"baclieu/p3/{kind}/dev-01/tele")
    readings = contract.decode_tele(topic, raw, NOW_MS)
    wires = payload if isinstance(payload, list) else [payload]
    assert len(readings) == len(wires)
    for reading, wire in zip(readings, wires, strict=True):
        measured = {k: v for k, v in wire.items() if k not in {"ts", "seq", "boot", "hist"}}
        assert reading.fields == measured
        assert (reading.seq, reading.boot) == (wire["seq"], wire["boot"])
        assert reading.ts_from_platform is ("ts" not in wire)
        assert reading.hist is wire.get("hist", False)


def test_every_message_has_examples() -> None:
    for name, message in MESSAGES.items():
        assert _examples(message), name


@pytest.mark.parametrize("payload", _examples(MESSAGES["Status"]))
def test_status_example_decodes(payload: Any) -> None:
    contract.decode_status(json.dumps(payload).encode())


@pytest.mark.parametrize("payload", _examples(MESSAGES["Meta"]))
def test_meta_example_decodes(payload: Any) -> None:
    meta = contract.decode_meta(json.dumps(payload).encode())
    assert contract.struct_to_dict(meta) == payload


@pytest.mark.parametrize(
    ("message", "wire"), [("Command", contract.Command), ("Ack", contract.Ack)]
)
def test_command_and_ack_examples_decode(message: str, wire: type[msgspec.Struct]) -> None:
    for payload in _examples(MESSAGES[message]):
        msgspec.json.decode(json.dumps(payload).encode(), type=wire)


@pytest.mark.parametrize("payload", _examples(MESSAGES["AlertEvent"]))
def test_alert_example_is_what_the_platform_emits(payload: Any) -> None:
    event = alerts.decode(json.dumps(payload, ensure_ascii=False).encode())
    assert json.loads(alerts.encode(event)) == payload
    assert event.id == alerts.alert_id(event.rule, event.subject, event.started)


# --- the JSON Schemas themselves (optional dependency) ---------------------------------
def _validator(schema: dict[str, Any]) -> Any:
    jsonschema = pytest.importorskip("jsonschema")
    # The document is the root resource, so '#/components/...' refs resolve.
    return jsonschema.Draft7Validator({**DOC, "allOf": [schema]})


def test_component_schemas_are_valid_json_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    for name, schema in SCHEMAS.items():
        jsonschema.Draft7Validator.check_schema(schema)
        assert name


def test_examples_validate_against_their_schemas() -> None:
    for name, message in MESSAGES.items():
        validator = _validator(message["payload"])
        for payload in _examples(message):
            errors = [e.message for e in validator.iter_errors(payload)]
            assert not errors, f"{name}: {errors}"
    validator = _validator({"$ref": "#/components/schemas/DeadLetter"})
    for record in DEADLETTER_EXAMPLES:
        assert not list(validator.iter_errors(record))


@pytest.mark.parametrize(
    "example",
    [e for e in DEADLETTER_EXAMPLES if e["reason"] in {"schema", "empty_batch"}],
    ids=lambda e: e["payload"],
)
def test_schema_rejects_what_the_decoder_rejects(example: dict[str, str]) -> None:
    topic = contract.parse_topic(example["topic"])
    if topic.channel is Channel.TELE:
        schema = _tele_messages()[topic.kind.value]["payload"]
    else:
        schema = MESSAGES[topic.channel.value.capitalize()]["payload"]
    assert list(_validator(schema).iter_errors(json.loads(example["payload"])))
