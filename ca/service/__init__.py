"""The CA service: one account holds the home; officers reach it over a Unix socket, and the
kernel's peer credentials say who they are (`server`), the CLI being its client (`client`)."""
