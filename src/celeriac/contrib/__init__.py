"""Optional integrations and plugins that ship with celeriac."""
