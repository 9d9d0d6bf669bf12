"""Sealing destination secrets (filerelay.secrets_box) and the keys it takes (filerelay.settings,
filerelay.encryption_keys): fast, no database."""

from __future__ import annotations

import base64
import secrets
import stat
from pathlib import Path

import pytest

from filerelay.encryption_keys import encryption_keyring, encryption_keys
from filerelay.secret_key import secret_key
from filerelay.secrets_box import Keyring, SecretsBoxError, is_sealed, key_id_of, open_sealed, seal, weakness
from filerelay.settings import Settings, SettingsError

OLD = "old-key-" + "Jw3Rt8Kp1Zq6Xv0Bn5Mc2Lh7"
NEW = "new-key-" + "Yd4Gs9Fa2Wu7Ee1Ro6Ti3Py8"
VALUE = {"secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY", "headers": {"X-Token": "t0k3n"}}
PURPOSE = "destinations.secrets"


def test_a_sealed_value_opens_to_the_same_mapping_and_shows_nothing_of_it() -> None:
    keyring = Keyring.from_texts([OLD])
    sealed = seal(keyring, VALUE, purpose=PURPOSE)
    assert sealed.startswith(f"fr1:{keyring.primary.id}:")
    assert "wJalrXUtnFEMI" not in sealed
    assert "wJalrXUtnFEMI" not in base64.urlsafe_b64decode(sealed.split(":")[2]).decode("latin-1")
    assert open_sealed(keyring, sealed, purpose=PURPOSE) == VALUE
    assert seal(keyring, VALUE, purpose=PURPOSE) != sealed, "a fresh nonce each time"


def test_the_first_key_seals_and_every_key_opens() -> None:
    by_old = seal(Keyring.from_texts([OLD]), VALUE, purpose=PURPOSE)
    both = Keyring.from_texts([NEW, OLD])
    assert open_sealed(both, by_old, purpose=PURPOSE) == VALUE
    assert key_id_of(seal(both, VALUE, purpose=PURPOSE)) == Keyring.from_texts([NEW]).primary.id
    assert key_id_of(by_old) == Keyring.from_texts([OLD]).primary.id != both.primary.id


def test_a_key_not_in_the_keyring_names_the_key_id_and_no_key() -> None:
    by_old = seal(Keyring.from_texts([OLD]), VALUE, purpose=PURPOSE)
    with pytest.raises(SecretsBoxError) as caught:
        open_sealed(Keyring.from_texts([NEW]), by_old, purpose=PURPOSE)
    message = str(caught.value)
    assert f"key id {key_id_of(by_old)}, which is not among FILERELAY_ENCRYPTION_KEYS" in message
    assert OLD not in message
    assert NEW not in message


def test_an_altered_value_or_one_from_another_column_does_not_open() -> None:
    keyring = Keyring.from_texts([OLD])
    sealed = seal(keyring, VALUE, purpose=PURPOSE)
    prefix, key_id, blob = sealed.split(":")
    raw = bytearray(base64.urlsafe_b64decode(blob))
    raw[-1] ^= 1
    altered = f"{prefix}:{key_id}:{base64.urlsafe_b64encode(bytes(raw)).decode()}"
    for wrong, purpose in ((altered, PURPOSE), (sealed, "another.column"), (f"{prefix}:{key_id}:!!", PURPOSE)):
        with pytest.raises(SecretsBoxError, match=f"sealed under key id {key_id} does not open"):
            open_sealed(keyring, wrong, purpose=purpose)


@pytest.mark.parametrize("stored", ["fr1:", "fr1:abcd1234", "fr1::AAAA"])
def test_a_truncated_value_is_refused(stored: str) -> None:
    with pytest.raises(SecretsBoxError, match="without a key id and ciphertext"):
        open_sealed(Keyring.from_texts([OLD]), stored, purpose=PURPOSE)


@pytest.mark.parametrize("stored", [{"secret_access_key": "plain"}, {}, "plain text", None, 7])
def test_a_value_that_is_not_sealed_is_refused_never_passed_through(stored: object) -> None:
    assert not is_sealed(stored)
    with pytest.raises(SecretsBoxError, match="run `filerelay migrate`"):
        open_sealed(Keyring.from_texts([OLD]), stored, purpose=PURPOSE)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "is 0 bytes long"),
        ("short", "is 5 bytes long; at least 32 are needed"),
        (secrets.token_urlsafe(16), "bytes long"),
        ("CHANGE-ME", "is 9 bytes long"),
        ("change-me-to-a-long-random-string", "placeholder"),
        ("fr_live_CHANGE_ME-0000000000000000000000", "placeholder"),
        ("ChangeMe" + "9f8e7d6c5b4a39281706f5e4d3c2b1a0", "placeholder"),
        ("<generate with python -c 'import secrets'>", "placeholder"),
        ("replace-this-with-your-secret-key-please", "placeholder"),
        ("a" * 64, "too few characters"),
        ("0123456701234567012345670123456701234567", "too few characters"),
    ],
)
def test_short_placeholder_and_filler_keys_are_weak(value: str, reason: str) -> None:
    found = weakness(value)
    assert found is not None
    assert reason in found


def test_generated_keys_are_not_weak() -> None:
    # Hex keys with few different characters, as a random draw gives now and then (9 of 16 here).
    assert weakness("0847dd68d6842402305787d362866033") is None
    for _ in range(200):
        assert weakness(secrets.token_urlsafe(32)) is None
        assert weakness(secrets.token_hex(16)) is None
    assert weakness(base64.b64encode(secrets.token_bytes(32)).decode()) is None


@pytest.mark.parametrize("name", ["FILERELAY_SECRET_KEY", "FILERELAY_ENCRYPTION_KEYS"])
@pytest.mark.parametrize("value", ["CHANGE-ME", "change-me-to-a-long-random-string", "s3cr3t"])
def test_settings_refuse_a_weak_key_without_repeating_it(name: str, value: str, tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"FILERELAY_HOME": str(tmp_path), name: value})
    message = str(caught.value)
    assert message.startswith(name)
    assert "secrets.token_urlsafe(32)" in message
    assert value not in message.replace(name, "")


def test_settings_take_several_keys_in_order_keep_them_out_of_repr_and_pass_them_to_children(tmp_path: Path) -> None:
    settings = Settings.from_env({"FILERELAY_HOME": str(tmp_path), "FILERELAY_ENCRYPTION_KEYS": f" {NEW} , {OLD},"})
    assert settings.encryption_keys == (NEW, OLD)
    assert NEW not in repr(settings)
    assert settings.environ()["FILERELAY_ENCRYPTION_KEYS"] == f"{NEW},{OLD}"
    assert Settings.from_env(settings.environ()) == settings
    with pytest.raises(SettingsError, match="the same key twice"):
        Settings.from_env({"FILERELAY_ENCRYPTION_KEYS": f"{OLD},{OLD}"})


def test_the_embedded_database_generates_one_key_into_home_readable_by_its_owner_only(tmp_path: Path) -> None:
    settings = Settings.from_env({"FILERELAY_HOME": str(tmp_path / "home")})
    first = encryption_keys(settings)
    path = tmp_path / "home" / "encryption_key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert first == (path.read_text(),)
    assert weakness(first[0]) is None
    assert encryption_keys(Settings.from_env({"FILERELAY_HOME": str(tmp_path / "home")})) == first
    assert encryption_keyring(settings).primary.id == Keyring.from_texts(first).primary.id
    # The session key is a key of its own, in a file of its own.
    assert secret_key(settings) != first[0]


def test_given_keys_win_and_a_database_server_needs_them(tmp_path: Path) -> None:
    home = {"FILERELAY_HOME": str(tmp_path / "home")}
    given = Settings.from_env({**home, "FILERELAY_ENCRYPTION_KEYS": f"{NEW},{OLD}"})
    assert encryption_keys(given) == (NEW, OLD)
    server = Settings.from_env({**home, "FILERELAY_DATABASE_URL": "postgresql+psycopg://h/db"})
    with pytest.raises(SettingsError, match="FILERELAY_ENCRYPTION_KEYS is required with a database server"):
        encryption_keys(server)
    assert not (tmp_path / "home" / "encryption_key").exists()


def test_a_weak_key_file_written_by_hand_is_refused(tmp_path: Path) -> None:
    (tmp_path / "encryption_key").write_text("change-me\n")
    with pytest.raises(SettingsError, match="encryption_key is 9 bytes long"):
        encryption_keys(Settings.from_env({"FILERELAY_HOME": str(tmp_path)}))
