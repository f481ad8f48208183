"""RFC header code used on several floors, pure (no I/O): Authentication-Results (RFC 8601), the Received
chain (RFC 5321 §4.4), and byte-level header rewriting that leaves every other byte as it was."""
