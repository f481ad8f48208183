"""mailwarden: email security for journal monitoring and inline SMTP filtering."""

__version__ = "0.1.0"
