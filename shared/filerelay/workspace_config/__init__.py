"""A workspace's configuration changed one piece at a time, by the admin API and `filerelay keys`:
destinations, repositories, routes, retry settings and API keys.

The rules are config_file's (the same validators, defaults and route wiring), so a setting accepted
here is accepted in a config file and the other way round. Functions take a session and leave the
commit to the caller. Reads answer plain `*Info` records: destination secrets never leave this package,
only the names of the secret fields that are set.
"""
