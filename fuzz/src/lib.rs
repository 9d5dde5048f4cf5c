//! Support code of the braid fuzz targets, in a library so that the seed tests can run the
//! same harness the fuzzer runs.
#![forbid(unsafe_code)]

pub mod checksums;
pub mod endpoint;
