"""The POP3 fetch and relay sidecar: poll, dedupe, deliver, confirm, delete."""
