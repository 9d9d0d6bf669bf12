"""Configuration endpoints for admins: destinations, repositories, routes, settings, API keys."""
