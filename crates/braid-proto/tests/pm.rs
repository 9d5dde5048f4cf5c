//! Endpoint table and limits: the validation rules of `ip mptcp`.

use std::net::IpAddr;

use braid_proto::pm::{
    common_prefix_len, longest_prefix_match, validate_flags, EndpointFlags as F, EndpointTable,
    FlagChange, LimitKind, Limits, PmError, MAX_ENDPOINTS,
};

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

#[test]
fn limits_default_to_the_kernels() {
    let l = Limits::default();
    assert_eq!((l.subflows, l.add_addr_accepted), (2, 0));
    assert_eq!(EndpointTable::new().limits(), l);
    assert_eq!(l.to_string(), "add_addr_accepted 0 subflows 2");
}

#[test]
fn limits_are_capped_at_8() {
    assert_eq!(
        Limits::new(8, 8),
        Ok(Limits {
            subflows: 8,
            add_addr_accepted: 8
        })
    );
    assert_eq!(
        Limits::new(9, 0),
        Err(PmError::LimitTooHigh {
            what: LimitKind::Subflows,
            value: 9
        })
    );
    let e = Limits::new(0, 300).unwrap_err();
    assert_eq!(
        e,
        PmError::LimitTooHigh {
            what: LimitKind::AddAddrAccepted,
            value: 300
        }
    );
    assert_eq!(
        e.to_string(),
        "add_addr_accepted limit 300 greater than maximum 8"
    );
    let mut t = EndpointTable::new();
    t.set_limits(Limits::new(4, 1).expect("valid"));
    assert_eq!(t.limits().subflows, 4);
}

#[test]
fn port_needs_signal() {
    let mut t = EndpointTable::new();
    let e = t
        .add(ip("10.0.0.1"), None, Some(8080), None, F::SUBFLOW)
        .unwrap_err();
    assert_eq!(e, PmError::PortWithoutSignal);
    assert_eq!(e.to_string(), "flags must have signal when using port");
    assert!(t
        .add(ip("10.0.0.1"), None, Some(8080), None, F::SIGNAL)
        .is_ok());
}

#[test]
fn signal_and_fullmesh_are_refused_together() {
    let mut t = EndpointTable::new();
    let e = t
        .add(ip("10.0.0.1"), None, None, None, F::SIGNAL | F::FULLMESH)
        .unwrap_err();
    assert_eq!(e, PmError::SignalAndFullmesh);
    assert_eq!(e.to_string(), "flags mustn't have both signal and fullmesh");
    assert!(validate_flags(F::SUBFLOW | F::FULLMESH | F::BACKUP, None).is_ok());
}

#[test]
fn ids_are_1_to_255_and_unique() {
    let mut t = EndpointTable::new();
    assert_eq!(
        t.add(ip("10.0.0.1"), Some(0), None, None, F::SIGNAL),
        Err(PmError::InvalidId(0))
    );
    assert_eq!(
        t.add(ip("10.0.0.1"), Some(256), None, None, F::SIGNAL),
        Err(PmError::InvalidId(256))
    );
    let e = t
        .add(ip("10.0.0.1"), Some(255), None, None, F::SIGNAL)
        .expect("valid");
    assert_eq!(e.id, 255);
    assert_eq!(
        t.add(ip("10.0.0.2"), Some(255), None, None, F::SIGNAL),
        Err(PmError::DuplicateId(255))
    );
}

#[test]
fn automatic_ids_take_the_lowest_free() {
    let mut t = EndpointTable::new();
    t.add(ip("10.0.0.1"), Some(1), None, None, F::SUBFLOW)
        .expect("valid");
    t.add(ip("10.0.0.3"), Some(3), None, None, F::SUBFLOW)
        .expect("valid");
    let e = t
        .add(ip("10.0.0.2"), None, None, None, F::SUBFLOW)
        .expect("valid");
    assert_eq!(e.id, 2);
    let ids: Vec<u8> = t.endpoints().iter().map(|e| e.id).collect();
    assert_eq!(ids, vec![1, 2, 3]);
}

#[test]
fn duplicate_and_bad_addresses_are_refused() {
    let mut t = EndpointTable::new();
    t.add(ip("10.0.0.1"), None, None, None, F::SUBFLOW)
        .expect("valid");
    assert_eq!(
        t.add(ip("10.0.0.1"), None, None, None, F::SIGNAL),
        Err(PmError::DuplicateAddress(ip("10.0.0.1")))
    );
    // Another port is another endpoint.
    assert!(t
        .add(ip("10.0.0.1"), None, Some(9000), None, F::SIGNAL)
        .is_ok());
    assert_eq!(
        t.add(ip("0.0.0.0"), None, None, None, F::SIGNAL),
        Err(PmError::InvalidAddress(ip("0.0.0.0")))
    );
    assert_eq!(
        t.add(ip("ff02::1"), None, None, None, F::SIGNAL),
        Err(PmError::InvalidAddress(ip("ff02::1")))
    );
}

#[test]
fn at_most_8_endpoints() {
    let mut t = EndpointTable::new();
    for i in 0..MAX_ENDPOINTS {
        t.add(
            ip(&format!("10.0.0.{}", i + 1)),
            None,
            None,
            None,
            F::SUBFLOW,
        )
        .expect("fits");
    }
    let e = t
        .add(ip("10.0.1.1"), None, None, None, F::SUBFLOW)
        .unwrap_err();
    assert_eq!(e, PmError::TooManyEndpoints);
    assert_eq!(e.to_string(), "too many endpoints: at most 8");
}

#[test]
fn delete_change_flush() {
    let mut t = EndpointTable::new();
    t.add(
        ip("10.0.0.1"),
        Some(1),
        None,
        Some("tun1".into()),
        F::SUBFLOW,
    )
    .expect("valid");
    t.add(ip("10.0.0.2"), Some(2), Some(80), None, F::SIGNAL)
        .expect("valid");
    let e = t.change(1, FlagChange::Backup).expect("known");
    assert!(e.flags.backup() && e.flags.subflow());
    assert!(t.get(1).expect("kept").flags.backup());
    let e = t.change(1, FlagChange::Fullmesh).expect("allowed");
    assert!(e.flags.fullmesh());
    assert!(!t
        .change(1, FlagChange::NoBackup)
        .expect("known")
        .flags
        .backup());
    assert!(!t
        .change(1, FlagChange::NoFullmesh)
        .expect("known")
        .flags
        .fullmesh());
    // fullmesh on a signal endpoint is refused, the endpoint unchanged.
    assert_eq!(
        t.change(2, FlagChange::Fullmesh),
        Err(PmError::SignalAndFullmesh)
    );
    assert!(!t.get(2).expect("kept").flags.fullmesh());
    assert_eq!(t.change(9, FlagChange::Backup), Err(PmError::UnknownId(9)));
    assert_eq!(t.delete(9), Err(PmError::UnknownId(9)));
    assert_eq!(t.delete(2).expect("known").id, 2);
    assert_eq!(t.flush().len(), 1);
    assert!(t.endpoints().is_empty());
}

#[test]
fn display_like_ip_mptcp() {
    let mut t = EndpointTable::new();
    let e = t
        .add(
            ip("10.0.0.2"),
            Some(3),
            Some(8080),
            Some("eth1".into()),
            F::SIGNAL | F::BACKUP,
        )
        .expect("valid");
    assert_eq!(
        e.to_string(),
        "10.0.0.2 port 8080 id 3 signal backup dev eth1"
    );
    let e = t
        .add(ip("10.0.0.3"), Some(4), None, None, F::NONE)
        .expect("valid");
    assert_eq!(e.to_string(), "10.0.0.3 id 4");
}

#[test]
fn flag_bits_are_the_kernels() {
    assert_eq!(F::SIGNAL.bits(), 1);
    assert_eq!(F::SUBFLOW.bits(), 2);
    assert_eq!(F::BACKUP.bits(), 4);
    assert_eq!(F::FULLMESH.bits(), 8);
    assert_eq!(F::from_bits(0xff).bits(), 0x0f);
    assert_eq!((F::SUBFLOW | F::FULLMESH).to_string(), "subflow fullmesh");
}

#[test]
fn prefix_matching() {
    assert_eq!(common_prefix_len(ip("10.0.0.1"), ip("10.0.0.1")), Some(32));
    assert_eq!(common_prefix_len(ip("10.0.0.1"), ip("10.0.1.1")), Some(23));
    assert_eq!(common_prefix_len(ip("10.0.0.1"), ip("::1")), None);
    let cands = [
        ip("10.1.0.1"),
        ip("fd00::1"),
        ip("10.2.0.1"),
        ip("10.2.0.7"),
    ];
    assert_eq!(
        longest_prefix_match(&cands, ip("10.2.0.9")),
        Some(ip("10.2.0.1"))
    );
    assert_eq!(
        longest_prefix_match(&cands, ip("fd00::9")),
        Some(ip("fd00::1"))
    );
    assert_eq!(longest_prefix_match(&cands[..1], ip("fd00::9")), None);
}
