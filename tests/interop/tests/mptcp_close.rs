//! The end of small MPTCP transfers against the Linux kernel, in both roles: 0, 1, 500,
//! 1448 (one segment), 1449 and 3000 bytes. The kernel application must see every byte and
//! then EOF (braid's DATA_FIN arrived), braid must exit 0, and afterwards the kernel holds no
//! MPTCP connection any more: braid did not leave before its DATA_FIN was acknowledged and
//! the exchange of DATA_FINs completed (RFC 8684 §3.3.3). Before the fix, braid put the data
//! and a subflow FIN on the MP_CAPABLE third ACK and its DATA_FIN after that FIN; Linux
//! closed the subflow without taking the DATA_FIN, and its connection stayed ESTABLISHED
//! for good while braid exited 0.
//!
//! Layout: namespace `braid-<test>-<pid>-<n>`, TUN `braid0`, kernel 10.0.0.1, braid 10.0.0.2.

use std::time::{Duration, Instant};

use braid_interop::{assert_received, assert_sent, require_root, Cmd, Netns};

const KPEER: &str = env!("CARGO_BIN_EXE_kpeer");
const SIZES: [u64; 6] = [0, 1, 500, 1448, 1449, 3000];
/// A hang guard for each process (a small transfer takes milliseconds).
const LIMIT: Duration = Duration::from_secs(20);

fn kpeer(line: &str) -> Cmd {
    Cmd::new(KPEER, line)
}

/// MPTCP sockets (`ss -M`) of the kernel in the namespace that involve `port`.
fn kernel_mptcp_sockets(ns: &Netns, port: u16) -> Vec<String> {
    let out = ns.run("ss", &["-Mna"]).expect("ss -M");
    let needle = format!(":{port} ");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(&needle) || l.ends_with(&format!(":{port}")))
        .map(str::to_owned)
        .collect()
}

/// The kernel's MPTCP connection on `port` is gone (a listener aside) within a second.
#[track_caller]
fn assert_kernel_closed(ns: &Netns, port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let left: Vec<String> = kernel_mptcp_sockets(ns, port)
            .into_iter()
            .filter(|l| !l.contains("LISTEN"))
            .collect();
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the kernel still holds its MPTCP connection: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[track_caller]
fn finished(p: braid_interop::Proc, what: &str) -> serde_json::Value {
    let f = p
        .wait_within(LIMIT)
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(f.success, "{what} failed: {}", f.stderr);
    f.json()
}

#[test]
fn braid_client_small_transfers_end_cleanly_at_a_kernel_server() {
    if !require_root("braid_client_small_transfers_end_cleanly_at_a_kernel_server") {
        return;
    }
    let ns = Netns::with_tun("close-c").expect("namespace with a TUN");
    for (i, n) in SIZES.into_iter().enumerate() {
        let port = 5300 + i as u16;
        let what = format!("braid client, {n} bytes");
        let server = ns
            .start_ready(
                &kpeer(&format!(
                    "listen --bind 10.0.0.1 --port {port} --proto mptcp --sink --json"
                )),
                "listening",
            )
            .expect("kernel server");
        let client = ns
            .start(&Cmd::braid(&format!(
                "connect 10.0.0.1:{port} --path braid0=10.0.0.2 --send {n} --json"
            )))
            .expect("braid client");
        let braid = finished(client, &what);
        // The kernel application read every byte and then EOF: it exits on its own.
        let kernel = finished(server, &format!("{what}: kernel server (EOF)"));
        assert_sent(&braid, n);
        assert_eq!(braid["mptcp"], true, "{what}: {braid}");
        assert_received(&kernel, n);
        assert_kernel_closed(&ns, port, &what);
    }
}

#[test]
fn braid_server_small_transfers_end_cleanly_at_a_kernel_client() {
    if !require_root("braid_server_small_transfers_end_cleanly_at_a_kernel_client") {
        return;
    }
    let ns = Netns::with_tun("close-s").expect("namespace with a TUN");
    for (i, n) in SIZES.into_iter().enumerate() {
        let port = 5400 + i as u16;
        let what = format!("braid server, {n} bytes echoed");
        // braid echoes what the kernel sends, then closes after the kernel's DATA_FIN: its
        // own data and DATA_FIN go back, and the kernel reads until EOF.
        let server = ns
            .start_ready(
                &Cmd::braid(&format!(
                    "listen --port {port} --path braid0=10.0.0.2 --echo --once --json"
                )),
                "listening",
            )
            .expect("braid server");
        let client = ns
            .start(&kpeer(&format!(
                "connect 10.0.0.2:{port} --proto mptcp --send {n} --json"
            )))
            .expect("kernel client");
        let kernel = finished(client, &format!("{what}: kernel client (EOF)"));
        let braid = finished(server, &what);
        assert_sent(&kernel, n);
        assert_received(&kernel, n);
        assert_received(&braid, n);
        assert_eq!(braid["mptcp"], true, "{what}: {braid}");
        assert_kernel_closed(&ns, port, &what);
    }
}
