"""The command registry and its renderers: every `kinko` operation, defined once.

`registry` holds the `Operation` type and the index of modules; each module here defines the
operations of one command group (OPERATIONS) and its groups' help (GROUPS); `click_app`
builds the CLI from them.
"""
