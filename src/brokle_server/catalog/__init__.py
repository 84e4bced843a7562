"""The catalog: users, organizations, projects, environments, API keys and the audit log."""
