//! The tail loss probe: a tail of DATA that draws no SACK is probed once, well before
//! T3-rtx, with its earliest outstanding chunk; T3-rtx stays the backstop.

use super::*;

const PAYLOAD: &[u8] = &[0x3c; 600];

/// An association with a smoothed RTT of `srtt` ms (and an RTO of one second) that has
/// sent `count` small messages.
fn tail_of(count: usize, srtt: u64) -> Result<(Association, Instant, u32)> {
    let mut a = timed_test_association();
    a.cwnd = 16 * 1024;
    a.rto_mgr.srtt = srtt;
    let now = Instant::now();
    let first = a.my_next_tsn;
    let ppi = PayloadProtocolIdentifier::Binary;
    let mut stream = a.open_stream(1, ppi)?;
    for _ in 0..count {
        stream.write_sctp(now, &Bytes::from_static(PAYLOAD), ppi)?;
    }
    assert_eq!(transmitted_data(&a.gather_outbound(now).0).len(), count);
    Ok((a, now, first))
}

#[test]
fn an_unsacked_tail_is_probed_with_its_earliest_chunk_before_t3() -> Result<()> {
    let (mut a, now, first) = tail_of(3, 20)?;
    let probe_at = now + Duration::from_millis(2 * 20 + ACK_INTERVAL);
    assert_eq!(a.poll_timeout(), Some(probe_at));
    assert!(a.timers.get(Timer::T3RTX).is_some_and(|t3| t3 > probe_at));
    a.handle_timeout(probe_at);
    let probe = transmitted_data(&a.gather_outbound(probe_at).0);
    assert_eq!(probe.iter().map(|c| c.tsn).collect::<Vec<_>>(), vec![first]);
    assert_eq!(a.stats.get_num_t3timeouts(), 0);
    // One probe per tail: what comes next, with no SACK, is T3-rtx.
    let next = a.poll_timeout().unwrap();
    assert_eq!(Some(next), a.timers.get(Timer::T3RTX));
    a.handle_timeout(next);
    assert_eq!(a.stats.get_num_t3timeouts(), 1);
    Ok(())
}

#[test]
fn a_sack_of_new_data_starts_a_new_tail_and_an_empty_flight_needs_no_probe() -> Result<()> {
    let (mut a, now, first) = tail_of(3, 20)?;
    let probe_at = now + Duration::from_millis(60);
    a.handle_timeout(probe_at);
    a.gather_outbound(probe_at);
    // The probe repaired the first chunk: the peer now acknowledges it, the rest still out.
    let at = probe_at + Duration::from_millis(20);
    a.handle_sack(
        &ChunkSelectiveAck {
            cumulative_tsn_ack: first,
            advertised_receiver_window_credit: 65536,
            ..Default::default()
        },
        at,
    )?;
    let tlp = a.timers.get(Timer::Tlp);
    assert!(tlp.is_some_and(|t| t > at), "the remaining tail is probed again");
    a.handle_sack(
        &ChunkSelectiveAck {
            cumulative_tsn_ack: first.wrapping_add(2),
            advertised_receiver_window_credit: 65536,
            ..Default::default()
        },
        at,
    )?;
    assert_eq!(a.timers.get(Timer::Tlp), None);
    assert_eq!(a.timers.get(Timer::T3RTX), None);
    Ok(())
}

#[test]
fn no_probe_where_t3_would_come_first_or_has_backed_off() -> Result<()> {
    // An RTT so long that two of them exceed the RTO: T3-rtx alone.
    let (a, _, _) = tail_of(1, 500)?;
    assert_eq!(a.timers.get(Timer::Tlp), None);
    // After T3-rtx fired, its recovery runs without probes until new DATA is acknowledged.
    let (mut a, now, _) = tail_of(2, 20)?;
    a.timers.set(Timer::Tlp, None);
    let t3 = a.timers.get(Timer::T3RTX).unwrap();
    a.handle_timeout(t3);
    assert_eq!(a.stats.get_num_t3timeouts(), 1);
    a.gather_outbound(t3);
    assert_eq!(a.timers.get(Timer::Tlp), None);
    assert!(now < t3);
    Ok(())
}
