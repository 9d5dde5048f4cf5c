//! The EXAMPLES sections of `--help` (clap's `after_help`), one per command. The addresses
//! are documentation ones (the kernel side of each TUN device is 10.N.0.1, braid's own
//! address behind it 10.N.0.2); `bt0`, `bt1` are TUN devices.

/// `braid --help`.
pub const BRAID: &str = "\
Examples:
  braid sim two-paths --bytes 16M --json
  braid listen --port 5201 --path bt0=10.0.0.2 --path bt1=10.1.0.2 --sink
  braid connect 10.0.0.1:5201 --path bt0=10.0.0.2 --path bt1=10.1.0.2 --send 16M
  braid stat --ctl /run/braid.sock

Exit status: 0 success; 1 the command failed (one line on stderr says why); 2 usage error
(the command line is wrong, nothing was run); 130 interrupted.";

/// `braid sim --help`.
pub const SIM: &str = "\
Examples:
  braid sim                                        # two-paths, 64 MiB over MPTCP
  braid sim lossy --tcp --bytes 16M --json         # the plain-TCP baseline, as JSON
  braid sim failover --scheduler blest --plot failover.svg
  braid sim compare --bytes 4M                     # each loss scenario, MPTCP vs TCP";

/// `braid connect --help`.
pub const CONNECT: &str = "\
Examples:
  braid connect 10.0.0.1:5201 --path bt0=10.0.0.2 --send 16M
  braid connect 10.0.0.1:5201 --path bt0=10.0.0.2 --path bt1=10.1.0.2 --send 64M --json
  braid connect [fd00::1]:5201 --path bt0=fd00::2 --in notes.txt --out reply.bin
  braid connect 10.0.0.1:5201 --path bt0=10.0.0.2 --path bt1=10.1.0.2 --backup 10.1.0.2 \\
      --ctl /run/braid.sock";

/// `braid listen --help`.
pub const LISTEN: &str = "\
Examples:
  braid listen --port 5201 --path bt0=10.0.0.2 --sink
  braid listen --port 5201 --path bt0=10.0.0.2 --path bt1=10.1.0.2 --signal 10.1.0.2 --echo
  braid listen --port 5201 --path bt0=10.0.0.2 --out received.bin --once --json";

/// `braid proxy --help`.
pub const PROXY: &str = "\
Examples:
  braid proxy client --listen 127.0.0.1:1080 --remote 203.0.113.7:1080 \\
      --path bt0=10.0.0.2 --path bt1=10.1.0.2
  braid proxy server --port 1080 --path bt0=10.0.0.2 --socks5
  curl --socks5-hostname 127.0.0.1:1080 http://example.org/

The client bonds its paths (uplinks) for local programs; docs/proxy.md shows the routing.";

/// `braid proxy client --help`.
pub const PROXY_CLIENT: &str = "\
Examples:
  braid proxy client --listen 127.0.0.1:1080 --remote 203.0.113.7:1080 \\
      --path bt0=10.0.0.2 --path bt1=10.1.0.2
  braid proxy client --listen [::1]:8080 --remote proxy.example:443 --path bt0=10.0.0.2 \\
      --path bt1=10.1.0.2 --backup 10.1.0.2 --ctl /run/braid-proxy.sock --json

Each local connection gets its own MPTCP connection, with one subflow per --path. The far
end is a braid proxy server or any host with kernel MPTCP.";

/// `braid proxy server --help`.
pub const PROXY_SERVER: &str = "\
Examples:
  braid proxy server --port 1080 --path bt0=10.0.0.2 --socks5
  braid proxy server --port 1080 --path bt0=10.0.0.2 --socks5 --socks5-users users.txt
  braid proxy server --port 8443 --path bt0=10.0.0.2 --upstream 127.0.0.1:443 \\
      --idle-timeout 600 --max-connections 256 --buffer 1M

Kernel MPTCP clients work too (e.g. mptcpize run curl --socks5-hostname ...).";

/// `braid endpoint --help`.
pub const ENDPOINT: &str = "\
Examples:
  braid endpoint add 10.2.0.2 dev bt2 subflow --ctl /run/braid.sock
  braid endpoint change id 1 backup
  braid endpoint delete id 1
  braid endpoint show --json";

/// `braid endpoint add --help`.
pub const ENDPOINT_ADD: &str = "\
Examples:
  braid endpoint add 10.2.0.2 dev bt2 subflow       # join from 10.2.0.2 on live connections
  braid endpoint add 10.1.0.2 dev bt1 id 5 signal   # announce 10.1.0.2 (ADD_ADDR)
  braid endpoint add fd00:1::2 dev bt1 port 8080 signal --ctl /run/braid.sock";

/// `braid endpoint delete --help`.
pub const ENDPOINT_DELETE: &str = "\
Examples:
  braid endpoint delete id 5
  braid endpoint delete id 1 --ctl /run/braid.sock";

/// `braid endpoint change --help`.
pub const ENDPOINT_CHANGE: &str = "\
Examples:
  braid endpoint change id 1 backup      # MP_PRIO: the subflows from it become backup
  braid endpoint change id 1 nobackup";

/// `braid endpoint show --help`.
pub const ENDPOINT_SHOW: &str = "\
Examples:
  braid endpoint show
  braid endpoint show --json --ctl /run/braid.sock";

/// `braid endpoint flush --help`.
pub const ENDPOINT_FLUSH: &str = "\
Examples:
  braid endpoint flush
  braid endpoint flush --ctl /run/braid.sock";

/// `braid limits --help`.
pub const LIMITS: &str = "\
Examples:
  braid limits set subflows 4 add_addr_accepted 2
  braid limits show --json
  braid limits --ctl /run/braid.sock               # the same as limits show";

/// `braid limits set --help`.
pub const LIMITS_SET: &str = "\
Examples:
  braid limits set subflows 4 add_addr_accepted 2
  braid limits set add_addr_accepted 1 --ctl /run/braid.sock";

/// `braid limits show --help`.
pub const LIMITS_SHOW: &str = "\
Examples:
  braid limits show
  braid limits show --json --ctl /run/braid.sock";

/// `braid monitor --help`.
pub const MONITOR: &str = "\
Examples:
  braid monitor
  braid monitor --json --ctl /run/braid.sock";

/// `braid stat --help`.
pub const STAT: &str = "\
Examples:
  braid stat
  braid stat --json --ctl /run/braid.sock";

/// `braid counters --help`.
pub const COUNTERS: &str = "\
Examples:
  braid counters
  braid counters --json --ctl /run/braid.sock";
