"""Kinko's certificate authority: rules, signing, storage and the ledger."""
