//! The harness on its own, without braid's TCP: namespaces come and go, a TUN device inside
//! receives the kernel's packets through braid's TUN driver, and device errors are clear.

use braid_interop::{assert_received, require_root, Cmd, Netns};

const KPEER: &str = env!("CARGO_BIN_EXE_kpeer");

fn ns_exists(name: &str) -> bool {
    std::path::Path::new("/var/run/netns").join(name).exists()
}

#[test]
fn namespace_is_deleted_on_drop() {
    if !require_root("namespace_is_deleted_on_drop") {
        return;
    }
    let ns = Netns::new("harness").unwrap();
    let name = ns.name().to_owned();
    assert!(ns_exists(&name));
    let out = ns.run("ip", &["-o", "link", "show", "lo"]).unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("UP"));
    drop(ns);
    assert!(!ns_exists(&name));
}

#[test]
fn kernel_syn_arrives_on_the_tun() {
    if !require_root("kernel_syn_arrives_on_the_tun") {
        return;
    }
    let ns = Netns::new("ping").unwrap();
    ns.add_tun("braid0", "10.0.0.1/24").unwrap();
    let mut probe = ns
        .spawn(env!("CARGO_BIN_EXE_tunprobe"), &["braid0", "1"])
        .unwrap();
    let ready = probe.wait_for_stderr("ready").unwrap();
    // Attached to the persistent device, not created; its transmit queue raised to braid's
    // minimum (`ip tuntap add` leaves the default 500).
    assert!(ready.contains("created=false"), "{ready}");
    assert!(
        ready.contains(&format!("txqueuelen={}", braid::tun::MIN_TXQUEUELEN)),
        "{ready}"
    );
    // A second process cannot attach while the first holds it: a clear error.
    let out = ns
        .command(env!("CARGO_BIN_EXE_tunprobe"))
        .arg("braid0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("braid0 is busy"), "{err}");
    // Nobody answers: the kernel's connect hangs, but its SYN must reach the TUN.
    let client = ns.spawn(KPEER, &["connect", "10.0.0.2:9"]).unwrap();
    let done = probe.wait().unwrap();
    drop(client);
    assert!(done.success, "{}", done.stderr);
    assert!(
        done.stdout.contains("v4 proto=6 src=10.0.0.1 dst=10.0.0.2"),
        "{}",
        done.stdout
    );
}

#[test]
fn missing_device_is_created_and_a_tap_is_refused() {
    if !require_root("missing_device_is_created_and_a_tap_is_refused") {
        return;
    }
    let ns = Netns::new("create").unwrap();
    // Missing: created (with CAP_NET_ADMIN), gone again when the probe exits.
    let mut probe = ns
        .spawn(env!("CARGO_BIN_EXE_tunprobe"), &["braidnew", "1"])
        .unwrap();
    let ready = probe.wait_for_stderr("ready").unwrap();
    assert!(ready.contains("created=true"), "{ready}");
    // braid does not configure a device it created: its link stays down until a user
    // brings it up (`ip -o link` shows the flags, e.g. `<POINTOPOINT,MULTICAST,NOARP>`).
    let out = ns.run("ip", &["-o", "link", "show", "braidnew"]).unwrap();
    let link = String::from_utf8_lossy(&out.stdout).into_owned();
    let flags = link.split(['<', '>']).nth(1).unwrap_or_default();
    assert!(!flags.split(',').any(|f| f == "UP"), "{link}");
    drop(probe);
    // A TAP device of that name: not a TUN, a clear error.
    ns.ip(&["tuntap", "add", "dev", "braidtap", "mode", "tap"])
        .unwrap();
    let out = ns
        .command(env!("CARGO_BIN_EXE_tunprobe"))
        .arg("braidtap")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a TUN device"), "{err}");
}

#[test]
fn kpeer_speaks_mptcp_with_the_kernel() {
    if !require_root("kpeer_speaks_mptcp_with_the_kernel") {
        return;
    }
    let ns = Netns::new("kmptcp").unwrap();
    if ns.counter("MPTcpExtMPCapableSYNRX").is_err() {
        eprintln!("SKIPPED kpeer_speaks_mptcp_with_the_kernel: no nstat");
        return;
    }
    let n: u64 = 1 << 20;
    let (_, s) = ns.exchange(
        &Cmd::new(
            KPEER,
            "listen --bind 127.0.0.1 --port 7000 --proto mptcp --json",
        ),
        &Cmd::new(
            KPEER,
            &format!("connect 127.0.0.1:7000 --proto mptcp --send {n} --json"),
        ),
    );
    assert_received(&s.json(), n);
    // The kernel's own view: the connection was MPTCP, not a fallback.
    assert!(ns.counter("MPTcpExtMPCapableSYNRX").unwrap() >= 1);
    assert!(ns.counter("MPTcpExtMPCapableACKRX").unwrap() >= 1);
}
