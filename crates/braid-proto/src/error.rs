//! Errors shared by every layer (the TCP engine, the MPTCP connection, the endpoint): the
//! bottom of the crate, so that no lower layer imports from a higher one.

/// Why a connection ended abnormally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    #[error("connection refused")]
    Refused,
    /// A plain RST from the peer.
    #[error("connection reset by peer")]
    Reset,
    #[error("connection timed out")]
    TimedOut,
    #[error("connection aborted locally")]
    Aborted,
    //= rfc8684#3.5
    //= MP_FASTCLOSE with our key closes the whole MPTCP connection at once: the peer's
    //  abort, told apart from a plain RST.
    /// The peer reset the MPTCP connection with MP_FASTCLOSE.
    #[error("connection reset by peer (MP_FASTCLOSE)")]
    FastClosed,
}
