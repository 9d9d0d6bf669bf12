"""Certificates SAP sent with putCert: review, activate, revoke (admin)."""
