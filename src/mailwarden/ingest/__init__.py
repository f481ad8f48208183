"""How mail arrives: SMTP listeners, the durable spool, journal unwrapping, files for offline scans."""
