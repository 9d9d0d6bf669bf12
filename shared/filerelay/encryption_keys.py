"""The keys sealing destination secrets (filerelay.secrets_box): FILERELAY_ENCRYPTION_KEYS, else, with the
embedded SQLite database only, one generated once into FILERELAY_HOME/encryption_key (mode 0600).

The embedded database is a file of this host, and its processes share FILERELAY_HOME: the generated key
sits beside the data it protects, exactly like the session key (filerelay.secret_key). A database server
(PostgreSQL) is shared by hosts and pods whose FILERELAY_HOME is their own and often wiped on restart: a key
generated there would seal rows the next pod cannot open, or be lost with the pod. So with any database
but SQLite the keys must be given, and a process refuses to start without them.

Losing the key loses the destination secrets (they must then be entered again); back the file up with the
database, or set FILERELAY_ENCRYPTION_KEYS from a secret manager.
"""

from __future__ import annotations

import secrets

from filerelay.secret_key import generated_once
from filerelay.secrets_box import Keyring
from filerelay.settings import KEY_ADVICE, Settings, SettingsError

FILENAME = "encryption_key"
VARIABLE = "FILERELAY_ENCRYPTION_KEYS"


def encryption_keys(settings: Settings) -> tuple[str, ...]:
    if settings.encryption_keys:
        return settings.encryption_keys
    if not settings.embedded_database:
        raise SettingsError(
            f"{VARIABLE} is required with a database server: every process and host must seal and open "
            f"destination secrets with the same keys; {KEY_ADVICE}"
        )
    return (generated_once(settings.home, FILENAME, variable=VARIABLE, value=secrets.token_urlsafe(32)),)


def encryption_keyring(settings: Settings) -> Keyring:
    return Keyring.from_texts(encryption_keys(settings))
