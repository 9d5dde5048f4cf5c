//! braid-sim: a deterministic discrete-event network simulator. Implemented by the sim work.
