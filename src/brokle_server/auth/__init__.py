"""Authentication and authorisation: passwords, sessions, API-key principals, RBAC, limits."""
