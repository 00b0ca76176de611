"""The OCSP responder: request parsing, response signing and serving."""
