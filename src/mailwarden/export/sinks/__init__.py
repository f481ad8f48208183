"""The sinks of the event feed, one module each (docs/events.md): each implements `export.sink.Sink`."""
