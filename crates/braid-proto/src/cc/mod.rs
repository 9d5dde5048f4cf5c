//! Congestion control behind a trait. Implemented by the tcp work.
