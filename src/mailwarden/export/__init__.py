"""The event feed: mailwarden's records rendered as OCSF events (and CEF), and the sinks that carry them to
a SIEM or data lake (NATS JetStream, syslog, HTTPS webhook, JSON-lines file). docs/events.md."""
