//! MPTCP crypto, RFC 8684 §3.1, §3.2, §3.4.1, §3.3.1. Implemented by the wire-mptcp work.
