"""Certificate revocation lists: building, numbering and publication."""
