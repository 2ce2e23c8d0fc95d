"""Deploy-time helpers behind the Pulumi components, importable without Pulumi."""
