//! Property tests: every canonical MPTCP option survives emit + parse, and parsing arbitrary
//! bytes never panics and re-encodes to something that parses to the same value.

#[path = "common/mptcp_strategy.rs"]
mod mptcp_strategy;

use braid_proto::wire::mptcp::{MptcpOption, KIND};
use proptest::prelude::*;

use mptcp_strategy::arb_mptcp_option;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn parse_of_emit_is_identity(opt in arb_mptcp_option()) {
        let len = opt.buffer_len();
        prop_assert!((3..=255).contains(&len));
        // emit writes exactly buffer_len bytes and touches nothing after them.
        let mut buf = vec![0xa5u8; len + 8];
        opt.emit(&mut buf);
        prop_assert!(buf[len..].iter().all(|&b| b == 0xa5));
        prop_assert_eq!(buf[0], KIND);
        prop_assert_eq!(usize::from(buf[1]), len);
        prop_assert_eq!(buf[2] >> 4, opt.subtype());
        let back = MptcpOption::parse(&buf[..len]);
        prop_assert_eq!(back, Ok(opt.clone()));
        prop_assert_eq!(opt.to_vec(), buf[..len].to_vec());
    }

    #[test]
    fn every_prefix_of_a_valid_option_is_an_error(opt in arb_mptcp_option()) {
        let bytes = opt.to_vec();
        for n in 0..bytes.len() {
            prop_assert!(MptcpOption::parse(&bytes[..n]).is_err());
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_reencode(
        sub in any::<u8>(),
        body in proptest::collection::vec(any::<u8>(), 0..40),
        fix_len in any::<bool>(),
        len_byte in any::<u8>(),
    ) {
        let mut data = vec![KIND, 0, sub];
        data.extend(body);
        data[1] = if fix_len { data.len() as u8 } else { len_byte };
        if let Ok(opt) = MptcpOption::parse(&data) {
            let again = opt.to_vec();
            prop_assert_eq!(MptcpOption::parse(&again), Ok(opt));
        }
    }
}
