//! Failover: pairs of clients across a cluster's instances, then one instance SIGKILLed.
//! Its clients resume on the survivors with their old tokens, as the protocol's clients
//! do; the figure is how long until each of them is heard by its partner again.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::oneshot;
use tokio::time::{Instant, MissedTickBehavior, interval, sleep, timeout, timeout_at};
use tokio_tungstenite::tungstenite::Message;

use crate::clients::{self, Member, Pair, Ws};
use crate::cluster::Deployment;
use crate::target::{Kind, Server};

/// Between claims published and the kill: the owners' last word on each room has gone
/// out. (A kill in the middle of joins is another test.)
const SETTLE: Duration = Duration::from_secs(1);
/// Between two resume attempts, and between two signals that were not heard yet.
const RETRY_EVERY: Duration = Duration::from_millis(100);
/// How long one resume attempt waits for its welcome: longer than an instance keeps
/// asking a room's owner (15 s), so that no attempt is abandoned while it may still
/// succeed and use up the token.
const ATTEMPT_PATIENCE: Duration = Duration::from_secs(20);
/// The resume grace (30 s by default) and a margin: after that no id comes back.
const GIVE_UP_AFTER: Duration = Duration::from_secs(35);
/// How soon a client should see its socket end once its instance is killed.
const CLOSE_NOTICED_WITHIN: Duration = Duration::from_secs(5);
/// The `data` of the signals that say "served again"; the relayed data is opaque.
const MARKER: u64 = 0x00fa_11ed_0be7;

/// What the failover did.
#[derive(Debug, Default)]
pub struct Failover {
    pub pairs: usize,
    pub instances: usize,
    /// 1-based, as in the instances' node ids.
    pub killed: usize,
    /// Clients that were on the killed instance.
    pub victims: usize,
    /// From the kill until a signal of each resumed client reached its partner, sorted.
    pub victims_served: Vec<Duration>,
    /// Resumed clients that got their old id back.
    pub old_id_back: usize,
    /// Resume attempts of the client that needed the most.
    pub most_attempts: u32,
    /// Pairs with no client on the killed instance (their room may have moved).
    pub bystanders: usize,
    /// From the kill until such a pair's signal arrived, sorted.
    pub bystanders_served: Vec<Duration>,
    /// What went wrong or looked odd, with how often.
    pub notes: BTreeMap<String, usize>,
}

/// How one pair came through the kill.
#[derive(Default)]
struct Outcome {
    victim: bool,
    served: Option<Duration>,
    old_id_back: bool,
    attempts: u32,
    notes: Vec<String>,
    /// The pair's sockets, open until every pair is done: a pair done early must not
    /// leave (and load the cluster) while others are still measured.
    sockets: Vec<Ws>,
}

/// Opens `pairs` pairs over the deployment's instances, SIGKILLs its last instance and
/// follows every pair until it is served again (or gives up after [`GIVE_UP_AFTER`]).
pub async fn measure(deployment: &mut Deployment, pairs: usize) -> anyhow::Result<Failover> {
    let instances = deployment.instances.len();
    anyhow::ensure!(instances >= 2, "failover needs two instances");
    let opened = clients::open_pairs(&deployment.instances, pairs, "fail").await?;
    sleep(SETTLE).await;
    // Not the first: its rooms and the rooms it forwards for are both of interest, and
    // any instance but the first one is as good as another.
    let killed = instances - 1;
    let killed_port = deployment.instances[killed].port;
    deployment.kill(killed);
    let killed_at = Instant::now();
    let survivors = &deployment.instances;
    let runs = opened
        .into_iter()
        .enumerate()
        .map(|(i, pair)| follow_pair(pair, killed_port, survivors, i, killed_at));
    let outcomes = futures_util::future::join_all(runs).await;
    Ok(summarize(pairs, instances, killed + 1, outcomes))
}

/// The figures of every pair's outcome; their sockets close here.
fn summarize(pairs: usize, instances: usize, killed: usize, outcomes: Vec<Outcome>) -> Failover {
    let mut failover = Failover {
        pairs,
        instances,
        killed,
        ..Failover::default()
    };
    for outcome in outcomes {
        if outcome.victim {
            failover.victims += 1;
            failover.victims_served.extend(outcome.served);
            failover.old_id_back += usize::from(outcome.old_id_back);
            failover.most_attempts = failover.most_attempts.max(outcome.attempts);
        } else {
            failover.bystanders += 1;
            failover.bystanders_served.extend(outcome.served);
        }
        for note in outcome.notes {
            *failover.notes.entry(note).or_default() += 1;
        }
    }
    failover.victims_served.sort_unstable();
    failover.bystanders_served.sort_unstable();
    failover
}

/// One pair through the kill: a client that was on the killed instance resumes on a
/// survivor and signals its partner; a pair untouched by the kill just signals, as its
/// room may have been owned by the killed instance.
async fn follow_pair(
    pair: Pair,
    killed_port: u16,
    survivors: &[Server],
    index: usize,
    killed_at: Instant,
) -> Outcome {
    let Pair { kind, room, a, b } = pair;
    let victim = a.port == killed_port || b.port == killed_port;
    let (sender, receiver) = if b.port == killed_port {
        (b, a)
    } else {
        (a, b)
    };
    let deadline = killed_at + GIVE_UP_AFTER;
    let (heard_tx, heard_rx) = oneshot::channel();
    let mut outcome = Outcome {
        victim,
        ..Outcome::default()
    };
    let mut receiver_notes = Vec::new();
    let to = receiver.id.clone();
    let sending = async {
        let mut sender = sender;
        if victim {
            // Spread the resumes over the survivors, as clients picking at random would.
            let first = index % survivors.len();
            let old_id = sender.id.clone();
            let resumed = resume_elsewhere(sender, survivors, first, &room, deadline).await;
            outcome.attempts = resumed.attempts;
            outcome.notes.extend(resumed.failures);
            sender = resumed.member?;
            outcome.old_id_back = sender.id == old_id;
        }
        let heard = signal_until_heard(&mut sender.ws, kind, &to, deadline, heard_rx).await;
        outcome.sockets.push(sender.ws);
        heard
    };
    let (receiver_ws, heard) = tokio::join!(
        watch_receiver(receiver.ws, deadline, heard_tx, &mut receiver_notes),
        sending
    );
    match heard {
        Ok(at) => outcome.served = Some(at.saturating_duration_since(killed_at)),
        Err(e) => outcome.notes.push(format!("{e:#}")),
    }
    outcome.notes.append(&mut receiver_notes);
    outcome.sockets.extend(receiver_ws);
    outcome
}

/// A client's resume after its instance died: the member it became, the attempts it took
/// and why the failed ones failed.
struct Resumed {
    member: anyhow::Result<Member>,
    attempts: u32,
    failures: Vec<String>,
}

/// Waits for the client to notice its socket gone, then sends `join` with its token to
/// the survivors in turn, every [`RETRY_EVERY`], until one welcomes it.
async fn resume_elsewhere(
    client: Member,
    survivors: &[Server],
    first: usize,
    room: &str,
    deadline: Instant,
) -> Resumed {
    let mut resumed = Resumed {
        member: Err(anyhow!("no resume attempt before the deadline")),
        attempts: 0,
        failures: Vec::new(),
    };
    let Some(token) = client.token.clone() else {
        resumed.member = Err(anyhow!("the welcome carried no resume token"));
        return resumed;
    };
    if let Err(e) = wait_closed(client.ws).await {
        resumed.failures.push(format!("{e:#}"));
    }
    while Instant::now() < deadline {
        let server = &survivors[(first + resumed.attempts as usize) % survivors.len()];
        resumed.attempts += 1;
        match timeout(ATTEMPT_PATIENCE, clients::resume(server, room, &token)).await {
            Ok(Ok(member)) => {
                resumed.member = Ok(member);
                return resumed;
            }
            Ok(Err(e)) => resumed
                .failures
                .push(format!("resume attempt failed: {e:#}")),
            Err(_) => resumed.failures.push(format!(
                "resume attempt got no welcome within {ATTEMPT_PATIENCE:?}"
            )),
        }
        sleep(RETRY_EVERY).await;
    }
    resumed.member = Err(anyhow!("not resumed within {GIVE_UP_AFTER:?} of the kill"));
    resumed
}

/// Reads the socket of a killed instance to its end, as a client learns that it must
/// reconnect.
async fn wait_closed(mut ws: Ws) -> anyhow::Result<()> {
    let ended = timeout(CLOSE_NOTICED_WITHIN, async {
        while let Some(Ok(message)) = ws.next().await {
            if let Message::Close(_) = message {
                break;
            }
        }
    })
    .await;
    ended.map_err(|_| anyhow!("socket still open {CLOSE_NOTICED_WITHIN:?} after the kill"))
}

/// Signals `to` every [`RETRY_EVERY`] until its watcher reports one heard; returns when.
async fn signal_until_heard(
    ws: &mut Ws,
    kind: Kind,
    to: &str,
    deadline: Instant,
    mut heard: oneshot::Receiver<Instant>,
) -> anyhow::Result<Instant> {
    let mut ticks = interval(RETRY_EVERY);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            at = &mut heard => return at.context("its partner's socket ended unheard"),
            _ = ticks.tick() => {
                if Instant::now() >= deadline {
                    bail!("its partner heard none of its signals within {GIVE_UP_AFTER:?}");
                }
                ws.send(Message::text(kind.signal(to, MARKER)))
                    .await
                    .context("signal not sent")?;
            }
            // Reading keeps the server's answers (an `unknown-peer`, say) from piling up,
            // and says what they were.
            frame = clients::next_json(ws) => {
                let frame = frame.context("its socket ended after the resume")?;
                if frame["type"] == "error" {
                    bail!("its signal was refused: {}", frame["code"]);
                }
            }
        }
    }
}

/// Reads the partner's socket until the marker signal arrives (reported on `heard`), the
/// socket ends, or the deadline; notes frames a failover should not cause. Returns the
/// socket if it is still open.
async fn watch_receiver(
    mut ws: Ws,
    deadline: Instant,
    heard: oneshot::Sender<Instant>,
    notes: &mut Vec<String>,
) -> Option<Ws> {
    loop {
        let frame = match timeout_at(deadline, clients::next_json(&mut ws)).await {
            Err(_) => return Some(ws),
            Ok(Err(e)) => {
                notes.push(format!("a partner's socket ended: {e:#}"));
                return None;
            }
            Ok(Ok(frame)) => frame,
        };
        match frame["type"].as_str() {
            Some("signal") if frame["data"].as_u64() == Some(MARKER) => {
                let _ = heard.send(Instant::now());
                return Some(ws);
            }
            Some("peer-left") => notes.push("a partner saw peer-left for its peer".into()),
            Some("peer-joined") => notes.push("a partner saw its peer join anew".into()),
            Some("error") => notes.push(format!("a partner got error {}", frame["code"])),
            _ => {}
        }
    }
}
