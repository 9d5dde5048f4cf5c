//! The built-in scenarios of `braid sim`: a braid client sends a reproducible stream to a braid
//! server over simulated paths, and the run reports integrity and goodput.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use braid_proto::cc::CcAlgorithm;
use braid_proto::endpoint::{ConnectOptions, ListenOptions};
use braid_proto::mptcp::MptcpCounters;
use braid_proto::sched::SchedulerKind;
use braid_proto::tcp::TcpConfig;
use braid_proto::{ConnInfo, Duration, Endpoint, EndpointConfig, Instant};

use crate::host::{AppRole, AppStats, Host, SubflowStats};
use crate::middlebox::{CorruptPayload, Hits, Nat, StripMptcp, StripWhen};
use crate::{
    Direction, GilbertElliott, LinkConfig, LinkStats, Network, NodeId, PcapWriter, RunOutcome,
};

/// One simulated path: its two directions.
#[derive(Debug, Clone)]
pub struct PathSpec {
    /// Client to server.
    pub up: LinkConfig,
    /// Server to client.
    pub down: LinkConfig,
}

/// A named network setup.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: &'static str,
    pub description: &'static str,
    pub paths: Vec<PathSpec>,
    /// Cannot run over plain TCP (an MPTCP-specific middlebox, or a path outage that only a
    /// second subflow survives). With MPTCP the client joins a subflow over every further
    /// path; plain TCP (`--tcp`), where allowed, uses the first path alone.
    pub needs_mptcp: bool,
    /// What happens to the paths besides their link configuration, in order.
    pub impairments: Vec<Impairment>,
    /// Both endpoints ask for DSS checksums (RFC 8684 §3.3.1).
    pub checksum: bool,
}

/// Something done to a path: an outage or a middlebox. `path` indexes
/// [`Scenario::paths`]; "up" is client to server.
#[derive(Debug, Clone, PartialEq)]
pub enum Impairment {
    /// Both directions of the path go dark at `at` (simulated time) and stay dark; whatever
    /// is queued or in flight is lost. With `when_busy`, the outage waits from `at` on (in
    /// steps of a millisecond) for the first instant at which the path's up direction has
    /// data queued, so it always strikes a subflow with data in flight.
    PathDown {
        path: usize,
        at: Duration,
        when_busy: bool,
    },
    /// A [`StripMptcp`] pair on both directions of the path.
    StripMptcp { path: usize, when: StripWhen },
    /// A [`CorruptPayload`] on the path's up direction: after `skip` data segments it
    /// corrupts the next `count`.
    CorruptPayload { path: usize, skip: u64, count: u64 },
    /// The client sits behind a [`Nat`] with this public address on the path.
    Nat { path: usize, public: IpAddr },
}

impl Impairment {
    /// A short name for reports.
    pub fn kind(&self) -> &'static str {
        match self {
            Impairment::PathDown { .. } => "path-down",
            Impairment::StripMptcp { .. } => "strip-mptcp",
            Impairment::CorruptPayload { .. } => "corrupt-payload",
            Impairment::Nat { .. } => "nat",
        }
    }

    /// The path it applies to.
    pub fn path(&self) -> usize {
        match *self {
            Impairment::PathDown { path, .. }
            | Impairment::StripMptcp { path, .. }
            | Impairment::CorruptPayload { path, .. }
            | Impairment::Nat { path, .. } => path,
        }
    }
}

/// Every scenario `braid sim` knows, by name.
pub const SCENARIOS: &[&str] = &[
    "two-paths",
    "single-path",
    "lossy",
    "failover",
    "strip-syn",
    "strip-data",
    "corrupt",
    "nat",
    "bursty",
    "reorder",
    "lossy-path",
    "lossy-lan",
];

/// The scenarios of the CLI contract (DESIGN.md section 6, issue 3): the test suite moves
/// 64 MiB through each; the loss scenarios added for issue 12 run at smaller sizes there.
pub const CONTRACT_SCENARIOS: &[&str] = &[
    "two-paths",
    "single-path",
    "lossy",
    "failover",
    "strip-syn",
    "strip-data",
    "corrupt",
    "nat",
];

/// The scenarios with loss or reordering that `braid sim compare` runs with MPTCP and with
/// plain TCP: how the sender copes with each impairment, against the baseline.
pub const LOSS_SCENARIOS: &[&str] = &["lossy", "bursty", "reorder", "lossy-path", "lossy-lan"];

/// `bursty`: the long-run loss rate of each direction's Gilbert–Elliott channel (the same
/// average as `lossy`'s independent loss).
pub const BURSTY_LOSS: f64 = 0.01;
/// `bursty`: the mean length of a loss burst, in packets.
pub const BURSTY_MEAN_BURST: f64 = 3.0;
/// `bursty`: the chain also steps once per this much idle time (see
/// [`GilbertElliott::slot`]).
pub const BURSTY_SLOT: Duration = Duration::from_millis(10);
/// `reorder`: the share of packets held back in each direction.
pub const REORDER_SHARE: f64 = 0.03;
/// `reorder`: a held-back packet arrives up to this much later (uniformly from 1 µs).
pub const REORDER_MAX: Duration = Duration::from_millis(5);
/// `lossy-path`: the random loss of path 2, each way.
pub const LOSSY_PATH_LOSS: f64 = 0.02;
/// `lossy-lan`: the random loss, each way.
pub const LOSSY_LAN_LOSS: f64 = 0.02;
/// `lossy-lan`: the one-way delay (a round trip of 0.2 ms, a thousandth of the minimum RTO).
pub const LOSSY_LAN_DELAY: Duration = Duration::from_micros(100);

/// Data segments `strip-data` lets through with their options: the first one is the
/// client's third ACK with data (MP_CAPABLE), so the handshake completes before the options
/// vanish.
pub const STRIP_DATA_AFTER: u64 = 1;

/// When the primary path of `failover` goes dark.
pub const FAILOVER_AT: Duration = Duration::from_secs(2);

/// A path of `rate_bps` with one-way `delay`, random `loss`, and a drop-tail queue of one
/// bandwidth-delay product (rate x round-trip time) in each direction.
pub fn path(rate_bps: u64, delay: Duration, loss: f64) -> PathSpec {
    path_with_queue(rate_bps, delay, loss, 1)
}

/// Like [`path`] with a drop-tail queue of `bdps` bandwidth-delay products.
pub fn path_with_queue(rate_bps: u64, delay: Duration, loss: f64, bdps: usize) -> PathSpec {
    let rtt = delay * 2;
    let bdp = (u128::from(rate_bps) * rtt.as_micros() / 8 / 1_000_000) as usize * bdps;
    let dir = LinkConfig {
        rate_bps,
        delay,
        loss,
        queue_limit_bytes: bdp.max(64 * 1500),
        mtu: 1500,
        ..LinkConfig::default()
    };
    PathSpec {
        up: dir.clone(),
        down: dir,
    }
}

impl Scenario {
    /// The scenario called `name`.
    pub fn by_name(name: &str) -> Result<Scenario, SimError> {
        let ms = Duration::from_millis;
        let plain = |name, description, paths, needs_mptcp| Scenario {
            name,
            description,
            paths,
            needs_mptcp,
            impairments: Vec::new(),
            checksum: false,
        };
        let two_paths = || {
            vec![
                path_with_queue(100_000_000, ms(10), 0.0, 2),
                path_with_queue(50_000_000, ms(40), 0.0, 2),
            ]
        };
        let one_path = || vec![path(100_000_000, ms(20), 0.0)];
        match name {
            "single-path" => Ok(plain(
                "single-path",
                "one path: 100 Mbit/s, 20 ms one way, no loss",
                one_path(),
                false,
            )),
            "two-paths" => Ok(plain(
                "two-paths",
                "two paths: 100 Mbit/s 10 ms and 50 Mbit/s 40 ms one way, queues of 2x BDP; \
                 the client joins a subflow over path 2 once connected",
                two_paths(),
                true,
            )),
            "lossy" => Ok(plain(
                "lossy",
                "one path: 100 Mbit/s, 20 ms one way, 1% random loss each way",
                vec![path(100_000_000, ms(20), 0.01)],
                false,
            )),
            "bursty" => {
                let mut p = path(100_000_000, ms(20), 0.0);
                // The chain steps per packet, and once per BURSTY_SLOT of silence: within a
                // flight bursts are three packets, but a lone retransmission a timeout later
                // meets the channel in its long-run state, not still inside the burst (per
                // packet alone, each of a timeout's retransmissions would be lost with
                // probability 2/3, and a transfer could stall for seconds on that).
                let ge = GilbertElliott::with_loss_and_burst(BURSTY_LOSS, BURSTY_MEAN_BURST)
                    .with_slot(BURSTY_SLOT);
                p.up.burst_loss = Some(ge);
                p.down.burst_loss = Some(ge);
                Ok(plain(
                    "bursty",
                    "one path: 100 Mbit/s, 20 ms one way, Gilbert-Elliott burst loss each way: \
                     1% of packets on average, in bursts of 3 on average; 10 ms of silence \
                     counts as a packet, so a timeout later the burst is over",
                    vec![p],
                    false,
                ))
            }
            "reorder" => {
                let mut p = path(100_000_000, ms(20), 0.0);
                p.up = p.up.reorder_upto(REORDER_SHARE, REORDER_MAX);
                p.down = p.down.reorder_upto(REORDER_SHARE, REORDER_MAX);
                Ok(plain(
                    "reorder",
                    "one path: 100 Mbit/s, 20 ms one way, no loss; 3% of packets each way \
                     arrive up to 5 ms late (uniformly), after packets sent behind them",
                    vec![p],
                    false,
                ))
            }
            "lossy-path" => Ok(plain(
                "lossy-path",
                "two-paths where path 2 loses 2% of packets each way (random); with --tcp, \
                 plain TCP over path 1 alone",
                vec![
                    path_with_queue(100_000_000, ms(10), 0.0, 2),
                    path_with_queue(50_000_000, ms(40), LOSSY_PATH_LOSS, 2),
                ],
                false,
            )),
            "lossy-lan" => Ok(plain(
                "lossy-lan",
                "one path like a TUN device on one machine: 1 Gbit/s, 0.1 ms one way, 2% \
                 random loss each way (the 200 ms minimum RTO is a thousand round trips)",
                vec![path(1_000_000_000, LOSSY_LAN_DELAY, LOSSY_LAN_LOSS)],
                false,
            )),
            "failover" => Ok(Scenario {
                impairments: vec![Impairment::PathDown {
                    path: 0,
                    at: FAILOVER_AT,
                    when_busy: true,
                }],
                ..plain(
                    "failover",
                    "two-paths, and path 1 (the initial subflow's) goes dark in both \
                     directions at the first instant from 2 s on when it has data queued, and \
                     stays dark",
                    two_paths(),
                    true,
                )
            }),
            "strip-syn" => Ok(Scenario {
                impairments: vec![Impairment::StripMptcp {
                    path: 0,
                    when: StripWhen::Syn,
                }],
                ..plain(
                    "strip-syn",
                    "single-path behind a middlebox that removes MPTCP options from SYNs: \
                     plain TCP from the start",
                    one_path(),
                    true,
                )
            }),
            "strip-data" => Ok(Scenario {
                impairments: vec![Impairment::StripMptcp {
                    path: 0,
                    when: StripWhen::AfterData(STRIP_DATA_AFTER),
                }],
                ..plain(
                    "strip-data",
                    "single-path behind a middlebox that lets the MPTCP handshake and the first \
                     data segment through and removes every MPTCP option after it: fallback",
                    one_path(),
                    true,
                )
            }),
            "corrupt" => Ok(Scenario {
                impairments: vec![Impairment::CorruptPayload {
                    path: 1,
                    skip: 20,
                    count: 1,
                }],
                checksum: true,
                ..plain(
                    "corrupt",
                    "two-paths with DSS checksums; a middlebox flips a payload byte of one \
                     data segment on path 2 and fixes the TCP checksum",
                    two_paths(),
                    true,
                )
            }),
            "nat" => Ok(Scenario {
                impairments: vec![
                    Impairment::Nat {
                        path: 0,
                        public: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
                    },
                    Impairment::Nat {
                        path: 1,
                        public: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1)),
                    },
                ],
                ..plain(
                    "nat",
                    "two-paths with the client behind a NAT (address and port rewritten) on \
                     each path; MP_JOIN finds the connection by its token",
                    two_paths(),
                    true,
                )
            }),
            n => Err(SimError::UnknownScenario(n.to_string())),
        }
    }
}

/// How to run a scenario.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub bytes: u64,
    pub seed: u64,
    /// Plain TCP instead of MPTCP.
    pub tcp: bool,
    pub cc: CcAlgorithm,
    /// Give up at this simulated time.
    pub time_limit: Duration,
    /// Write every packet (of every path, as sent) here.
    pub pcap: Option<std::path::PathBuf>,
    /// The MPTCP packet scheduler of both endpoints.
    pub scheduler: SchedulerKind,
    /// Ask for DSS checksums even if the scenario does not.
    pub checksum: bool,
    /// Record a [`TraceSample`] this often (simulated time), for plots and analysis.
    pub trace_every: Option<Duration>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            bytes: 64 << 20,
            seed: 1,
            tcp: false,
            cc: CcAlgorithm::default(),
            time_limit: Duration::from_secs(3600),
            pcap: None,
            scheduler: SchedulerKind::default(),
            checksum: false,
            trace_every: None,
        }
    }
}

/// Why a run could not be made.
#[derive(Debug)]
pub enum SimError {
    UnknownScenario(String),
    NeedsMptcp(String),
    Pcap(std::io::Error),
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimError::UnknownScenario(n) => write!(
                f,
                "unknown scenario '{n}' (known: {})",
                SCENARIOS.join(", ")
            ),
            SimError::NeedsMptcp(n) => write!(
                f,
                "scenario '{n}' needs MPTCP (several subflows or an MPTCP middlebox) and cannot \
                 run with plain TCP"
            ),
            SimError::Pcap(e) => write!(f, "cannot write pcap: {e}"),
        }
    }
}

impl std::error::Error for SimError {}

/// The outcome of a run.
#[derive(Debug, Clone)]
pub struct SimResult {
    pub scenario: &'static str,
    /// Both ends ran MPTCP to the end (negotiated, no fallback).
    pub mptcp: bool,
    /// Each endpoint's MPTCP counters (kernel MIB names).
    pub client_counters: MptcpCounters,
    pub server_counters: MptcpCounters,
    pub client: AppStats,
    pub server: AppStats,
    pub client_info: Option<ConnInfo>,
    pub server_info: Option<ConnInfo>,
    /// Per path: (client to server, server to client) link statistics.
    pub links: Vec<(LinkStats, LinkStats)>,
    /// Simulated time when the run ended.
    pub end: Instant,
    /// The run finished (both ends closed) before the time limit.
    pub completed: bool,
    /// Per impairment of the scenario, in order: what it was and how many packets it
    /// changed or dropped (for `PathDown`: packets lost to the outage, both directions).
    pub impairments: Vec<(Impairment, u64)>,
    /// One sample every [`SimConfig::trace_every`], if asked for.
    pub trace: Vec<TraceSample>,
}

/// The state of a run at one instant (see [`SimConfig::trace_every`]).
#[derive(Debug, Clone)]
pub struct TraceSample {
    pub at: Instant,
    /// Bytes the server application has read so far.
    pub delivered: u64,
    /// The client's subflows (the sending side) at that instant.
    pub subflows: Vec<SubflowStats>,
    /// Per path: bytes queued in the client-to-server direction.
    pub queued: Vec<usize>,
}

impl SimResult {
    /// The server received exactly what the client sent, all of it, and the client saw the
    /// server's clean close.
    pub fn integrity_ok(&self, bytes: u64) -> bool {
        self.completed
            && self.client.sent.bytes() == bytes
            && self.server.received.bytes() == bytes
            && self.client.sent.hex() == self.server.received.hex()
            && self.client.error.is_none()
            && self.server.error.is_none()
    }

    /// Application bytes delivered to the server per second, from the client's connect (time
    /// zero) to the last byte's delivery, in Mbit/s.
    pub fn goodput_mbps(&self) -> f64 {
        match self.server.last_byte {
            Some(t) if t > Instant::ZERO => {
                self.server.received.bytes() as f64 * 8.0 / t.as_secs_f64() / 1e6
            }
            _ => 0.0,
        }
    }

    /// The longest interval with no new in-order byte delivered to the server application
    /// (from its accept to the last byte), measured by the host as it reads.
    /// If the run did not complete, the time from the last byte (or the start) to the end
    /// of the run counts too.
    pub fn max_gap(&self) -> Duration {
        if self.completed {
            return self.server.max_gap;
        }
        let since = self
            .server
            .last_byte
            .or(self.server.started)
            .unwrap_or(Instant::ZERO);
        self.server.max_gap.max(self.end - since)
    }

    /// The delivery stalls of at least `min`: how many intervals of at least `min` passed
    /// with no new byte for the server application (from its accept to the last byte, from
    /// the recorded delivery samples), and their total length.
    pub fn stalls(&self, min: Duration) -> (usize, Duration) {
        let mut prev = self.server.started.unwrap_or(Instant::ZERO);
        let (mut count, mut total) = (0, Duration::ZERO);
        for &(t, _) in &self.server.delivery {
            let gap = t - prev;
            if gap >= min {
                count += 1;
                total += gap;
            }
            prev = t;
        }
        (count, total)
    }

    /// The longest time between two deliveries to the server application, from the
    /// recorded delivery samples (equal to [`SimResult::max_gap`] for a completed run).
    pub fn longest_delivery_gap(&self) -> Duration {
        let mut prev = self.server.started.unwrap_or(Instant::ZERO);
        let mut gap = Duration::ZERO;
        for &(t, _) in &self.server.delivery {
            gap = gap.max(t - prev);
            prev = t;
        }
        gap
    }
}

const CLIENT_PORT: u16 = 40000;
const SERVER_PORT: u16 = 5201;

fn client_addr(path: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, path as u8 + 1, 1))
}

fn server_addr(path: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, path as u8 + 1, 2))
}

fn seed_bytes(seed: u64, who: u8) -> [u8; 32] {
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&seed.to_le_bytes());
    s[8] = who;
    s
}

/// Run `scenario`: the client sends `cfg.bytes` to the server, both close.
pub fn run(scenario: &Scenario, cfg: &SimConfig) -> Result<SimResult, SimError> {
    if scenario.needs_mptcp && cfg.tcp {
        return Err(SimError::NeedsMptcp(scenario.name.to_string()));
    }
    let tcp = TcpConfig {
        cc: cfg.cc,
        ..TcpConfig::default()
    };
    // Fields EndpointConfig gains later keep their defaults.
    #[allow(clippy::needless_update)]
    let mk = |who| {
        Endpoint::new(
            EndpointConfig {
                tcp: tcp.clone(),
                mptcp_checksum: scenario.checksum || cfg.checksum,
                scheduler: cfg.scheduler,
                ..Default::default()
            },
            seed_bytes(cfg.seed, who),
        )
    };
    let n = scenario.paths.len();
    let client_addrs: Vec<IpAddr> = (0..n).map(client_addr).collect();
    let server_addrs: Vec<IpAddr> = (0..n).map(server_addr).collect();
    let mptcp = !cfg.tcp;
    let mut client = Host::new(
        mk(1),
        client_addrs.clone(),
        AppRole::Client {
            local: SocketAddr::new(client_addrs[0], CLIENT_PORT),
            remote: SocketAddr::new(server_addrs[0], SERVER_PORT),
            options: ConnectOptions { mptcp },
        },
        cfg.bytes,
    );
    if mptcp {
        //= rfc8684#3.2
        //= The client opens one more subflow per further path (MP_JOIN) once connected.
        for i in 1..n {
            client.add_join(
                SocketAddr::new(client_addrs[i], 0),
                SocketAddr::new(server_addrs[i], SERVER_PORT),
            );
        }
    }
    let server = Host::new(
        mk(2),
        server_addrs,
        AppRole::Server {
            local: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), SERVER_PORT),
            options: ListenOptions { mptcp },
        },
        0,
    );

    let mut net = Network::new(cfg.seed);
    let c = net.add_node(Box::new(client));
    let s = net.add_node(Box::new(server));
    let links: Vec<_> = scenario
        .paths
        .iter()
        .enumerate()
        .map(|(i, p)| net.add_link((c, i), (s, i), p.up.clone(), p.down.clone()))
        .collect();
    let hits: Vec<Hits> = scenario
        .impairments
        .iter()
        .map(|imp| install(&mut net, &links, imp))
        .collect();
    if let Some(path) = &cfg.pcap {
        let file = std::fs::File::create(path).map_err(SimError::Pcap)?;
        let w = PcapWriter::new(std::io::BufWriter::new(file)).map_err(SimError::Pcap)?;
        net.set_pcap(w);
    }

    let deadline = Instant::ZERO + cfg.time_limit;
    let mut trace = Vec::new();
    match cfg.trace_every.filter(|d| *d > Duration::ZERO) {
        None => {
            net.run_until(deadline, |net| both_done(net, c, s));
        }
        Some(every) => loop {
            let until = (net.now() + every).min(deadline);
            let outcome = net.run_until(until, |net| both_done(net, c, s));
            trace.push(sample(&net, c, s, &links));
            if outcome != RunOutcome::DeadlineReached || net.now() >= deadline {
                break;
            }
        },
    }
    let completed = both_done(&mut net, c, s);

    type HostView = (AppStats, Option<ConnInfo>, MptcpCounters);
    let host = |net: &Network, id| -> Option<HostView> {
        let h = net.node::<Host>(id)?;
        let info = h.connection().and_then(|k| h.endpoint().conn_info(k));
        Some((h.stats().clone(), info, h.endpoint().counters()))
    };
    let (client, client_info, client_counters) = host(&net, c).unwrap_or_default();
    let (server, server_info, server_counters) = host(&net, s).unwrap_or_default();
    let impairments = scenario
        .impairments
        .iter()
        .zip(&hits)
        .map(|(imp, h)| {
            let n = match *imp {
                Impairment::PathDown { path, .. } => links.get(path).map_or(0, |&l| {
                    let link = net.link(l);
                    link.stats(Direction::AtoB).dropped_down
                        + link.stats(Direction::BtoA).dropped_down
                }),
                _ => h.get(),
            };
            (imp.clone(), n)
        })
        .collect();
    let links = links
        .iter()
        .map(|&l| {
            let link = net.link(l);
            (*link.stats(Direction::AtoB), *link.stats(Direction::BtoA))
        })
        .collect();
    Ok(SimResult {
        scenario: scenario.name,
        mptcp: mptcp && client.mptcp && server.mptcp,
        client_counters,
        server_counters,
        client,
        server,
        client_info,
        server_info,
        links,
        end: net.now(),
        completed,
        impairments,
        trace,
    })
}

fn sample(net: &Network, c: NodeId, s: NodeId, links: &[crate::LinkId]) -> TraceSample {
    let now = net.now();
    TraceSample {
        at: now,
        delivered: net
            .node::<Host>(s)
            .map_or(0, |h| h.stats().received.bytes()),
        subflows: net
            .node::<Host>(c)
            .map_or_else(Vec::new, |h| h.stats().subflows.clone()),
        queued: links
            .iter()
            .map(|&l| net.link(l).backlog_bytes(Direction::AtoB, now))
            .collect(),
    }
}

/// Takes `link` down now, or (with `when_busy`) at the first millisecond from now on when
/// its up direction has data queued.
fn take_down(net: &mut Network, link: crate::LinkId, when_busy: bool) {
    let now = net.now();
    if when_busy && net.link(link).backlog_bytes(Direction::AtoB, now) == 0 {
        // Nothing left to send on this path means nothing to wait for: go down anyway
        // once the run is otherwise idle (the event queue then holds only this action).
        if net.pending_events() > 0 {
            net.schedule(
                now + Duration::from_millis(1),
                Box::new(move |net: &mut Network| take_down(net, link, when_busy)),
            );
            return;
        }
    }
    net.link_mut(link).set_up(false);
}

/// Puts an impairment in place on its path (nothing if the path does not exist); returns
/// the count of packets its middleboxes touch.
fn install(net: &mut Network, links: &[crate::LinkId], imp: &Impairment) -> Hits {
    let Some(&link) = links.get(imp.path()) else {
        return Hits::default();
    };
    match *imp {
        Impairment::PathDown { at, when_busy, .. } => {
            net.schedule(
                Instant::ZERO + at,
                Box::new(move |net: &mut Network| take_down(net, link, when_busy)),
            );
            Hits::default()
        }
        Impairment::StripMptcp { when, .. } => {
            let (up, down) = StripMptcp::pair(when);
            let hits = up.hits();
            let l = net.link_mut(link);
            l.add_middlebox(Direction::AtoB, Box::new(up));
            l.add_middlebox(Direction::BtoA, Box::new(down));
            hits
        }
        Impairment::CorruptPayload { skip, count, .. } => {
            let mb = CorruptPayload::new(skip, count);
            let hits = mb.hits();
            net.link_mut(link)
                .add_middlebox(Direction::AtoB, Box::new(mb));
            hits
        }
        Impairment::Nat { public, .. } => {
            let nat = Nat::new(public, 61000);
            let l = net.link_mut(link);
            l.add_middlebox(Direction::AtoB, Box::new(nat.outbound()));
            l.add_middlebox(Direction::BtoA, Box::new(nat.inbound()));
            nat.hits()
        }
    }
}

fn both_done(net: &mut Network, c: NodeId, s: NodeId) -> bool {
    let done = |id| net.node::<Host>(id).is_some_and(Host::done);
    done(c) && done(s)
}
