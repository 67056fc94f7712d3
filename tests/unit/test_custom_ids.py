"""Custom ids at their boundaries: Discord's 100 characters (built and signed), the largest id argument, ASCII
digits only, and a signed form's expiry to the second.

Each test here was written against a weakened copy of the check it names (mutation testing, ``make mutate``)
and fails on it."""

from __future__ import annotations

import time

import pytest

from hypotez.errors import InvalidInputError
from hypotez.keys import ExpiredFormError, Key, MalformedKeyError, ModalSigner, ParsedKey, build_key, parse_key


def test_a_custom_id_of_exactly_100_characters_is_built_and_101_is_refused() -> None:
    prefix = "hz.up:"
    assert len(build_key(Key.RATE_UP, "x" * (100 - len(prefix)))) == 100
    with pytest.raises(ValueError, match=r"custom id too long \(101 > 100\)"):
        build_key(Key.RATE_UP, "x" * (101 - len(prefix)))
    assert build_key(Key.AUDIT_PAGE) == "hz.al"
    assert build_key(Key.AUDIT_PAGE, 7, "", None) == "hz.al:7::None"
    with pytest.raises(ValueError, match=r"^custom id arguments cannot contain ':'$"):
        build_key(Key.RATE_UP, 1, "2:3")


def test_parsing_splits_on_every_colon() -> None:
    assert parse_key("hz.up") == ParsedKey(Key.RATE_UP, ())
    assert not ParsedKey(Key.RATE_UP, ()).has_args
    assert parse_key("hz.up:") == ParsedKey(Key.RATE_UP, ("",))
    assert ParsedKey(Key.RATE_UP, ("",)).has_args
    assert parse_key("hz.cm:1:2:3") == ParsedKey(Key.CORRECTION_MODAL, ("1", "2", "3"))
    for foreign in ("", "hz", "hz.upx:1", "HZ.UP:1", " hz.up:1", "x:hz.up:1"):
        assert parse_key(foreign) is None, foreign


@pytest.mark.parametrize(
    ("raw", "value"),
    [("0", 0), ("42", 42), ("9223372036854775807", 2**63 - 1), ("0000000000000000001", 1)],
)
def test_id_arguments_up_to_63_bits_and_19_digits(raw: str, value: int) -> None:
    assert ParsedKey(Key.RATE_UP, (raw,)).int_arg() == value


@pytest.mark.parametrize(
    "raw", ["9223372036854775808", "00000000000000000001", "", "-1", "+1", " 12", "1_0", "١٢", "1.0", "0x1"]
)
def test_id_arguments_beyond_63_bits_or_not_ascii_digits_are_refused(raw: str) -> None:
    parsed = ParsedKey(Key.RATE_UP, (raw,))
    with pytest.raises(MalformedKeyError) as caught:
        parsed.int_arg()
    assert caught.value.custom_id == f"hz.up:{raw}"
    assert isinstance(caught.value, InvalidInputError)
    assert str(caught.value) == (
        "This button or form is damaged or out of date. Run the command again for a fresh one."
    )


def test_a_missing_argument_is_refused() -> None:
    parsed = ParsedKey(Key.CORRECTION_MODAL, ("1", "2"))
    assert parsed.int_arg(1) == 2
    with pytest.raises(MalformedKeyError) as caught:
        parsed.int_arg(2)
    assert caught.value.custom_id == "hz.cm:1:2"


# ------------------------------------------------------------------------------------------------ signed forms

#: ``:<expiry>:<signature>``: 4 digits of expiry at ``now=1000`` (the hour after it), 16 of signature.
SIGNED_TAIL = 1 + 4 + 1 + 16


def test_a_signed_id_of_exactly_100_characters_and_no_more() -> None:
    signer = ModalSigner.from_token("token")
    fits = "hz.cm:" + "1" * (100 - SIGNED_TAIL - len("hz.cm:"))
    signed = signer.sign(fits, user_id=1, now=1000.0)
    assert len(signed) == 100
    assert signed.startswith(fits + ":4600:")
    tail = signed.rsplit(":", 1)[1]
    assert len(tail) == 16
    assert tail == tail.lower()
    assert signer.verify(signed, user_id=1, now=1000.0) == fits
    with pytest.raises(ValueError, match=r"signed custom id too long \(101 > 100\)"):
        signer.sign(fits + "1", user_id=1, now=1000.0)


def test_a_form_is_valid_to_its_last_second() -> None:
    signer = ModalSigner.from_token("token")
    signed = signer.sign("hz.fm:5", user_id=9, now=1000.9)  # expires at int(4600.9) = 4600
    assert signed.split(":")[2] == "4600"
    assert signer.verify(signed, user_id=9, now=4600.0) == "hz.fm:5"
    with pytest.raises(ExpiredFormError):
        signer.verify(signed, user_id=9, now=4600.01)
    short = ModalSigner(b"k" * 32, ttl=10.0)
    assert short.sign("hz.fm:5", user_id=9, now=100.0).split(":")[2] == "110"


def test_expiries_of_more_than_12_digits_are_refused_even_when_signed() -> None:
    signer = ModalSigner.from_token("token")
    twelve = signer.sign("hz.fm:5", user_id=9, now=10.0**11)
    assert len(twelve.split(":")[2]) == 12
    assert signer.verify(twelve, user_id=9, now=10.0**11) == "hz.fm:5"
    thirteen = signer.sign("hz.fm:5", user_id=9, now=10.0**12)
    assert len(thirteen.split(":")[2]) == 13
    with pytest.raises(ExpiredFormError):
        signer.verify(thirteen, user_id=9, now=10.0**12)


@pytest.mark.parametrize(
    "signed", ["", "sig", ":4600:sig", "hz.fm:5:46x0:sig", "hz.fm:5::sig", "hz.fm:5:٤٦٠٠:sig", "hz.fm:5:-1:sig"]
)
def test_malformed_signed_ids_are_refused(signed: str) -> None:
    with pytest.raises(ExpiredFormError) as caught:
        ModalSigner.from_token("token").verify(signed, user_id=9, now=1000.0)
    assert str(caught.value) == (
        "This form was opened for someone else, has expired or was changed, so nothing was stored. "
        "Open it again and submit it within the hour."
    )


def test_a_form_signed_by_one_build_verifies_on_another() -> None:
    """The signature depends only on the bot token, the id, the member and the expiry: replicas and restarts of
    any build of the same bot agree (a form opened before an upgrade is still answered after it)."""
    signer = ModalSigner.from_token("token")
    assert signer.sign("hz.fm:5", user_id=9, now=1000.0) == "hz.fm:5:4600:lr4kmgvg3g3wjhtc"
    assert signer.verify("hz.fm:5:4600:lr4kmgvg3g3wjhtc", user_id=9, now=1000.0) == "hz.fm:5"


def test_forms_use_the_clock_when_no_time_is_given() -> None:
    signer = ModalSigner.from_token("token")
    signed = signer.sign("hz.fm:5", user_id=9)
    assert abs(int(signed.split(":")[2]) - (time.time() + 3600)) < 5
    assert signer.verify(signed, user_id=9) == "hz.fm:5"
    stale = signer.sign("hz.fm:5", user_id=9, now=time.time() - 3600 - 60)
    with pytest.raises(ExpiredFormError):
        signer.verify(stale, user_id=9)


def test_without_a_token_each_process_signs_with_its_own_secret() -> None:
    first = ModalSigner.from_token(None)
    second = ModalSigner.from_token("")
    assert len(first.secret) == 32
    assert first.secret != second.secret
    signed = first.sign("hz.fm:5", user_id=9, now=1000.0)
    with pytest.raises(ExpiredFormError):
        second.verify(signed, user_id=9, now=1000.0)
    assert ModalSigner.from_token("t").secret == ModalSigner.from_token("t").secret
    assert ModalSigner.from_token("t").secret != ModalSigner.from_token("u").secret
    assert ModalSigner.from_token("t").ttl == 3600.0
