//! The subflow TCP engine. Implemented by the tcp work.

/// TCP engine configuration (implemented by the tcp work).
#[derive(Debug, Clone, Default)]
pub struct TcpConfig {}
