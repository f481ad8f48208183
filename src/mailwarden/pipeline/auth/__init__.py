"""Sender authentication: SPF, DKIM, DMARC and ARC, reported as findings and an Authentication-Results value."""

from mailwarden.pipeline.auth.stage import DEFAULT_WEIGHTS, AuthConfig, AuthenticationStage

__all__ = ["DEFAULT_WEIGHTS", "AuthConfig", "AuthenticationStage"]
