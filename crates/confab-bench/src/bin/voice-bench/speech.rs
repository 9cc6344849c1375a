//! How speech sounds through Confab under random UDP loss, scored with wide-band PESQ and
//! STOI, next to two anchors computed in the same run with the same codec: the ceiling
//! (Opus with nothing lost) and plain Opus with a perfect receiver at each loss rate.
//!
//! - [`reference`](mod@reference): the speech (espeak-ng, sox);
//! - [`call`]: Confab end to end, two `confab peer` processes in a lossy namespace;
//! - [`anchors`]: the codec alone, in-process;
//! - [`score`]: PESQ-WB and STOI, by `pesq_score.py`;
//! - [`playout`]: Confab's own account of the call's frames;
//! - [`process`], [`wav`], [`interrupt`]: what those share.
//!
//! Each part that lacks something (root, nftables, the `confab` binary, espeak-ng, sox,
//! Python's `pesq` and `pystoi`) is skipped with a line saying what is missing.

mod anchors;
pub mod call;
mod interrupt;
pub mod playout;
pub mod process;
mod reference;
mod score;
mod wav;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context;

use playout::Playout;
use score::Score;

#[derive(Debug)]
pub struct Options {
    /// Loss rates, in percent.
    pub losses: Vec<u8>,
    pub confab: PathBuf,
    /// Keep the WAVs here instead of in a temporary folder removed at the end.
    pub keep_audio: Option<PathBuf>,
}

/// One loss rate's figures; `Err` holds why a figure is missing.
struct Row {
    loss: u8,
    confab: Result<(Score, Option<Playout>), String>,
    plain: Result<Score, String>,
}

pub fn run(runtime: &tokio::runtime::Runtime, options: &Options) -> anyhow::Result<()> {
    let mut missing = tools_missing();
    missing.extend(score::missing());
    if !missing.is_empty() {
        println!("\nspeech quality: skipped, missing {}", missing.join(", "));
        return Ok(());
    }
    let confab_missing = call::missing(&options.confab);
    if !confab_missing.is_empty() {
        println!(
            "\nspeech quality through Confab: skipped, missing {}; the anchors still run",
            confab_missing.join(", ")
        );
    }
    interrupt::catch(runtime);
    let started = Instant::now();
    let dir = WorkDir::new(options.keep_audio.as_deref())?;
    let reference = reference::make(dir.path())?;
    eprintln!(
        "speech quality: {:.1} s of speech, loss {:?} %",
        reference.seconds(),
        options.losses
    );
    let ceiling = anchor(
        &reference,
        dir.path(),
        "ceiling",
        anchors::ceiling(&reference.samples),
    )?;
    let mut rows = Vec::new();
    for &loss in &options.losses {
        interrupt::check()?;
        let confab = if confab_missing.is_empty() {
            let result = through_confab(options, &reference, dir.path(), loss);
            // Ctrl-C ends the run here; any other failure is one empty cell.
            interrupt::check()?;
            result.map_err(|e| {
                eprintln!("  loss {loss} %: Confab: {e:#}");
                "failed".to_owned()
            })
        } else {
            Err("skipped".to_owned())
        };
        // Expecting no loss, plain Opus is the ceiling itself.
        let plain = if loss == 0 {
            Ok(ceiling)
        } else {
            let decoded = anchors::perfect_receiver(&reference.samples, loss);
            anchor(&reference, dir.path(), &format!("opus-{loss}"), decoded)
        };
        let plain = plain.map_err(|e| {
            eprintln!("  loss {loss} %: plain Opus: {e:#}");
            "failed".to_owned()
        });
        rows.push(Row {
            loss,
            confab,
            plain,
        });
    }
    print_table(&reference, &ceiling, &rows, started.elapsed());
    if let Some(kept) = &options.keep_audio {
        println!("the WAVs are in {}", kept.display());
    }
    Ok(())
}

/// A call at `loss` %, scored.
fn through_confab(
    options: &Options,
    reference: &reference::Reference,
    dir: &Path,
    loss: u8,
) -> anyhow::Result<(Score, Option<Playout>)> {
    let recording = dir.join(format!("confab-{loss}.wav"));
    let speech = Duration::from_secs_f64(reference.seconds());
    let playout = call::Call {
        confab: &options.confab,
        reference: &reference.path,
        speech,
        loss_percent: loss,
        recording: &recording,
    }
    .record()?;
    let score = score::score(&reference.path, &recording)?;
    eprintln!(
        "  loss {loss} %: Confab {:.2} ({:.2}); the speech found {:.2} s into B's recording, \
         its delay moving by {:.0} ms",
        score.pesq_wb,
        score.stoi,
        score.offset_ms / 1000.0,
        score.delay_moved_ms
    );
    Ok((score, playout))
}

/// An in-process anchor's output, written as `NAME.wav` and scored.
fn anchor(
    reference: &reference::Reference,
    dir: &Path,
    name: &str,
    decoded: anyhow::Result<anchors::Decoded>,
) -> anyhow::Result<Score> {
    let decoded = decoded?;
    let path = dir.join(format!("{name}.wav"));
    wav::write(&path, &decoded.samples)?;
    let score = score::score(&reference.path, &path)?;
    eprintln!(
        "  {name}: {:.2} ({:.2}); {} of {} packets lost, {} of those rebuilt from FEC",
        score.pesq_wb, score.stoi, decoded.lost, decoded.packets, decoded.rebuilt
    );
    Ok(score)
}

fn print_table(reference: &reference::Reference, ceiling: &Score, rows: &[Row], took: Duration) {
    println!(
        "\nspeech quality: PESQ-WB (STOI) of {:.1} s of espeak-ng speech, Opus 32 kb/s in \
         {} ms frames; random UDP loss (nftables); run took {:.0} s",
        reference.seconds(),
        confab_audio::FRAME_MS,
        took.as_secs_f64()
    );
    println!(
        "{:>5}  {:<14} {:<30} {:<14} Confab's playout of the call",
        "loss", "Confab", "plain Opus, perfect receiver", "ceiling"
    );
    let cell = |score: &Score| format!("{:.2} ({:.2})", score.pesq_wb, score.stoi);
    for row in rows {
        let (confab, playout) = match &row.confab {
            Ok((score, playout)) => (
                cell(score),
                playout
                    .as_ref()
                    .map_or_else(String::new, Playout::to_string),
            ),
            Err(why) => (why.clone(), String::new()),
        };
        let plain = row.plain.as_ref().map_or_else(Clone::clone, cell);
        println!(
            "{:>3} %  {confab:<14} {plain:<30} {:<14} {playout}",
            row.loss,
            cell(ceiling)
        );
    }
}

/// What making the reference needs.
fn tools_missing() -> Vec<String> {
    [
        (
            "espeak-ng",
            "--version",
            "espeak-ng (apt-get install espeak-ng)",
        ),
        ("sox", "--version", "sox (apt-get install sox)"),
    ]
    .into_iter()
    .filter(|(program, arg, _)| {
        !Command::new(program)
            .arg(arg)
            .output()
            .is_ok_and(|out| out.status.success())
    })
    .map(|(_, _, what)| what.to_owned())
    .collect()
}

/// Where the run's WAVs go: a temporary folder removed at the end, however the run ends,
/// or one the user keeps.
struct WorkDir {
    path: PathBuf,
    remove: bool,
}

impl WorkDir {
    fn new(keep: Option<&Path>) -> anyhow::Result<Self> {
        let (path, remove) = match keep {
            Some(dir) => (dir.to_owned(), false),
            None => (
                std::env::temp_dir().join(format!("confab-voice-bench-{}", std::process::id())),
                true,
            ),
        };
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self { path, remove })
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}
