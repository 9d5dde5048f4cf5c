//! Interop harness. Implemented by the interop work.
