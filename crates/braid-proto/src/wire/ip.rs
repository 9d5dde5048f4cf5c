//! IPv4 (RFC 791) and IPv6 (RFC 8200) headers. Implemented by the wire-ip-tcp work.
