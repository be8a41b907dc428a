"""The credentials-file rules the Prometheus and Alertmanager clients share (repairbot.http_credentials).

Each client's own tests drive these rules end to end (the operator's start, a request through a proxy);
these pin the shared wording once, so the two flag families say the same thing about the same mistake.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from repairbot.http_credentials import (
    UnreadableCredentials,
    file_problems,
    read_credentials_file,
    read_user_and_password,
    refuse_two_credentials,
)


def test_a_token_file_and_a_basic_auth_file_together_are_refused_naming_the_service(tmp_path: Path) -> None:
    with pytest.raises(ValueError) as caught:
        refuse_two_credentials("Grafana", tmp_path / "token", tmp_path / "basic-auth")
    assert str(caught.value) == "Grafana credentials: a bearer token file or a basic-auth file, not both"
    refuse_two_credentials("Grafana", tmp_path / "token", None)  # one credential is fine


def test_every_missing_file_is_named_at_start_and_a_colonless_basic_auth_file_too(tmp_path: Path) -> None:
    basic = tmp_path / "basic-auth"
    basic.write_text("only-a-password\n")
    assert file_problems("Grafana", ca_file=tmp_path / "ca.crt", token_file=None, basic_auth_file=basic) == [
        f"the Grafana CA bundle {tmp_path / 'ca.crt'} is not a readable file",
        f"the Grafana basic-auth file {basic} holds no user:password",
    ]
    assert file_problems("Grafana", ca_file=None, token_file=None, basic_auth_file=None) == []


def test_a_token_is_read_stripped_and_an_empty_or_missing_file_says_which(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("  secret-token\n")
    assert read_credentials_file(token, "Grafana token file") == "secret-token"
    token.write_text("\n")
    with pytest.raises(UnreadableCredentials) as empty:
        read_credentials_file(token, "Grafana token file")
    assert str(empty.value) == f"the Grafana token file {token} is empty"
    with pytest.raises(UnreadableCredentials) as missing:
        read_credentials_file(tmp_path / "absent", "Grafana token file")
    assert str(missing.value) == f"cannot read the Grafana token file {tmp_path / 'absent'}: No such file or directory"


def test_a_basic_auth_password_may_hold_colons_but_a_file_without_one_is_refused(tmp_path: Path) -> None:
    basic = tmp_path / "basic-auth"
    basic.write_text("repairbot:pa:ss\n")
    assert read_user_and_password(basic, "basic-auth file") == ("repairbot", "pa:ss")
    basic.write_text("only-a-password\n")
    with pytest.raises(UnreadableCredentials) as caught:
        read_user_and_password(basic, "basic-auth file")
    assert str(caught.value) == f"the basic-auth file {basic} holds no user:password"
