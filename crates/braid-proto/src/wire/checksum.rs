//! The Internet checksum (RFC 1071) and the TCP pseudo-header. Implemented by the wire-ip-tcp work.
