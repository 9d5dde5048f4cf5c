//! Proptest strategies for MPTCP options, shared by test files.
//!
//! Include it from a test crate with
//! `#[path = "common/mptcp_strategy.rs"] mod mptcp_strategy;`
//! (a path attribute, so that no `tests/common/mod.rs` is needed).
//!
//! Every value generated is in the canonical form `MptcpOption::parse` produces, so
//! `parse(emit(x)) == x` holds for all of them: 32-bit DSNs and DATA_ACKs fit 32 bits,
//! MP_CAPABLE fields form one of the five wire forms, lists fit the one-byte length,
//! `Unknown` uses an unassigned subtype and keeps its first data byte to a nibble.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use braid_proto::wire::mptcp::{Dss, DssMapping, MpCapable, MptcpOption};
use proptest::collection::vec;
use proptest::prelude::*;

pub fn arb_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|o| IpAddr::V4(Ipv4Addr::from(o))),
        any::<[u8; 16]>().prop_map(|o| IpAddr::V6(Ipv6Addr::from(o))),
    ]
}

pub fn arb_mp_capable() -> impl Strategy<Value = MpCapable> {
    (
        0u8..16,
        any::<u8>(),
        0u8..5,
        any::<u64>(),
        any::<u64>(),
        any::<u16>(),
        any::<u16>(),
    )
        .prop_map(|(version, flags, form, ks, kr, len, csum)| match form {
            0 => MpCapable::syn(version, flags),
            1 => MpCapable::syn_ack(version, flags, ks),
            2 => MpCapable::ack(version, flags, ks, kr),
            3 => MpCapable::ack_with_data(version, flags, ks, kr, len, None),
            _ => MpCapable::ack_with_data(version, flags, ks, kr, len, Some(csum)),
        })
}

/// A sequence number that fits its width.
fn arb_seq(wide: bool) -> BoxedStrategy<u64> {
    if wide {
        any::<u64>().boxed()
    } else {
        any::<u32>().prop_map(u64::from).boxed()
    }
}

pub fn arb_dss_mapping() -> impl Strategy<Value = DssMapping> {
    any::<bool>().prop_flat_map(|dsn_64| {
        (
            arb_seq(dsn_64),
            any::<u32>(),
            any::<u16>(),
            any::<Option<u16>>(),
        )
            .prop_map(move |(dsn, subflow_seq, data_len, checksum)| DssMapping {
                dsn,
                dsn_64,
                subflow_seq,
                data_len,
                checksum,
            })
    })
}

pub fn arb_dss() -> impl Strategy<Value = Dss> {
    (any::<bool>(), any::<bool>()).prop_flat_map(|(has_ack, data_ack_64)| {
        let ack = if has_ack {
            arb_seq(data_ack_64).prop_map(Some).boxed()
        } else {
            Just(None).boxed()
        };
        (ack, proptest::option::of(arb_dss_mapping()), any::<bool>()).prop_map(
            move |(data_ack, mapping, data_fin)| Dss {
                data_ack,
                data_ack_64,
                mapping,
                data_fin,
            },
        )
    })
}

pub fn arb_mptcp_option() -> impl Strategy<Value = MptcpOption> {
    prop_oneof![
        arb_mp_capable().prop_map(MptcpOption::MpCapable),
        (any::<bool>(), any::<u8>(), any::<u32>(), any::<u32>()).prop_map(
            |(backup, addr_id, token, nonce)| MptcpOption::MpJoinSyn {
                backup,
                addr_id,
                token,
                nonce
            }
        ),
        (any::<bool>(), any::<u8>(), any::<u64>(), any::<u32>()).prop_map(
            |(backup, addr_id, hmac, nonce)| MptcpOption::MpJoinSynAck {
                backup,
                addr_id,
                hmac,
                nonce
            }
        ),
        any::<[u8; 20]>().prop_map(|hmac| MptcpOption::MpJoinAck { hmac }),
        arb_dss().prop_map(MptcpOption::Dss),
        (
            any::<bool>(),
            any::<u8>(),
            arb_ip(),
            any::<Option<u16>>(),
            any::<Option<u64>>()
        )
            .prop_map(|(echo, addr_id, addr, port, hmac)| MptcpOption::AddAddr {
                echo,
                addr_id,
                addr,
                port,
                hmac
            }),
        vec(any::<u8>(), 1..=252).prop_map(|addr_ids| MptcpOption::RemoveAddr { addr_ids }),
        (any::<bool>(), any::<Option<u8>>())
            .prop_map(|(backup, addr_id)| MptcpOption::MpPrio { backup, addr_id }),
        any::<u64>().prop_map(|dsn| MptcpOption::MpFail { dsn }),
        any::<u64>().prop_map(|receiver_key| MptcpOption::MpFastclose { receiver_key }),
        (0u8..16, any::<u8>()).prop_map(|(flags, reason)| MptcpOption::MpTcpRst { flags, reason }),
        (9u8..16, 0u8..16, vec(any::<u8>(), 0..=252)).prop_map(|(subtype, low, rest)| {
            let mut data = vec![low];
            data.extend(rest);
            MptcpOption::Unknown { subtype, data }
        }),
    ]
}
