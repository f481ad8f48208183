"""The sinks of the feed, one module each; each implements `mailwarden.export.sink.Sink`."""
