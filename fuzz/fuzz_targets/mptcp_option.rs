//! Parse arbitrary bytes as one MPTCP option. Parsing must never panic; whatever parses must
//! re-encode to exactly `buffer_len` bytes that parse back to the same value.
#![no_main]

use braid_proto::wire::mptcp::MptcpOption;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(opt) = MptcpOption::parse(data) {
        let len = opt.buffer_len();
        assert!((3..=255).contains(&len));
        let mut buf = vec![0u8; len];
        opt.emit(&mut buf);
        assert_eq!(usize::from(buf[1]), len);
        // Reserved bits aside, the canonical encoding keeps the input's length.
        assert_eq!(len, data.len());
        assert_eq!(MptcpOption::parse(&buf).as_ref(), Ok(&opt));
    }
});
