//! The `braid` binary as users meet it: every `--help` with examples, usage errors as one
//! line `braid: ...` with exit status 2, help and version with 0.

use std::process::{Command, Output};

fn braid(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_braid"))
        .args(args)
        .output()
        .expect("run the braid binary")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The subcommands a help text lists under `Commands:` (without `help`).
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| l.trim() != "Commands:")
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(String::from)
        .collect()
}

/// Every command and subcommand of the tree, found through the help texts (a new
/// subcommand is checked without being listed here).
fn every_command() -> Vec<Vec<String>> {
    let mut all = vec![Vec::new()];
    let mut i = 0;
    while i < all.len() {
        let mut args = all[i].clone();
        args.push("--help".into());
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = braid(&argv);
        for sub in subcommands(&stdout(&out)) {
            let mut path = all[i].clone();
            path.push(sub);
            all.push(path);
        }
        i += 1;
    }
    all
}

#[test]
fn every_help_shows_examples_and_exits_0() {
    let all = every_command();
    for want in [
        "sim", "connect", "listen", "proxy", "endpoint", "limits", "monitor", "stat", "counters",
    ] {
        assert!(
            all.iter().any(|p| p == &[want]),
            "{want} not found: {all:?}"
        );
    }
    assert!(all.iter().any(|p| p == &["endpoint", "add"]), "{all:?}");
    assert!(all.iter().any(|p| p == &["limits", "set"]), "{all:?}");
    assert!(all.iter().any(|p| p == &["proxy", "server"]), "{all:?}");
    for path in &all {
        for flag in ["--help", "-h"] {
            let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
            args.push(flag);
            let out = braid(&args);
            let help = stdout(&out);
            assert!(out.status.success(), "{args:?}: {}", stderr(&out));
            let (_, examples) = help
                .split_once("\nExamples:\n")
                .unwrap_or_else(|| panic!("{args:?}: no Examples section:\n{help}"));
            let prefix = format!("  braid {}", path.join(" "));
            let n = examples
                .lines()
                .filter(|l| l.starts_with(prefix.trim_end()))
                .count();
            assert!(
                (2..=4).contains(&n),
                "{args:?}: {n} examples of `{}`:\n{help}",
                prefix.trim()
            );
        }
    }
}

#[test]
fn endpoint_add_and_limits_set_help_is_help() {
    for (args, usage) in [
        (
            &["endpoint", "add", "--help"][..],
            "Usage: braid endpoint add ADDR",
        ),
        (
            &["endpoint", "add", "10.0.0.2", "dev", "bt0", "--help"],
            "Usage: braid endpoint add ADDR",
        ),
        (
            &["limits", "set", "--help"],
            "Usage: braid limits set [subflows N]",
        ),
        (
            &["limits", "set", "subflows", "2", "-h"],
            "Usage: braid limits set [subflows N]",
        ),
    ] {
        let out = braid(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        assert!(stdout(&out).contains(usage), "{args:?}: {}", stdout(&out));
        assert!(stderr(&out).is_empty(), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn version_exits_0() {
    let out = braid(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).starts_with("braid "), "{}", stdout(&out));
}

/// Each usage error is exactly one line on stderr, `braid: ` and what is wrong, with exit
/// status 2 and nothing on stdout. The devices have names the TUN driver refuses before any
/// system call (`x/bt0`): should a check be missed, nothing is created.
#[test]
fn usage_errors_are_one_line_with_exit_status_2() {
    let path = ["--path", "x/bt0=10.0.0.2"];
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["sim", "--bogus"],
            "braid: unexpected argument '--bogus' found (see 'braid sim --help')",
        ),
        (
            vec!["sim", "--jsn"],
            "braid: unexpected argument '--jsn' found; a similar argument exists: '--json' \
             (see 'braid sim --help')",
        ),
        (
            vec!["bogus"],
            "braid: unrecognized subcommand 'bogus' (see 'braid --help')",
        ),
        (
            vec!["listen", "--port", "5201", "--once"],
            "braid: the following required arguments were not provided: --path <DEV=ADDR> \
             (see 'braid listen --help')",
        ),
        (
            vec!["endpoint", "add", "10.0.0.2", "--ctl"],
            "braid: a value is required for '--ctl <PATH>' but none was supplied (see 'braid \
             endpoint add --help')",
        ),
        (
            vec!["sim", "--bytes", "0"],
            "braid: bad --bytes \"0\": nothing to send: give at least 1 byte",
        ),
        (
            vec!["sim", "--bytes", "12X"],
            "braid: bad --bytes \"12X\": unknown unit \"X\" (K, M, G or KiB, MiB, GiB; none \
             for bytes)",
        ),
        (
            vec!["sim", "single-path", "--bytes", "50G"],
            "braid: bad --bytes 53687091200: more than scenario single-path can carry in its \
             3600 s of simulated time (at most 45000000000 bytes at 100 Mbit/s)",
        ),
        (
            vec!["sim", "single-path", "--tcp", "--scheduler", "minrtt"],
            "braid: --scheduler minrtt needs MPTCP: a scheduler spreads data over the subflows \
             of an MPTCP connection, and --tcp has one plain TCP connection; leave out one of \
             them",
        ),
        (
            vec!["sim", "--cc", "vegas"],
            "braid: unknown congestion control 'vegas' (known: cubic, reno)",
        ),
        (
            vec!["sim", "--scheduler", "magic"],
            "braid: unknown scheduler 'magic' (known: default, minrtt, roundrobin, redundant, \
             blest)",
        ),
        (
            vec!["connect", "10.0.0.999:80"],
            "braid: bad HOST:PORT \"10.0.0.999:80\": 10.0.0.999 is not a valid IPv4 address",
        ),
        (
            vec!["connect", "fd00::1:80"],
            "braid: bad HOST:PORT \"fd00::1:80\": an IPv6 address with a port is written in \
             brackets: [fd00::1]:80",
        ),
        (
            vec!["connect", "10.0.0.1:80", "--path", "x/bt0=10.1.0.2"],
            "braid: --path x/bt0=10.1.0.2 and --path x/bt0=10.0.0.2: device x/bt0 given twice; \
             each path has its own TUN device",
        ),
        (
            vec!["connect", "10.0.0.1:80", "--path", "x/bt1=10.0.0.2"],
            "braid: --path x/bt1=10.0.0.2 and --path x/bt0=10.0.0.2: address 10.0.0.2 given \
             twice; each path has its own address",
        ),
        (
            vec!["connect", "10.0.0.1:80", "--pm", "ndiffports=0"],
            "braid: bad --pm \"ndiffports=0\": ndiffports=N takes N from 1 to 8 (the subflows \
             over the first path)",
        ),
        (
            vec!["connect", "10.0.0.1:80", "--subflow", "10.0.0.999"],
            "braid: bad --subflow \"10.0.0.999\": 10.0.0.999 is not a valid IPv4 address",
        ),
        (
            vec!["connect", "10.0.0.1:80", "--subflow", "10.9.9.9"],
            "braid: --subflow 10.9.9.9: not the address of any --path",
        ),
        (
            vec![
                "listen",
                "--port",
                "5201",
                "--path",
                "x/bt1=fd00::1",
                "--signal",
                "fd00::1:8080",
            ],
            "braid: --signal fd00::1:8080: not the address of any --path (for a port, write \
             [fd00::1]:8080)",
        ),
        (
            vec!["listen", "--port", "0", "--path", "x/bt0=10.0.0.2"],
            "braid: bad --port \"0\": expected a port from 1 to 65535",
        ),
        (
            vec!["endpoint", "add", "10.0.0.2", "dev", "bt0", "bogus"],
            "braid: endpoint add: unknown argument \"bogus\"",
        ),
        (
            vec!["limits", "set", "subflows", "9"],
            "braid: limits set: subflows limit 9 greater than maximum 8",
        ),
    ];
    for (mut args, want) in cases {
        if matches!(args[0], "connect" | "listen") && !args.contains(&"--port") {
            args.extend_from_slice(&path);
        }
        let out = braid(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert_eq!(stderr(&out), format!("{want}\n"), "{args:?}");
        assert!(stdout(&out).is_empty(), "{args:?}: {}", stdout(&out));
    }
}

/// A command that ran and failed: one line, exit status 1 (not a usage error).
#[test]
fn run_time_failures_exit_1() {
    let out = braid(&["stat", "--ctl", "/nonexistent/braid.sock"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    assert!(stderr(&out).starts_with("braid: cannot reach the braid instance"));
}
