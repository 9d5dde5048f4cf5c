//! The `braid` command-line tool.

mod report;
mod stream;

fn main() {}
