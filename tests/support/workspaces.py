"""Configured workspaces: the YAML the tests configure FileRelay with, applied as `filerelay config apply`
applies it."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping

from filerelay.config_file import apply, load
from filerelay.db.session import session_scope
from filerelay.policy import OperatorPolicy
from filerelay.runtime import Runtime
from tests.support.policy import LOOPBACK

# acme/production: Z1 wired to a folder and to an S3 bucket that refuses every upload, Z2 wired to nothing.
CONFIG = textwrap.dedent(
    """
    workspaces:
      - owner: acme
        slug: production
        retry: {max_retries: 3, ttl: 1h, backoff_base: 1s, backoff_max: 10s}
        api_keys:
          - {name: ops, role: admin, key: "${ADMIN_KEY}"}
        destinations:
          - {id: dest_folder, name: Local Folder, kind: folder, root: "${OUT_DIR}",
             path: "/{repo_id}/{doc_id}_{comp_id}{ext}"}
          - {id: dest_s3prod, name: S3 Production Archive, kind: s3, bucket: archive,
             endpoint_url: "http://127.0.0.1:9", access_key_id: x, secret_access_key: "${S3_SECRET}",
             path: "/{received:%Y/%m/%d}/{doc_id}{ext}"}
        repositories:
          - {id: Z1, description: Invoices, signature: none, destinations: [dest_folder, dest_s3prod]}
          - {id: Z2, description: Unwired scans, signature: none, destinations: []}
    """
)

# acme/production with repositories in each signature mode, all wired to a folder.
SIGNATURE_MODES = textwrap.dedent(
    """
    workspaces:
      - owner: acme
        slug: production
        destinations:
          - {id: dest_folder, name: Local Folder, kind: folder, root: "${OUT_DIR}",
             path: "/{repo_id}/{doc_id}_{comp_id}{ext}"}
        repositories:
          - {id: Z1, description: Unsigned, signature: none, destinations: [dest_folder]}
          - {id: S1, description: Signed invoices, signature: required, destinations: [dest_folder]}
          - {id: S2, description: Signed scans, signature: required, destinations: [dest_folder]}
          - {id: O1, description: Signed where docProt says, signature: optional, destinations: [dest_folder]}
          - {id: N1, description: Test system, signature: none, destinations: [dest_folder]}
    """
)


def configure(
    runtime: Runtime, config: str, env: Mapping[str, str] | None = None, *, policy: OperatorPolicy = LOOPBACK
) -> Runtime:
    """`config` (YAML, `${NAME}` taken from `env`) applied and committed; the runtime, for fixtures."""
    with session_scope(runtime.sessions) as session:
        apply(session, load(config, env or {}), now=runtime.clock.now(), policy=policy)
    return runtime
