//! Keeping a flow's packets in order through the device's GSO coalescing.
//!
//! `tun_rs` coalesces a batch's TCP segments per flow: each data segment is appended to the
//! earlier segment of its flow it continues (same ACK, same options), and the merged packet
//! is written where that earlier segment stood. A segment it cannot coalesce (no payload, or
//! a flag beside ACK and PSH) is written where it stands. So when a flow's pure ACK lies
//! between two of its data segments, the second segment's bytes overtake the ACK: the peer
//! then receives an ACK whose sequence number lies below what it has already acknowledged,
//! takes it for an old duplicate, and drops it with everything it carried (an ADD_ADDR echo,
//! a DATA_FIN, a window update: seen as a lost ADD_ADDR echo against the kernel).
//!
//! So a batch is written in generations: a flow's data segment that follows one of its own
//! segments that cannot be coalesced opens the flow's next generation, and each generation
//! is written after the one before. Every flow keeps its own order (only the order between
//! flows changes), and the other flows' segments still coalesce across the whole batch.

use std::collections::HashMap;
use std::net::IpAddr;
use std::ops::Range;

use braid_proto::wire::ip::PROTOCOL_TCP;
use braid_proto::wire::{Ipv4Packet, Ipv6Packet, Ipv6Repr, TcpFlags, TcpPacket};

/// Flows a batch tracks in a list before it switches to a map.
const FEW: usize = 16;

/// A flow's place in the batch being arranged.
#[derive(Default, Clone, Copy)]
struct Flow {
    /// The generation its next segment goes in.
    generation: u32,
    /// That generation already holds one of its segments the coalescing leaves in place.
    fixed: bool,
}

/// A TCP flow as the packet names it: both addresses and ports.
type FlowKey = (IpAddr, IpAddr, u16, u16);

/// What the coalescing does with one packet: `None` for anything but TCP.
struct Seen {
    flow: FlowKey,
    /// Data with only ACK (and PSH) set: the coalescing may merge it.
    candidate: bool,
}

fn inspect(packet: &[u8]) -> Option<Seen> {
    // Where the TCP segment lies in the packet (the views check every length first).
    let (src, dst, l4): (IpAddr, IpAddr, Range<usize>) = match packet.first()? >> 4 {
        4 => {
            let ip = Ipv4Packet::new_checked(packet).ok()?;
            (ip.protocol() == PROTOCOL_TCP).then_some(())?;
            let l4 = ip.header_len()..usize::from(ip.total_len());
            (ip.src_addr().into(), ip.dst_addr().into(), l4)
        }
        6 => {
            let ip = Ipv6Packet::new_checked(packet).ok()?;
            (ip.next_header() == PROTOCOL_TCP).then_some(())?;
            let l4 = Ipv6Repr::HEADER_LEN..Ipv6Repr::HEADER_LEN + usize::from(ip.payload_len());
            (ip.src_addr().into(), ip.dst_addr().into(), l4)
        }
        _ => return None,
    };
    let tcp = TcpPacket::new_checked(packet.get(l4)?).ok()?;
    let flags = tcp.flags().0 & !TcpFlags::PSH;
    Some(Seen {
        flow: (src, dst, tcp.src_port(), tcp.dst_port()),
        candidate: flags == TcpFlags::ACK && !tcp.payload().is_empty(),
    })
}

/// Puts `packets` (each after `head` bytes of headroom) in the order they can be written in
/// without a flow's data overtaking its own segments that cannot be coalesced, and returns
/// the runs to write one after the other (one run, the whole batch unmoved, when no flow
/// needs this).
pub(crate) fn arrange(packets: &mut [Vec<u8>], head: usize) -> Vec<Range<usize>> {
    // Per flow: its current generation, and whether that already holds a segment the
    // coalescing leaves where it is. A batch of a few flows looks them up in a list; one of
    // many (a thousand connections' ACKs) in a map.
    let mut few: Vec<(FlowKey, Flow)> = Vec::new();
    let mut many: HashMap<FlowKey, Flow> = HashMap::new();
    let mut gens: Vec<u32> = Vec::with_capacity(packets.len());
    let mut last = 0;
    for p in packets.iter() {
        let Some(seen) = p.get(head..).and_then(inspect) else {
            gens.push(0);
            continue;
        };
        let f = if many.is_empty() && few.len() < FEW {
            let i = match few.iter().position(|f| f.0 == seen.flow) {
                Some(i) => i,
                None => {
                    few.push((seen.flow, Flow::default()));
                    few.len() - 1
                }
            };
            &mut few[i].1
        } else {
            if many.is_empty() {
                many.extend(few.drain(..));
            }
            many.entry(seen.flow).or_default()
        };
        if seen.candidate && f.fixed {
            f.generation += 1;
            f.fixed = false;
        } else if !seen.candidate {
            f.fixed = true;
        }
        gens.push(f.generation);
        last = last.max(f.generation);
    }
    if last == 0 {
        return std::iter::once(0..packets.len()).collect();
    }
    // A stable sort by generation keeps each flow's order within a generation.
    let mut tagged: Vec<(u32, Vec<u8>)> = gens
        .iter()
        .zip(packets.iter_mut())
        .map(|(&g, p)| (g, std::mem::take(p)))
        .collect();
    tagged.sort_by_key(|t| t.0);
    let mut runs = Vec::new();
    let mut start = 0;
    let mut current = 0;
    for (i, (g, p)) in tagged.into_iter().enumerate() {
        if let Some(slot) = packets.get_mut(i) {
            *slot = p;
        }
        if g != current {
            runs.push(start..i);
            start = i;
            current = g;
        }
    }
    runs.push(start..packets.len());
    runs
}

#[cfg(test)]
mod tests {
    use super::*;
    use braid_proto::wire::{emit_tcp_packet, TcpFlags, TcpOptions, TcpRepr};
    use std::net::IpAddr;

    const HEAD: usize = 10;

    fn packet(src: &str, sport: u16, seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
        let src: IpAddr = src.parse().unwrap();
        let dst: IpAddr = if src.is_ipv4() {
            "10.0.0.1".parse().unwrap()
        } else {
            "fd00::1".parse().unwrap()
        };
        let repr = TcpRepr {
            src_port: sport,
            dst_port: 80,
            seq,
            ack: 1,
            flags: TcpFlags(flags),
            window: 100,
            urgent: 0,
            options: TcpOptions::default(),
        };
        let mut buf = vec![0u8; 2048];
        let n = emit_tcp_packet(&mut buf, src, dst, 64, &repr, payload).unwrap();
        let mut p = vec![0u8; HEAD];
        p.extend_from_slice(&buf[..n]);
        p
    }

    fn data(src: &str, sport: u16, seq: u32) -> Vec<u8> {
        packet(src, sport, seq, TcpFlags::ACK, &[7u8; 100])
    }

    fn pure_ack(src: &str, sport: u16, seq: u32) -> Vec<u8> {
        packet(src, sport, seq, TcpFlags::ACK, &[])
    }

    /// The first payload byte's marker of each packet, in the order given.
    fn order(batch: &[Vec<u8>]) -> Vec<(u16, u32)> {
        batch
            .iter()
            .map(|p| {
                let ip = &p[HEAD..];
                let iph = if ip[0] >> 4 == 4 {
                    usize::from(ip[0] & 15) * 4
                } else {
                    40
                };
                let tcp = &ip[iph..];
                let port = u16::from_be_bytes([tcp[0], tcp[1]]);
                let seq = u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]);
                (port, seq)
            })
            .collect()
    }

    #[test]
    fn a_flows_data_after_its_pure_ack_goes_in_the_next_run() {
        for src in ["10.0.0.2", "fd00::2"] {
            let mut batch = vec![
                data(src, 1000, 1),
                data(src, 2000, 1),
                pure_ack(src, 1000, 101),
                data(src, 1000, 101),
                data(src, 2000, 101),
                data(src, 1000, 201),
            ];
            let runs = arrange(&mut batch, HEAD);
            assert_eq!(runs, vec![0..4, 4..6], "{src}");
            // Flow 2000 stays together in the first run; flow 1000 keeps its order.
            assert_eq!(
                order(&batch),
                vec![
                    (1000, 1),
                    (2000, 1),
                    (1000, 101),
                    (2000, 101),
                    (1000, 101),
                    (1000, 201)
                ],
                "{src}"
            );
        }
    }

    #[test]
    fn a_batch_of_many_flows_keeps_each_flows_order() {
        // 40 flows (past the list, into the map), each: data, pure ACK, data.
        let mut batch = Vec::new();
        for round in 0..3u32 {
            for port in 1000..1040u16 {
                batch.push(match round {
                    1 => pure_ack("10.0.0.2", port, 101),
                    r => data("10.0.0.2", port, 1 + 100 * r / 2),
                });
            }
        }
        let runs = arrange(&mut batch, HEAD);
        assert_eq!(runs, vec![0..80, 80..120]);
        let got = order(&batch);
        for port in 1000..1040u16 {
            let mine: Vec<u32> = got
                .iter()
                .filter(|(p, _)| *p == port)
                .map(|x| x.1)
                .collect();
            assert_eq!(mine, vec![1, 101, 101], "flow {port}");
        }
    }

    #[test]
    fn a_batch_without_such_a_flow_is_left_as_it_is() {
        let mut batch = vec![
            data("10.0.0.2", 1000, 1),
            pure_ack("10.0.0.2", 2000, 1),
            data("10.0.0.2", 1000, 101),
            vec![0u8; HEAD + 3],
            pure_ack("10.0.0.2", 1000, 201),
        ];
        let before = batch.clone();
        let one = |r: std::ops::Range<usize>| std::iter::once(r).collect::<Vec<_>>();
        assert_eq!(arrange(&mut batch, HEAD), one(0..5));
        assert_eq!(batch, before);
        assert_eq!(arrange(&mut [], HEAD), one(0..0));
    }

    #[test]
    fn a_fin_counts_as_a_segment_left_in_place_and_generations_stack() {
        let mut batch = vec![
            packet(
                "10.0.0.2",
                1000,
                1,
                TcpFlags::ACK | TcpFlags::FIN,
                &[1u8; 10],
            ),
            data("10.0.0.2", 1000, 12),
            pure_ack("10.0.0.2", 1000, 112),
            data("10.0.0.2", 1000, 112),
        ];
        assert_eq!(arrange(&mut batch, HEAD), vec![0..1, 1..3, 3..4]);
        assert_eq!(
            order(&batch),
            vec![(1000, 1), (1000, 12), (1000, 112), (1000, 112)]
        );
    }
}
