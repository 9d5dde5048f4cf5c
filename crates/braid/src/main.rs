//! The `braid` command-line tool.

fn main() {}
