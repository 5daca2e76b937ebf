"""Why a message became a dead letter: the one list of reason codes.

Every ``ContractError`` and every dead letter ingest writes carries one of
these (the ``reason`` tag of the ``deadletters`` measurement).  They are
documented, with the order in which a message is checked, in
``docs/CONTRACT.md`` and ``docs/asyncapi.yaml`` (``DeadLetterReason``);
``tests/unit/test_asyncapi.py`` keeps the three in step.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    # the wire contract, in the order a message is checked
    BAD_TOPIC = "bad_topic"
    TOO_LARGE = "too_large"
    NOT_JSON = "not_json"
    NON_FINITE = "non_finite"  # NaN/Infinity literals, or a number beyond the float range
    SCHEMA = "schema"  # valid JSON of the wrong shape: wrong type, null, missing field
    EMPTY_BATCH = "empty_batch"
    BATCH_TOO_LARGE = "batch_too_large"
    DUPLICATE_KEY = "duplicate_key"
    UNDERFLOW = "underflow"  # a non-zero literal that parses as 0.0 (1e-400)
    BAD_SEQ = "bad_seq"  # seq outside 0..2^31-1
    BAD_BOOT = "bad_boot"  # boot outside 0..2^31-1
    PAST_TS = "past_ts"  # ts before 2020-01-01 (an unsynced clock, or forged)
    FUTURE_TS = "future_ts"
    NO_FIELDS = "no_fields"  # none of its kind's measured fields
    # storage side: not the device's fault
    STORE_REJECTED = "store_rejected"
    UNSTORABLE = "unstorable"
