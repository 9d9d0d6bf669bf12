"""One audited path for every change: configuration (destinations, repositories and their signature mode,
routes, retry settings, API keys, certificates) and operations (retry, bulk retry, pause, resume, file
delete). The REST API, the console, the command line and `config apply` all call these functions.

Each function takes a `Transaction`: it makes the change through the shared core's rules
(filerelay.workspace_config, filerelay.delivery, filerelay.certificates, filerelay.files) and writes its
audit entry in the same transaction. `transaction(context)` opens one, commits it, and only then sends
the wake-ups the change asked for; a change that raises rolls back with its entry.
"""

from filerelay.operations.transaction import Context, Transaction, UnknownItem, transaction

__all__ = ["Context", "Transaction", "UnknownItem", "transaction"]
