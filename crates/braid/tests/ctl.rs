//! The control plane: `ip mptcp`-style argument parsing, and the Unix-socket protocol between
//! `braid endpoint|limits|monitor|stat|counters` and a running instance (a fake one here: an
//! endpoint table behind a [`CtlHandler`]).

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use braid::ctl::{
    parse_endpoint_args, parse_limits_args, CtlClient, CtlError, CtlHandler, CtlServer,
    EndpointSpec, LimitsSpec, MonitorEvent, Request, Response,
};
use braid_proto::pm::{EndpointTable, Limits, PmEndpoint};

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

#[test]
fn endpoint_add_parses_like_ip_mptcp() {
    let r = parse_endpoint_args(&words("add 10.0.0.2 dev eth1 id 3 port 8080 signal backup"))
        .expect("valid");
    let Request::EndpointAdd { endpoint } = r else {
        panic!("{r:?}")
    };
    assert_eq!(
        endpoint,
        EndpointSpec {
            id: Some(3),
            addr: "10.0.0.2".parse().unwrap(),
            port: Some(8080),
            dev: Some("eth1".into()),
            flags: vec!["signal".into(), "backup".into()],
        }
    );
    assert_eq!(
        endpoint.to_string(),
        "10.0.0.2 port 8080 id 3 signal backup dev eth1"
    );
    let ok = |s: &str| parse_endpoint_args(&words(s)).expect(s);
    assert_eq!(ok("delete id 4"), Request::EndpointDelete { id: 4 });
    assert_eq!(ok("show"), Request::EndpointShow);
    assert_eq!(ok("flush"), Request::EndpointFlush);
    assert_eq!(
        ok("change id 2 nobackup"),
        Request::EndpointChange {
            id: 2,
            change: "nobackup".into()
        }
    );
}

#[test]
fn endpoint_errors_are_one_line_and_match_the_kernel() {
    let err = |s: &str| parse_endpoint_args(&words(s)).expect_err(s);
    assert_eq!(
        err("add 10.0.0.2 port 80"),
        "flags must have signal when using port"
    );
    assert_eq!(
        err("add 10.0.0.2 signal fullmesh"),
        "flags mustn't have both signal and fullmesh"
    );
    assert!(err("add 10.0.0.2 id 0").contains("invalid endpoint id 0"));
    assert_eq!(err("add 10.0.0.2 id 300"), "invalid id \"300\"");
    assert_eq!(err("add 0.0.0.0"), "invalid address 0.0.0.0");
    assert_eq!(err("add nonsense"), "invalid address \"nonsense\"");
    assert_eq!(err("add 10.0.0.2 bogus"), "unknown argument \"bogus\"");
    assert_eq!(err("add 10.0.0.2 dev"), "\"dev\" needs a value");
    assert_eq!(err("delete 4"), "endpoint delete: expected \"id N\"");
    assert!(err("change id 1 sideways").starts_with("unknown change \"sideways\""));
    assert!(err("frobnicate").contains("unknown command"));
    for e in [err("add 10.0.0.2 port 80"), err("change id 1 x")] {
        assert!(!e.contains('\n'));
    }
}

#[test]
fn limits_parse_and_refuse_values_above_8() {
    assert_eq!(
        parse_limits_args(&words("set subflows 4 add_addr_accepted 2")),
        Ok(Request::LimitsSet {
            subflows: Some(4),
            add_addr_accepted: Some(2)
        })
    );
    assert_eq!(
        parse_limits_args(&words("set add_addr_accepted 1")),
        Ok(Request::LimitsSet {
            subflows: None,
            add_addr_accepted: Some(1)
        })
    );
    assert_eq!(parse_limits_args(&words("show")), Ok(Request::LimitsShow));
    assert_eq!(
        parse_limits_args(&words("set subflows 9")),
        Err("subflows limit 9 greater than maximum 8".to_string())
    );
    assert!(parse_limits_args(&words("set subflows x")).is_err());
}

/// A fake instance: an endpoint table.
#[derive(Default)]
struct Fake {
    table: EndpointTable,
}

impl CtlHandler for Fake {
    fn handle(&mut self, req: Request) -> Response {
        match req {
            Request::EndpointAdd { endpoint } => {
                let flags = match endpoint.endpoint_flags() {
                    Ok(f) => f,
                    Err(e) => return Response::error(e),
                };
                match self.table.add(
                    endpoint.addr,
                    endpoint.id.map(u32::from),
                    endpoint.port,
                    endpoint.dev.clone(),
                    flags,
                ) {
                    Ok(ep) => Response {
                        endpoint: Some(EndpointSpec::from_endpoint(&ep)),
                        ..Response::ok()
                    },
                    Err(e) => Response::error(e.to_string()),
                }
            }
            Request::EndpointShow => Response {
                endpoints: Some(
                    self.table
                        .endpoints()
                        .iter()
                        .map(EndpointSpec::from_endpoint)
                        .collect(),
                ),
                ..Response::ok()
            },
            Request::EndpointDelete { id } => match self.table.delete(id) {
                Ok(_) => Response::ok(),
                Err(e) => Response::error(e.to_string()),
            },
            Request::LimitsShow => Response {
                limits: Some(self.table.limits().into()),
                ..Response::ok()
            },
            _ => Response::error("not in this fake"),
        }
    }
}

/// A test's directory, removed with what is in it when dropped.
struct TestDir(PathBuf);

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fresh directory for test `name`, and the path of a socket in it.
fn sock_path(name: &str) -> (TestDir, PathBuf) {
    let dir = std::env::temp_dir().join(format!("braid-ctl-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("ctl.sock");
    (TestDir(dir), path)
}

/// Runs the server on a thread until the returned flag is set.
fn serve(
    server: CtlServer,
    events: Arc<Mutex<Vec<MonitorEvent>>>,
) -> (Arc<AtomicBool>, std::thread::JoinHandle<()>) {
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let h = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let mut server = server;
            let mut fake = Fake::default();
            while !s2.load(Ordering::Relaxed) {
                std::future::poll_fn(|cx| {
                    server.poll(cx, &mut fake);
                    std::task::Poll::Ready(())
                })
                .await;
                for ev in events.lock().expect("lock").drain(..) {
                    server.publish(&ev);
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        });
    });
    (stop, h)
}

#[test]
fn requests_round_trip_over_the_socket_which_only_its_owner_may_use() {
    let (_dir, path) = sock_path("rt");
    let server = CtlServer::bind(&path).expect("bind");
    let mode = std::fs::metadata(&path)
        .expect("socket file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    // A second instance on the same path is refused while the first lives.
    assert!(matches!(CtlServer::bind(&path), Err(CtlError::InUse(_))));
    let events = Arc::new(Mutex::new(Vec::new()));
    let (stop, h) = serve(server, events.clone());

    let mut c = CtlClient::connect(&path).expect("connect");
    let add = parse_endpoint_args(&words("add 10.0.0.2 dev eth1 signal")).expect("valid");
    let r = c.request(&add).expect("answer");
    assert!(r.ok, "{r:?}");
    assert_eq!(r.endpoint.as_ref().and_then(|e| e.id), Some(1));
    let r = c.request(&add).expect("answer");
    assert_eq!(r.error.as_deref(), Some("address 10.0.0.2 already in use"));
    let r = c.request(&Request::EndpointShow).expect("answer");
    let eps = r.endpoints.expect("endpoints");
    assert_eq!(eps.len(), 1);
    assert_eq!(eps[0].to_string(), "10.0.0.2 id 1 signal dev eth1");
    let r = c.request(&Request::LimitsShow).expect("answer");
    assert_eq!(r.limits, Some(LimitsSpec::from(Limits::default())));
    assert_eq!(
        r.limits.map(|l| l.to_string()).as_deref(),
        Some("add_addr_accepted 0 subflows 2")
    );

    // monitor: acknowledged, then events as they are published.
    let mut m = CtlClient::connect(&path).expect("connect");
    assert!(m.request(&Request::Monitor).expect("answer").ok);
    let mut ev = MonitorEvent::new("SUB_ESTABLISHED");
    ev.token = Some(0xdead_beef);
    ev.local = Some("10.0.0.2:40000".parse().unwrap());
    ev.remote = Some("10.0.0.1:443".parse().unwrap());
    ev.local_id = Some(1);
    ev.remote_id = Some(0);
    events.lock().expect("lock").push(ev.clone());
    assert_eq!(m.next_event().expect("event"), ev);
    assert_eq!(
        ev.to_line(),
        "[ SUB_ESTABLISHED] token=deadbeef remid=0 locid=1 saddr=10.0.0.2 sport=40000 \
         daddr=10.0.0.1 dport=443"
    );
    stop.store(true, Ordering::Relaxed);
    h.join().expect("server thread");
    // The socket file goes with the server.
    assert!(!path.exists());
}

/// A stale socket file at `path`: bound, then its listener gone. A process another test
/// forks meanwhile holds the listener until it execs (a connection then succeeds, and the
/// socket is rightly taken for a live one): the file is stale once a connection is refused.
fn stale_socket(path: &std::path::Path) {
    drop(std::os::unix::net::UnixListener::bind(path).expect("bind"));
    for _ in 0..2000 {
        match std::os::unix::net::UnixStream::connect(path) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return,
            _ => std::thread::sleep(std::time::Duration::from_millis(1)),
        }
    }
    panic!("{} still takes connections", path.display());
}

#[test]
fn garbage_gets_a_one_line_error_and_a_stale_socket_is_replaced() {
    use std::io::{BufRead, BufReader, Write};
    let (_dir, path) = sock_path("bad");
    stale_socket(&path);
    assert!(path.exists());
    let server = CtlServer::bind(&path).expect("stale socket replaced");
    let (stop, h) = serve(server, Arc::new(Mutex::new(Vec::new())));
    let mut s = std::os::unix::net::UnixStream::connect(&path).expect("connect");
    s.write_all(b"{\"cmd\":\"launch_missiles\"}\nnot json\n")
        .expect("write");
    let mut r = BufReader::new(s);
    for _ in 0..2 {
        let mut l = String::new();
        r.read_line(&mut l).expect("read");
        let resp: Response = serde_json::from_str(l.trim()).expect("json");
        assert!(!resp.ok);
        assert!(resp.error.expect("error").starts_with("bad request"));
    }
    stop.store(true, Ordering::Relaxed);
    h.join().expect("server thread");
}

#[test]
fn endpoint_spec_flags_round_trip() {
    let ep = PmEndpoint {
        id: 2,
        addr: "fd00::2".parse().unwrap(),
        port: None,
        dev: None,
        flags: braid_proto::pm::EndpointFlags::SUBFLOW
            .with(braid_proto::pm::EndpointFlags::FULLMESH, true),
    };
    let spec = EndpointSpec::from_endpoint(&ep);
    assert_eq!(spec.flags, vec!["subflow", "fullmesh"]);
    assert_eq!(spec.endpoint_flags(), Ok(ep.flags));
}

// ---------------------------------------------------------------------- against endpoints

use braid::ctl::{connection_stats, monitor_events, EndpointCtl};
use braid_proto::endpoint::{ConnectOptions, ListenOptions};
use braid_proto::{Endpoint, EndpointConfig, Instant};

/// Two endpoints joined by a lossless 1 ms wire; the client's control plane in the middle.
struct Pair {
    now: Instant,
    a: Endpoint,
    b: Endpoint,
    events: Vec<String>,
}

impl Pair {
    fn new() -> Pair {
        let mut a = Endpoint::new(EndpointConfig::default(), [1; 32]);
        let mut b = Endpoint::new(EndpointConfig::default(), [2; 32]);
        b.listen(
            "10.0.0.2:80".parse().unwrap(),
            ListenOptions { mptcp: true },
        )
        .expect("listen");
        a.connect(
            Instant::ZERO,
            "10.0.0.1:0".parse().unwrap(),
            "10.0.0.2:80".parse().unwrap(),
            ConnectOptions { mptcp: true },
        )
        .expect("connect");
        let mut p = Pair {
            now: Instant::ZERO,
            a,
            b,
            events: Vec::new(),
        };
        p.run(200);
        p
    }

    /// Moves packets both ways for `ms` milliseconds of simulated time.
    fn run(&mut self, ms: u64) {
        let end = self.now + braid_proto::Duration::from_millis(ms);
        let mut buf = vec![0u8; 2048];
        while self.now < end {
            let mut to_b = Vec::new();
            while let Some(t) = self.a.poll_transmit(self.now, &mut buf) {
                to_b.push(buf[..t.len].to_vec());
            }
            let mut to_a = Vec::new();
            while let Some(t) = self.b.poll_transmit(self.now, &mut buf) {
                to_a.push(buf[..t.len].to_vec());
            }
            self.now += braid_proto::Duration::from_millis(1);
            for p in to_b {
                self.b.handle_packet(self.now, &p);
            }
            for p in to_a {
                self.a.handle_packet(self.now, &p);
            }
            self.a.handle_timeout(self.now);
            self.b.handle_timeout(self.now);
            while self.a.poll_event().is_some() {}
            while self.b.poll_event().is_some() {}
            while let Some(n) = self.a.poll_pm_event() {
                self.events
                    .extend(monitor_events(&n).into_iter().map(|e| e.kind));
            }
        }
    }

    fn ctl(&mut self, req: Request) -> Response {
        EndpointCtl {
            endpoint: &mut self.a,
            now: self.now,
        }
        .handle(req)
    }
}

#[test]
fn endpoint_commands_act_on_live_connections() {
    let mut p = Pair::new();
    assert_eq!(p.events, ["CREATED", "ESTABLISHED"]);
    let stat = connection_stats(&p.a);
    assert_eq!(stat.len(), 1);
    assert!(stat[0].mptcp && stat[0].token.is_some());
    assert_eq!(stat[0].subflows.len(), 1);

    // endpoint add ... subflow: a join on the live connection.
    let add = parse_endpoint_args(&words("add 10.0.1.1 id 1 subflow")).expect("valid");
    assert!(p.ctl(add).ok);
    p.run(100);
    assert_eq!(p.b.counters().MPJoinAckRx, 1);
    assert_eq!(p.events.last().map(String::as_str), Some("SUB_ESTABLISHED"));
    let stat = connection_stats(&p.a);
    assert_eq!(stat[0].subflows.len(), 2);
    assert_eq!(stat[0].subflows[1].local.ip().to_string(), "10.0.1.1");
    assert_eq!(stat[0].subflows[1].local_id, 1);

    // endpoint change id 1 backup: MP_PRIO on its subflow.
    let change = parse_endpoint_args(&words("change id 1 backup")).expect("valid");
    let r = p.ctl(change);
    assert!(r.ok, "{r:?}");
    p.run(100);
    assert_eq!(p.b.counters().MPPrioRx, 1);
    assert!(connection_stats(&p.a)[0].subflows[1].backup);

    // limits and counters.
    let set = parse_limits_args(&words("set add_addr_accepted 3")).expect("valid");
    let r = p.ctl(set);
    assert_eq!(
        r.limits.map(|l| (l.subflows, l.add_addr_accepted)),
        Some((2, 3))
    );
    let r = p.ctl(Request::LimitsShow);
    assert_eq!(
        r.limits.map(|l| l.to_string()).as_deref(),
        Some("add_addr_accepted 3 subflows 2")
    );
    let r = p.ctl(Request::Counters);
    assert_eq!(r.counters.expect("counters")["MPJoinSynAckRx"], 1);

    // endpoint delete id 1: REMOVE_ADDR, the subflow closes.
    assert!(p.ctl(Request::EndpointDelete { id: 1 }).ok);
    p.run(200);
    assert_eq!(p.b.counters().RmAddr, 1);
    assert_eq!(connection_stats(&p.a)[0].subflows.len(), 1);
    assert!(p.events.iter().any(|e| e == "SUB_CLOSED"), "{:?}", p.events);
    let r = p.ctl(Request::EndpointDelete { id: 1 });
    assert_eq!(r.error.as_deref(), Some("endpoint id 1 not found"));
}

/// `braid listen|connect --ctl PATH` run as a user would, on a path braid must not touch.
/// The device name is one the TUN driver refuses before any system call, so these run
/// without root: the point is what happens before a device is opened.
#[test]
fn cli_refuses_a_ctl_path_that_is_not_a_stale_socket_and_touches_nothing() {
    use std::process::Command;
    let (_guard, sock) = sock_path("cli");
    let dir = sock.parent().expect("dir").to_path_buf();
    let file = dir.join("precious");
    std::fs::write(&file, "keep me").expect("write");
    let out_file = dir.join("out");
    std::fs::write(&out_file, "old output").expect("write");
    let braid = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_braid"))
            .args(args)
            .output()
            .expect("run the braid binary")
    };
    let f = file.to_str().expect("utf-8 path");
    let o = out_file.to_str().expect("utf-8 path");
    for args in [
        vec![
            "listen",
            "--port",
            "5000",
            "--path",
            "no/dev=10.0.0.2",
            "--out",
            o,
            "--ctl",
            f,
        ],
        vec![
            "connect",
            "10.0.0.1:5000",
            "--path",
            "no/dev=10.0.0.2",
            "--out",
            o,
            "--ctl",
            f,
        ],
    ] {
        let out = braid(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}: {stderr}");
        assert_eq!(
            stderr.lines().count(),
            1,
            "{args:?}: one line only: {stderr}"
        );
        assert!(
            stderr.starts_with(&format!("braid: control socket {f}: a regular file")),
            "{args:?}: {stderr}"
        );
        assert_eq!(std::fs::read_to_string(&file).expect("file"), "keep me");
        assert_eq!(
            std::fs::read_to_string(&out_file).expect("out"),
            "old output",
            "--out is not truncated before the refusal"
        );
    }
    // A stale socket is replaced; the socket braid created goes when it exits (here at
    // once, over the bad device name).
    let stale = dir.join("stale.sock");
    stale_socket(&stale);
    let s = stale.to_str().expect("utf-8 path");
    let out = braid(&[
        "listen",
        "--port",
        "5000",
        "--path",
        "no/dev=10.0.0.2",
        "--ctl",
        s,
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.starts_with(&format!("braid: control socket {s}\n"))
            && stderr.contains("invalid TUN device name"),
        "{stderr}"
    );
    assert!(
        std::fs::symlink_metadata(&stale).is_err(),
        "removed on exit"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
