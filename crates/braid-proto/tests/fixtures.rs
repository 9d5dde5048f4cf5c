//! Real Linux MPTCP traffic, decoded by braid and checked against tshark.
//!
//! The pcaps in `tests/fixtures/` were captured from the Linux kernel's MPTCP between two
//! network namespaces (`tests/fixtures/capture.sh`; what each one shows is in
//! `tests/fixtures/README.md`). For every one of them this test
//!
//! 1. parses every frame with `wire::parse_tcp_packet` (IP and TCP checksums verified) and every
//!    MPTCP option (TCP option kind 30) on its own with `MptcpOption::parse`, and checks that
//!    both agree, and that emitting each option gives back its exact bytes on the wire;
//! 2. compares every option field by field with tshark's decoding: live when tshark is
//!    installed (required when `CI=true`; `$TSHARK` names another binary), else the stored
//!    `<name>.tshark.tsv` written by `tests/fixtures/decode.sh`. When the live tshark is the
//!    one that wrote the stored file, both must agree (a stale file fails);
//! 3. checks the crypto on the captured values with `braid_proto::crypto`: keys echoed
//!    unchanged, tokens and IDSNs (also against tshark's own `expected_token` /
//!    `expected_idsn`), the token of every MP_JOIN SYN, the HMACs of every MP_JOIN SYN/ACK and
//!    third ACK, the HMAC of every ADD_ADDR, the key of MP_FASTCLOSE, and every DSS checksum
//!    over its payload.

#[path = "common/pcap.rs"]
mod pcap;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;

use braid_proto::crypto::{
    add_addr_hmac, join_ack_hmac, join_synack_hmac, key_idsn, key_token, verify_dss_checksum,
};
use braid_proto::wire::mptcp::{Dss, MpCapable, MptcpOption, KIND};
use braid_proto::wire::{parse_tcp_packet, TcpPacket};

const FIXTURES: &[&str] = &[
    "basic",
    "join",
    "addaddr",
    "checksum",
    "fastclose",
    "corrupt",
];

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

// ---------------------------------------------------------------------------------------------
// braid's view of a pcap

/// One TCP segment of a fixture as braid decodes it.
struct Segment {
    frame: usize,
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
    syn: bool,
    payload: Vec<u8>,
    /// Every MPTCP option with its length on the wire, in order.
    options: Vec<(MptcpOption, usize)>,
}

/// The TCP segment inside an IP packet (no IPv6 extension headers in the fixtures).
fn tcp_bytes(ip: &[u8], frame: usize) -> &[u8] {
    match ip.first().map(|b| b >> 4) {
        Some(4) => {
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
            &ip[ihl..total]
        }
        Some(6) => {
            assert_eq!(ip[6], 6, "frame {frame}: IPv6 next header is not TCP");
            let len = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
            &ip[40..40 + len]
        }
        v => panic!("frame {frame}: IP version {v:?}"),
    }
}

/// Every MPTCP option of a TCP options area with its bytes, parsed one by one with
/// `MptcpOption::parse`.
fn mptcp_options(options: &[u8], frame: usize) -> Vec<(MptcpOption, Vec<u8>)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < options.len() {
        match options[i] {
            0 => break,
            1 => i += 1,
            kind => {
                let len = usize::from(options[i + 1]);
                assert!(len >= 2, "frame {frame}: option length {len}");
                if kind == KIND {
                    let opt = MptcpOption::parse(&options[i..i + len])
                        .unwrap_or_else(|e| panic!("frame {frame}: MPTCP option: {e}"));
                    out.push((opt, options[i..i + len].to_vec()));
                }
                i += len;
            }
        }
    }
    out
}

fn load(name: &str) -> Vec<Segment> {
    let path = fixtures_dir().join(format!("{name}.pcap"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let file = pcap::parse(&bytes).unwrap_or_else(|e| panic!("{name}.pcap: {e}"));
    assert!(!file.records.is_empty(), "{name}.pcap is empty");
    let mut segments = Vec::new();
    for rec in &file.records {
        let frame = rec.frame;
        assert!(
            rec.is_complete(),
            "{name}.pcap frame {frame} was cut by the snapshot length"
        );
        let ip = pcap::ip_packet(file.linktype, &rec.data)
            .unwrap_or_else(|e| panic!("{name}.pcap frame {frame}: {e}"))
            .unwrap_or_else(|| panic!("{name}.pcap frame {frame}: not IP"));
        let seg = parse_tcp_packet(ip)
            .unwrap_or_else(|e| panic!("{name}.pcap frame {frame}: braid cannot parse it: {e}"));
        let tcp = TcpPacket::new_checked(tcp_bytes(ip, frame))
            .unwrap_or_else(|e| panic!("{name}.pcap frame {frame}: {e}"));
        let options = mptcp_options(tcp.options(), frame);
        // The whole-packet parser and the option parser agree.
        let whole: Vec<&MptcpOption> = seg.tcp.options.mptcp.iter().collect();
        let alone: Vec<&MptcpOption> = options.iter().map(|(o, _)| o).collect();
        assert_eq!(whole, alone, "{name}.pcap frame {frame}");
        for (opt, wire) in &options {
            assert_eq!(
                opt.buffer_len(),
                wire.len(),
                "{name}.pcap frame {frame}: buffer_len of {opt:?}"
            );
            // Re-emitting gives the bytes on the wire back.
            let mut buf = vec![0u8; wire.len()];
            opt.emit(&mut buf);
            assert_eq!(&buf, wire, "{name}.pcap frame {frame}: emit of {opt:?}");
        }
        segments.push(Segment {
            frame,
            src: SocketAddr::new(seg.ip.src_addr(), seg.tcp.src_port),
            dst: SocketAddr::new(seg.ip.dst_addr(), seg.tcp.dst_port),
            seq: seg.tcp.seq,
            syn: seg.tcp.flags.syn(),
            payload: seg.payload.to_vec(),
            options: options.into_iter().map(|(o, w)| (o, w.len())).collect(),
        });
    }
    segments
}

// ---------------------------------------------------------------------------------------------
// tshark's view

/// One line of a `.tshark.tsv`: one MPTCP option.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TsharkOption {
    frame: usize,
    subtype: u8,
    len: usize,
    fields: Vec<(String, String)>,
}

fn parse_tsv(text: &str, what: &str) -> Vec<TsharkOption> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        let bad = || format!("{what} line {}: {line:?}", n + 1);
        assert!(cols.len() >= 3, "{}", bad());
        let frame = cols[0].parse().unwrap_or_else(|_| panic!("{}", bad()));
        let subtype = cols[1].parse().unwrap_or_else(|_| panic!("{}", bad()));
        let len = cols[2]
            .strip_prefix("len=")
            .and_then(|l| l.parse().ok())
            .unwrap_or_else(|| panic!("{}", bad()));
        let fields = cols[3..]
            .iter()
            .map(|c| {
                let (k, v) = c.split_once('=').unwrap_or_else(|| panic!("{}", bad()));
                (k.to_string(), v.to_string())
            })
            .collect();
        out.push(TsharkOption {
            frame,
            subtype,
            len,
            fields,
        });
    }
    out
}

/// The tshark to run: `$TSHARK` when set (decode.sh honours it too), else `tshark`.
fn tshark_command() -> String {
    std::env::var("TSHARK").unwrap_or_else(|_| "tshark".to_string())
}

fn tshark_installed() -> bool {
    Command::new(tshark_command())
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// tshark's decoding of a fixture: live when tshark is installed, else the stored one.
fn tshark_decoding(name: &str) -> Vec<TsharkOption> {
    let dir = fixtures_dir();
    let tsv_path = dir.join(format!("{name}.tshark.tsv"));
    let stored_text = std::fs::read_to_string(&tsv_path)
        .unwrap_or_else(|e| panic!("{}: {e}", tsv_path.display()));
    let stored = parse_tsv(&stored_text, &format!("{name}.tshark.tsv"));
    if !tshark_installed() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "tshark is required when CI=true (apt-get install tshark)"
        );
        eprintln!("{name}: tshark is not installed; using the stored {name}.tshark.tsv");
        return stored;
    }
    let out = Command::new("bash")
        .arg(dir.join("decode.sh"))
        .arg("--stdout")
        .arg(dir.join(format!("{name}.pcap")))
        .env("TSHARK", tshark_command())
        .output()
        .unwrap_or_else(|e| panic!("running decode.sh: {e}"));
    assert!(
        out.status.success(),
        "decode.sh failed on {name}.pcap: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let live_text = String::from_utf8(out.stdout).unwrap_or_else(|e| panic!("decode.sh: {e}"));
    let live = parse_tsv(&live_text, &format!("live tshark decoding of {name}.pcap"));
    // The same tshark must give the stored decoding: a stale .tsv is an error.
    if live_text.lines().next() == stored_text.lines().next() {
        for (l, s) in live.iter().zip(&stored) {
            assert_eq!(
                l, s,
                "{name}.tshark.tsv is stale (live tshark left, stored right): \
                 run tests/fixtures/decode.sh and commit the result"
            );
        }
        assert_eq!(
            live.len(),
            stored.len(),
            "{name}.tshark.tsv is stale: option count"
        );
    }
    live
}

// ---------------------------------------------------------------------------------------------
// braid's decoding in tshark's terms

fn bit(flags: u8, mask: u8) -> String {
    u8::from(flags & mask != 0).to_string()
}

/// The fields tshark 4.0 shows for an option, computed from braid's decoding, with tshark's
/// names (without "tcp.options.mptcp.") and rendering.
fn tshark_fields(opt: &MptcpOption) -> Vec<(String, String)> {
    let mut f: Vec<(String, String)> = Vec::new();
    let mut put = |k: &str, v: String| f.push((k.to_string(), v));
    match opt {
        MptcpOption::MpCapable(c) => {
            put("version", c.version.to_string());
            put("flags", format!("0x{:02x}", c.flags));
            put("checksumreq.flags", bit(c.flags, MpCapable::FLAG_CHECKSUM));
            put(
                "extensibility.flag",
                bit(c.flags, MpCapable::FLAG_EXTENSIBILITY),
            );
            put(
                "nomoresubflows.flag",
                bit(c.flags, MpCapable::FLAG_NO_MORE_SUBFLOWS),
            );
            put("sha256.flag", bit(c.flags, MpCapable::FLAG_HMAC_SHA256));
            put("reserved.flag", format!("0x{:02x}", (c.flags & 0x1e) >> 1));
            if let Some(k) = c.sender_key {
                put("sendkey", k.to_string());
                // tshark derives these with its own SHA-256: braid's crypto must agree.
                put("expected_token", key_token(k).to_string());
                put("expected_idsn", key_idsn(k).to_string());
            }
            if let Some(k) = c.receiver_key {
                put("recvkey", k.to_string());
            }
            if let Some(l) = c.data_len {
                put("datalvllen", l.to_string());
            }
            if let Some(s) = c.checksum {
                put("checksum", format!("0x{s:04x}"));
            }
        }
        // tshark's "flags" of MP_JOIN, MP_PRIO and MP_TCPRST is the whole byte that holds
        // the subtype nibble.
        MptcpOption::MpJoinSyn {
            backup,
            addr_id,
            token,
            nonce,
        } => {
            put("flags", format!("0x{:02x}", 0x10 | u8::from(*backup)));
            put("backup.flag", u8::from(*backup).to_string());
            put("addrid", addr_id.to_string());
            put("recvtok", token.to_string());
            put("sendrand", nonce.to_string());
        }
        MptcpOption::MpJoinSynAck {
            backup,
            addr_id,
            hmac,
            nonce,
        } => {
            put("flags", format!("0x{:02x}", 0x10 | u8::from(*backup)));
            put("backup.flag", u8::from(*backup).to_string());
            put("addrid", addr_id.to_string());
            put("sendtrunchmac", hmac.to_string());
            put("sendrand", nonce.to_string());
        }
        MptcpOption::MpJoinAck { hmac } => {
            put("reserved", "0x0000".to_string());
            let hex: Vec<String> = hmac.iter().map(|b| format!("{b:02x}")).collect();
            put("sendhmac", hex.join(":"));
        }
        MptcpOption::Dss(d) => {
            let flags = dss_flags(d);
            put("flags", format!("0x{flags:02x}"));
            put("datafin.flag", u8::from(d.data_fin).to_string());
            put("dseqn8.flag", bit(flags, 0x08));
            put("dseqnpresent.flag", bit(flags, 0x04));
            put("dataack8.flag", bit(flags, 0x02));
            put("dataackpresent.flag", bit(flags, 0x01));
            if let Some(a) = d.data_ack {
                put("rawdataack", a.to_string());
            }
            if let Some(m) = d.mapping {
                put("rawdataseqno", m.dsn.to_string());
                put("subflowseqno", m.subflow_seq.to_string());
                put("datalvllen", m.data_len.to_string());
                if let Some(s) = m.checksum {
                    put("checksum", format!("0x{s:04x}"));
                }
            }
        }
        MptcpOption::AddAddr {
            echo,
            addr_id,
            addr,
            port,
            hmac,
        } => {
            put("echo", u8::from(*echo).to_string());
            put("addrid", addr_id.to_string());
            match addr {
                IpAddr::V4(a) => put("ipv4", a.to_string()),
                IpAddr::V6(a) => put("ipv6", a.to_string()),
            }
            if let Some(p) = port {
                put("port", p.to_string());
            }
            if let Some(h) = hmac {
                put("addaddrtrunchmac", h.to_string());
            }
        }
        MptcpOption::RemoveAddr { addr_ids } => {
            for id in addr_ids {
                put("addrid", id.to_string());
            }
        }
        MptcpOption::MpPrio { backup, addr_id } => {
            put("flags", format!("0x{:02x}", 0x50 | u8::from(*backup)));
            put("backup.flag", u8::from(*backup).to_string());
            if let Some(id) = addr_id {
                put("addrid", id.to_string());
            }
        }
        MptcpOption::MpFail { dsn } => {
            put("reserved", "0x0000".to_string());
            put("rawdataseqno", dsn.to_string());
        }
        MptcpOption::MpFastclose { receiver_key } => {
            put("reserved", "0x0000".to_string());
            put("recvkey", receiver_key.to_string());
        }
        MptcpOption::MpTcpRst { flags, reason } => {
            put("flags", format!("0x{:02x}", 0x80 | (flags & 0x0f)));
            put("flag_U.flag", bit(*flags, 0x8));
            put("flag_V.flag", bit(*flags, 0x4));
            put("flag_W.flag", bit(*flags, 0x2));
            put("flag_T.flag", bit(*flags, 0x1));
            put("rst_reason", format!("0x{reason:02x}"));
        }
        // Linux sends no other subtype.
        other => panic!("no tshark field mapping for {other:?}"),
    }
    f
}

/// The DSS flag byte braid's decoding stands for.
fn dss_flags(d: &Dss) -> u8 {
    let mut flags = 0;
    if d.data_ack.is_some() {
        flags |= 0x01;
        if d.data_ack_64 {
            flags |= 0x02;
        }
    }
    if let Some(m) = d.mapping {
        flags |= 0x04;
        if m.dsn_64 {
            flags |= 0x08;
        }
    }
    if d.data_fin {
        flags |= 0x10;
    }
    flags
}

fn subtype_of(opt: &MptcpOption) -> u8 {
    match opt {
        MptcpOption::MpCapable(_) => 0,
        MptcpOption::MpJoinSyn { .. }
        | MptcpOption::MpJoinSynAck { .. }
        | MptcpOption::MpJoinAck { .. } => 1,
        MptcpOption::Dss(_) => 2,
        MptcpOption::AddAddr { .. } => 3,
        MptcpOption::RemoveAddr { .. } => 4,
        MptcpOption::MpPrio { .. } => 5,
        MptcpOption::MpFail { .. } => 6,
        MptcpOption::MpFastclose { .. } => 7,
        MptcpOption::MpTcpRst { .. } => 8,
        MptcpOption::Unknown { subtype, .. } => *subtype,
        other => panic!("unexpected option {other:?}"),
    }
}

/// Compare braid's decoding of every option of a fixture with tshark's. Returns how many
/// DSS checksums tshark did not show (tshark 4.0 omits them), which the crypto checks cover.
fn compare_with_tshark(name: &str, segments: &[Segment], tshark: &[TsharkOption]) -> usize {
    let braid: Vec<(usize, &MptcpOption, usize)> = segments
        .iter()
        .flat_map(|s| s.options.iter().map(move |(o, l)| (s.frame, o, *l)))
        .collect();
    let mut hidden_checksums = 0;
    for (i, t) in tshark.iter().enumerate() {
        let Some(&(frame, opt, len)) = braid.get(i) else {
            panic!(
                "{name}: tshark has option {i} (frame {}) that braid did not find",
                t.frame
            )
        };
        let at = format!("{name}.pcap frame {frame}, option {opt:?}");
        assert_eq!(
            frame, t.frame,
            "{at}: option {i} is in another frame for tshark"
        );
        assert_eq!(subtype_of(opt), t.subtype, "{at}: subtype");
        assert_eq!(len, t.len, "{at}: option length");
        let mut ours = tshark_fields(opt);
        if t.subtype == 2 && !t.fields.iter().any(|(k, _)| k == "checksum") {
            let before = ours.len();
            ours.retain(|(k, _)| k != "checksum");
            hidden_checksums += before - ours.len();
        }
        let mut theirs = t.fields.clone();
        ours.sort();
        theirs.sort();
        assert_eq!(ours, theirs, "{at}: fields (braid left, tshark right)");
    }
    assert_eq!(
        braid.len(),
        tshark.len(),
        "{name}: braid found {} MPTCP options, tshark {}",
        braid.len(),
        tshark.len()
    );
    hidden_checksums
}

// ---------------------------------------------------------------------------------------------
// Crypto on the captured values

#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Checked {
    options: usize,
    key_echoes: usize,
    join_tokens: usize,
    join_synack_hmacs: usize,
    join_ack_hmacs: usize,
    add_addr_hmacs: usize,
    add_addr_echoes: usize,
    remove_addrs: usize,
    mp_prios: usize,
    fastclose_keys: usize,
    tcprsts: usize,
    dss_checksums: usize,
    /// DSNs of the mappings whose DSS checksum does not verify over the captured payload.
    bad_dss_checksums: Vec<u64>,
    /// DSNs carried by MP_FAIL, in order.
    mp_fails: Vec<u64>,
    infinite_mappings: usize,
    mpc_checksums: usize,
    data_fins: usize,
    hidden_checksums: usize,
}

/// The keys of the two ends of one subflow: the end that sent its SYN and the other.
#[derive(Debug, Clone, Copy)]
struct SubflowKeys {
    initiator: SocketAddr,
    initiator_key: u64,
    responder_key: u64,
}

impl SubflowKeys {
    /// (key of `src`, key of the other end).
    fn sender_receiver(&self, src: SocketAddr) -> (u64, u64) {
        if src == self.initiator {
            (self.initiator_key, self.responder_key)
        } else {
            (self.responder_key, self.initiator_key)
        }
    }
}

/// An MP_JOIN in progress, keyed by (initiator, responder).
#[derive(Debug, Clone, Copy)]
struct Join {
    initiator_key: u64,
    responder_key: u64,
    initiator_nonce: u32,
    responder_nonce: Option<u32>,
}

fn check_crypto(name: &str, segments: &[Segment]) -> Checked {
    let mut c = Checked::default();
    // Every MP_CAPABLE key pair (initiator key, responder key) seen.
    let mut connections: Vec<(u64, u64)> = Vec::new();
    let mut synack_key: HashMap<(SocketAddr, SocketAddr), u64> = HashMap::new();
    let mut subflows: HashMap<(SocketAddr, SocketAddr), SubflowKeys> = HashMap::new();
    let mut joins: HashMap<(SocketAddr, SocketAddr), Join> = HashMap::new();
    let mut isn: HashMap<(SocketAddr, SocketAddr), u32> = HashMap::new();

    let keys_of = |subflows: &HashMap<(SocketAddr, SocketAddr), SubflowKeys>, s: &Segment| {
        subflows
            .get(&(s.src, s.dst))
            .or_else(|| subflows.get(&(s.dst, s.src)))
            .copied()
    };

    for s in segments {
        let at = format!("{name}.pcap frame {}", s.frame);
        if s.syn {
            isn.insert((s.src, s.dst), s.seq);
        }
        for (opt, _) in &s.options {
            c.options += 1;
            match opt {
                MptcpOption::MpCapable(m) => match (m.sender_key, m.receiver_key) {
                    (Some(k), None) => {
                        synack_key.insert((s.dst, s.src), k);
                    }
                    (Some(a), Some(b)) => {
                        //= rfc8684#3.1
                        //= the third ACK echoes the responder's key unchanged.
                        let echoed = synack_key.get(&(s.src, s.dst));
                        assert_eq!(
                            echoed,
                            Some(&b),
                            "{at}: receiver key is not the SYN/ACK's key"
                        );
                        c.key_echoes += 1;
                        if !connections.contains(&(a, b)) {
                            connections.push((a, b));
                        }
                        subflows.insert(
                            (s.src, s.dst),
                            SubflowKeys {
                                initiator: s.src,
                                initiator_key: a,
                                responder_key: b,
                            },
                        );
                        if let (Some(len), Some(sum)) = (m.data_len, m.checksum) {
                            //= rfc8684#3.1
                            //= data on the third ACK starts at DSN = IDSN + 1, subflow sequence 1.
                            let dsn = key_idsn(a).wrapping_add(1);
                            assert_eq!(
                                usize::from(len),
                                s.payload.len(),
                                "{at}: MP_CAPABLE data length"
                            );
                            assert!(
                                verify_dss_checksum(dsn, 1, len, &s.payload, sum),
                                "{at}: MP_CAPABLE DSS checksum {sum:#06x} does not verify"
                            );
                            c.mpc_checksums += 1;
                        }
                    }
                    _ => {}
                },
                MptcpOption::MpJoinSyn { token, nonce, .. } => {
                    //= rfc8684#3.2
                    //= the MP_JOIN SYN carries the token of the receiver's key.
                    let (initiator_key, responder_key) = connections
                        .iter()
                        .find_map(|&(a, b)| {
                            if key_token(b) == *token {
                                Some((a, b))
                            } else if key_token(a) == *token {
                                Some((b, a))
                            } else {
                                None
                            }
                        })
                        .unwrap_or_else(|| panic!("{at}: token {token} is no known key's token"));
                    c.join_tokens += 1;
                    joins.insert(
                        (s.src, s.dst),
                        Join {
                            initiator_key,
                            responder_key,
                            initiator_nonce: *nonce,
                            responder_nonce: None,
                        },
                    );
                }
                MptcpOption::MpJoinSynAck { hmac, nonce, .. } => {
                    let j = joins
                        .get_mut(&(s.dst, s.src))
                        .unwrap_or_else(|| panic!("{at}: MP_JOIN SYN/ACK without SYN"));
                    let want = join_synack_hmac(
                        j.initiator_key,
                        j.responder_key,
                        j.initiator_nonce,
                        *nonce,
                    );
                    assert_eq!(*hmac, want, "{at}: MP_JOIN SYN/ACK HMAC");
                    j.responder_nonce = Some(*nonce);
                    c.join_synack_hmacs += 1;
                }
                MptcpOption::MpJoinAck { hmac } => {
                    let j = joins
                        .get(&(s.src, s.dst))
                        .copied()
                        .unwrap_or_else(|| panic!("{at}: MP_JOIN ACK without SYN"));
                    let rn = j
                        .responder_nonce
                        .unwrap_or_else(|| panic!("{at}: MP_JOIN ACK without SYN/ACK"));
                    let want =
                        join_ack_hmac(j.initiator_key, j.responder_key, j.initiator_nonce, rn);
                    assert_eq!(*hmac, want, "{at}: MP_JOIN ACK HMAC");
                    subflows.insert(
                        (s.src, s.dst),
                        SubflowKeys {
                            initiator: s.src,
                            initiator_key: j.initiator_key,
                            responder_key: j.responder_key,
                        },
                    );
                    c.join_ack_hmacs += 1;
                }
                MptcpOption::AddAddr {
                    echo,
                    addr_id,
                    addr,
                    port,
                    hmac,
                } => {
                    if *echo {
                        assert_eq!(*hmac, None, "{at}: an ADD_ADDR echo carries no HMAC");
                        c.add_addr_echoes += 1;
                        continue;
                    }
                    let keys = keys_of(&subflows, s)
                        .unwrap_or_else(|| panic!("{at}: ADD_ADDR on an unknown subflow"));
                    let (sender, receiver) = keys.sender_receiver(s.src);
                    let hmac = hmac.unwrap_or_else(|| panic!("{at}: v1 ADD_ADDR without HMAC"));
                    assert_eq!(
                        hmac,
                        add_addr_hmac(sender, receiver, *addr_id, *addr, *port),
                        "{at}: ADD_ADDR HMAC"
                    );
                    c.add_addr_hmacs += 1;
                }
                MptcpOption::RemoveAddr { addr_ids } => {
                    assert!(!addr_ids.is_empty(), "{at}: empty REMOVE_ADDR");
                    c.remove_addrs += 1;
                }
                MptcpOption::MpPrio { .. } => c.mp_prios += 1,
                MptcpOption::MpFastclose { receiver_key } => {
                    //= rfc8684#3.5
                    //= MP_FASTCLOSE carries the key of the host it is sent to.
                    let keys = keys_of(&subflows, s)
                        .unwrap_or_else(|| panic!("{at}: MP_FASTCLOSE on an unknown subflow"));
                    let (_, receiver) = keys.sender_receiver(s.src);
                    assert_eq!(*receiver_key, receiver, "{at}: MP_FASTCLOSE key");
                    c.fastclose_keys += 1;
                }
                MptcpOption::MpTcpRst { .. } => c.tcprsts += 1,
                MptcpOption::MpFail { dsn } => c.mp_fails.push(*dsn),
                MptcpOption::Dss(d) => {
                    let Some(m) = d.mapping else { continue };
                    if d.data_fin {
                        c.data_fins += 1;
                    }
                    let Some(sum) = m.checksum else { continue };
                    assert!(m.dsn_64, "{at}: fixtures carry 64-bit DSNs");
                    let fin = u16::from(d.data_fin);
                    if m.data_len == 0 {
                        //= rfc8684#3.7
                        //= an infinite mapping (data-level length 0) maps the rest of the
                        //  subflow; Linux sends it with a zero checksum.
                        assert_eq!(sum, 0, "{at}: infinite mapping checksum");
                        c.infinite_mappings += 1;
                        continue;
                    }
                    if s.payload.is_empty() && d.data_fin && m.data_len == 1 {
                        //= rfc8684#3.3.1
                        //= a DATA_FIN alone has a mapping of length 1 with subflow sequence 0.
                        assert_eq!(m.subflow_seq, 0, "{at}: DATA_FIN-only mapping");
                    } else {
                        let base = isn
                            .get(&(s.src, s.dst))
                            .unwrap_or_else(|| panic!("{at}: data before the SYN"));
                        let relative = s.seq.wrapping_sub(*base);
                        assert_eq!(m.subflow_seq, relative, "{at}: relative subflow sequence");
                        assert_eq!(
                            usize::from(m.data_len - fin),
                            s.payload.len(),
                            "{at}: the fixture's mappings each cover one segment"
                        );
                    }
                    if !verify_dss_checksum(m.dsn, m.subflow_seq, m.data_len, &s.payload, sum) {
                        c.bad_dss_checksums.push(m.dsn);
                    }
                    c.dss_checksums += 1;
                }
                _ => {}
            }
        }
    }
    c
}

fn check(name: &str) -> Checked {
    let segments = load(name);
    let tshark = tshark_decoding(name);
    let hidden = compare_with_tshark(name, &segments, &tshark);
    let mut c = check_crypto(name, &segments);
    c.hidden_checksums = hidden;
    eprintln!("{name}: {c:?}");
    if name != "corrupt" {
        assert_eq!(
            c.bad_dss_checksums,
            Vec::<u64>::new(),
            "{name}: DSS checksums that fail"
        );
        assert_eq!(c.mp_fails, Vec::<u64>::new(), "{name}: MP_FAIL");
        assert_eq!(c.infinite_mappings, 0, "{name}: infinite mappings");
    }
    c
}

#[test]
fn every_fixture_is_listed() {
    let mut on_disk: Vec<String> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            Some(name.strip_suffix(".pcap")?.to_string())
        })
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = FIXTURES.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed);
}

#[test]
fn basic() {
    let c = check("basic");
    assert_eq!(
        c.key_echoes, 2,
        "third ACK and first data both echo the key"
    );
    assert!(c.data_fins >= 2, "DATA_FIN in both directions: {c:?}");
    assert_eq!(c.join_tokens + c.add_addr_hmacs + c.dss_checksums, 0);
}

#[test]
fn join() {
    let c = check("join");
    // One join over IPv4 and one over IPv6, each fully verified.
    assert_eq!(c.join_tokens, 2);
    assert_eq!(c.join_synack_hmacs, 2);
    assert_eq!(c.join_ack_hmacs, 2);
}

#[test]
fn addaddr() {
    let c = check("addaddr");
    // 10.99.2.3 port 5099, 10.99.2.2, fd99:2::2: each announced with an HMAC, echoed, joined.
    assert_eq!(c.add_addr_hmacs, 3);
    assert_eq!(c.add_addr_echoes, 3);
    assert_eq!(c.join_tokens, 3);
    assert_eq!(c.join_synack_hmacs, 3);
    assert_eq!(c.join_ack_hmacs, 3);
    assert_eq!(c.mp_prios, 1);
    assert_eq!(c.remove_addrs, 3);
}

#[test]
fn checksum() {
    let c = check("checksum");
    assert_eq!(
        c.mpc_checksums, 1,
        "the first data rides on MP_CAPABLE with a checksum"
    );
    // Five data segments and two DATA_FINs carry DSS mappings with checksums.
    assert!(c.dss_checksums >= 7, "{c:?}");
    // tshark either shows every DSS checksum (compared above) or none (tshark 4.0).
    assert!(
        c.hidden_checksums == 0 || c.hidden_checksums == c.dss_checksums,
        "{c:?}"
    );
}

#[test]
fn fastclose() {
    let c = check("fastclose");
    assert_eq!(c.fastclose_keys, 1);
    assert_eq!(c.tcprsts, 1);
}

#[test]
fn corrupt() {
    let c = check("corrupt");
    // One payload was changed in flight with the TCP checksum kept valid (parse_tcp_packet
    // verified it): its DSS checksum does not verify, all the others do.
    assert_eq!(c.bad_dss_checksums.len(), 1, "{c:?}");
    assert!(c.dss_checksums >= 3, "{c:?}");
    assert_eq!(c.mpc_checksums, 1);
    //= rfc8684#3.7
    //= the receiver of the bad checksum sends MP_FAIL with the DSN of the failed mapping; the
    //  other end answers with MP_FAIL and falls back with an infinite mapping.
    assert_eq!(c.mp_fails.len(), 2, "{c:?}");
    assert_eq!(
        c.mp_fails[0], c.bad_dss_checksums[0],
        "MP_FAIL names the corrupted mapping"
    );
    assert_eq!(c.infinite_mappings, 1);
}
