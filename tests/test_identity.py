"""Property tests for every normalisation in reconcile.identity."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconcile.identity import (
    common_name,
    device_fold,
    device_key,
    issuer_key,
    parse_serial,
    parse_thumbprint,
    san_dns_names,
    serial_hex,
)

SERIALS = st.integers(min_value=0, max_value=2**320 - 1)  # up to 40 bytes
SEPARATORS = st.sampled_from(["", ":", "-", " ", "\t"])


def random_case(draw: st.DrawFn, text: str) -> str:
    flags = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    return "".join(c.upper() if up else c.lower() for c, up in zip(text, flags, strict=True))


@st.composite
def hex_spellings(draw: st.DrawFn) -> tuple[int, str]:
    """A serial and one of the many ways a CA, Intune, .NET or Vault could write it."""
    value = draw(SERIALS)
    digits = f"{value:x}"
    digits = "0" * draw(st.integers(0, 6)) + digits
    if draw(st.booleans()) and len(digits) % 2:
        digits = "0" + digits
    separator = draw(SEPARATORS)
    if separator and len(digits) % 2 == 0:
        digits = separator.join(digits[i : i + 2] for i in range(0, len(digits), 2))
    digits = random_case(draw, digits)
    if draw(st.booleans()):
        digits = draw(st.sampled_from(["0x", "0X"])) + digits
    padding = draw(st.sampled_from(["", " ", "  ", "\t"]))
    return value, padding + digits + padding


@given(hex_spellings())
def test_hex_serial_spellings_parse_to_the_same_integer(case: tuple[int, str]) -> None:
    value, text = case
    assert parse_serial(text) == value


@given(SERIALS, st.integers(0, 5), st.sampled_from(["", " "]))
def test_decimal_serials(value: int, zeros: int, padding: str) -> None:
    text = padding + "0" * zeros + str(value) + padding
    assert parse_serial(text, base=10) == value


@given(st.integers(min_value=1, max_value=2**160))
def test_negative_decimal_serial_is_refused(value: int) -> None:
    with pytest.raises(ValueError, match="negative"):
        parse_serial(f"-{value}", base=10)


@given(SERIALS)
def test_serial_hex_round_trip(value: int) -> None:
    text = serial_hex(value)
    assert len(text) % 2 == 0
    assert text == text.upper() and int(text, 16) == value
    assert not text.startswith("00") or value == 0
    assert parse_serial(text) == value
    assert parse_serial("00" + text) == value  # .NET's sign byte
    assert serial_hex(parse_serial(text.lower())) == text


@given(
    hex_spellings(),
    st.integers(0, 1000),
    st.sampled_from(["g", "z", "_", "+", ".", "٣", "ａ", "\n1", "x", ","]),
)
def test_non_hex_characters_are_refused(case: tuple[int, str], at: int, bad: str) -> None:
    _, text = case
    stripped = text.strip()
    position = at % (len(stripped) + 1)
    if bad.startswith("\n") and position in (0, len(stripped)):
        position = 1 if stripped else 0  # a newline at either end is just whitespace
    spoiled = stripped[:position] + bad + stripped[position:]
    if spoiled.strip()[:2] in ("0x", "0X") and bad == "x":
        spoiled = "1" + spoiled  # "x" right after a leading 0 would form a prefix
    with pytest.raises(ValueError):
        parse_serial(spoiled)


@given(st.text(alphabet=":- \t", max_size=10))
def test_empty_serials_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="empty"):
        parse_serial(text)


@given(st.integers(min_value=2**320, max_value=2**400), st.integers(0, 10))
def test_serials_over_40_bytes_are_refused_whatever_the_leading_zeros(
    value: int, zeros: int
) -> None:
    with pytest.raises(ValueError, match="longer than 40 bytes"):
        parse_serial("0" * zeros + f"{value:x}")
    assert parse_serial("0" * 200 + "1") == 1


def test_serial_base_must_be_16_or_10() -> None:
    with pytest.raises(ValueError, match="base"):
        parse_serial("1", base=8)


@st.composite
def thumbprint_spellings(draw: st.DrawFn) -> tuple[str, str]:
    digest = draw(st.binary(min_size=20, max_size=20) | st.binary(min_size=32, max_size=32))
    separator = draw(SEPARATORS)
    text = separator.join(f"{b:02x}" for b in digest)
    padding = draw(st.sampled_from(["", " ", "\t"]))
    return digest.hex().upper(), padding + random_case(draw, text) + padding


@given(thumbprint_spellings())
def test_thumbprint_spellings(case: tuple[str, str]) -> None:
    canonical, text = case
    assert parse_thumbprint(text) == canonical
    assert parse_thumbprint(canonical) == canonical


@given(st.binary(max_size=40).filter(lambda b: len(b) not in (20, 32)))
def test_thumbprints_of_other_lengths_are_refused(digest: bytes) -> None:
    with pytest.raises(ValueError, match="40 or 64 hex digits"):
        parse_thumbprint(digest.hex())


@given(st.binary(min_size=20, max_size=20), st.integers(0, 39), st.sampled_from("gGzZ_+é"))
def test_thumbprints_with_non_hex_are_refused(digest: bytes, at: int, bad: str) -> None:
    text = digest.hex()
    with pytest.raises(ValueError):
        parse_thumbprint(text[:at] + bad + text[at + 1 :])


PLAIN = st.text(
    alphabet=st.sampled_from(
        list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .-_()&'éüÅ")
    ),
    min_size=1,
    max_size=40,
).filter(lambda s: s.strip() != "")
SPECIAL = st.text(
    alphabet=st.sampled_from(list('abcXYZ09 ,+;"\\=<>#')), min_size=1, max_size=30
).filter(lambda s: s.strip() != "")


def rfc4514_escape(value: str) -> str:
    escaped = "".join("\\" + c if c in ',+;"\\<>=' else c for c in value)
    if escaped.startswith(("#", " ")):
        escaped = "\\" + escaped
    if escaped.endswith(" "):
        escaped = escaped[:-1] + "\\ "
    return escaped


def key(text: str) -> str:
    return " ".join(text.split()).casefold()


@given(PLAIN, st.sampled_from(["", ", OU=PKI, DC=corp, DC=contoso", ",O=Contoso,C=US"]))
def test_issuer_key_dn_and_plain_name_agree(name: str, rest: str) -> None:
    expected = key(name)
    assert issuer_key(name) == expected
    assert issuer_key(f"CN={name}{rest}") == expected
    assert issuer_key(f"cn = {name}{rest}") == expected
    assert issuer_key(f"O=Contoso, CN={name}") == expected
    assert issuer_key(f"/C=ZZ/O=Contoso/CN={name}") == expected
    assert issuer_key(name.swapcase()) == expected
    assert issuer_key("  " + name.replace(" ", "   ") + "\t") == expected


@given(SPECIAL)
def test_issuer_key_unescapes_dn_values(name: str) -> None:
    expected = key(name)
    assert issuer_key(f"CN={rfc4514_escape(name)}, O=Org") == expected
    quoted = name.replace('"', '""')
    assert issuer_key(f'CN="{quoted}", O=Org') == expected


@given(st.text(min_size=1, max_size=20).filter(lambda s: s.strip() != ""))
def test_issuer_key_hex_escapes_are_utf8(name: str) -> None:
    escaped = "".join(f"\\{b:02X}" for b in name.encode("utf-8"))
    assert issuer_key(f"CN={escaped},O=x") == key(name)


def test_common_name_picks_the_most_specific_cn() -> None:
    assert common_name("CN=PC-01,CN=Computers,DC=corp,DC=contoso") == "PC-01"
    assert common_name("/DC=contoso/CN=Users/CN=PC-01") == "PC-01"
    assert common_name("O=Contoso, OU=PKI") is None
    assert common_name("CN=, O=x") is None
    assert issuer_key("O=Contoso,  OU=PKI") == "o=contoso, ou=pki"


HOST_LABEL = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12)


@given(HOST_LABEL, st.lists(HOST_LABEL.filter(lambda s: not s.isdigit()), min_size=1, max_size=4))
def test_a_host_name_and_its_fqdn_are_one_device(host: str, domain: list[str]) -> None:
    fqdn = ".".join([host, *domain])
    assert device_key(fqdn.upper()) == device_key(host) == host
    assert device_key(f" {fqdn}. ") == host


@pytest.mark.parametrize(
    "name",
    [
        "megan.bowen@contoso.com",
        "10.1.2.3",
        "Alex's iPhone 12.1",
        "Pixel7.5",
        '=HYPERLINK("http://evil.example","x")',
        "a..b",
    ],
)
def test_names_that_are_not_host_names_are_kept_whole(name: str) -> None:
    assert device_key(name) == name.casefold()


def test_a_missing_or_blank_device_name_has_no_key() -> None:
    assert device_fold(None) is None
    assert device_fold("") is None
    assert device_fold("  ") is None
    assert device_fold("CONTOSO-LT-0099.corp.contoso.com") == "contoso-lt-0099"


def test_san_dns_names_in_certutil_openssl_and_ejbca_spelling() -> None:
    assert san_dns_names("DNS Name=pc-01.corp.contoso.com, Other Name:Principal Name=a@b") == [
        "pc-01.corp.contoso.com"
    ]
    assert san_dns_names("DNS:pc-01, DNS:pc-01.corp, IP Address:10.0.0.1") == [
        "pc-01",
        "pc-01.corp",
    ]
    assert san_dns_names("dNSName=desktop-7qk2m1.corp.contoso.com") == [
        "desktop-7qk2m1.corp.contoso.com"
    ]
