"""A workspace's configuration changed one piece at a time, by the admin API and `filerelay keys`:
destinations, repositories, routes, retry settings and API keys, and the whole of it by `config apply`.

Both write paths go through these functions and the schemas in `schemas.py`, so a setting accepted
by the API is accepted in a config file and stored the same way. Functions take a session and leave
the commit to the caller; the channels (REST, console, CLI, `config apply`) reach the writing ones
through filerelay.operations, which records each change in the audit log in the same transaction.
Reads answer plain `*Info` records: destination secrets never leave this package, only the names of
the secret fields that are set.
"""
