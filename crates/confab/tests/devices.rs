//! Real sound devices: `confab peer` with cpal on a PulseAudio daemon of the test's own,
//! whose null sinks stand in for microphones and speakers, tones and speech, idle and with
//! two busy loops per core; and a peer with no sound server at all.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use common::pulse::Pulse;
use common::{Process, WAIT, chat_open, connected_id, server, tone_in_recording};
use confab_audio::dsp::{Tone, goertzel_dbfs};
use confab_audio::wav::WavSink;
use confab_testkit::cpu_hogs::CpuHogs;
use serde_json::Value;

/// A 48 kHz mono WAV of a tone at -12 dBFS, as `sine:HZ` plays it.
fn write_tone(path: &Path, hz: f64, seconds: f64) {
    let mut tone = vec![0.0f32; (48_000.0 * seconds) as usize];
    Tone::new(hz).fill(&mut tone);
    let mut wav = WavSink::create(path).unwrap();
    wav.write(&tone).unwrap();
    wav.finish().unwrap();
}

/// The tests with a sound server take turns: each one's busy loops are meant to be the
/// only load beside its own peers.
static SOUND_SERVER: Mutex<()> = Mutex::new(());

/// How long each repeat of the speech lasts: a recording of whole repeats holds the same
/// speech whichever moment it starts at.
const SPEECH_REPEAT_S: f64 = 3.0;

/// A WAV of sentences read by `espeak-ng`, padded with silence to [`SPEECH_REPEAT_S`] and
/// repeated for 30 s.
fn write_speech(dir: &Path) -> PathBuf {
    let spoken = dir.join("espeak.wav");
    let status = Command::new("espeak-ng")
        .arg("-w")
        .arg(&spoken)
        .arg("Can you hear me? The call holds up well.")
        .status()
        .expect("espeak-ng (scripts/test.sh installs it)");
    assert!(status.success());
    let mut reader = hound::WavReader::open(&spoken).unwrap();
    let spec = reader.spec();
    let speech: Vec<i16> = reader.samples::<i16>().map(Result::unwrap).collect();
    let repeat = (f64::from(spec.sample_rate) * SPEECH_REPEAT_S) as usize;
    assert!(speech.len() < repeat, "{} samples", speech.len());
    let looped = dir.join("speech.wav");
    let mut writer = hound::WavWriter::create(&looped, spec).unwrap();
    for _ in 0..(30.0 / SPEECH_REPEAT_S) as usize {
        for i in 0..repeat {
            writer
                .write_sample(speech.get(i).copied().unwrap_or(0))
                .unwrap();
        }
    }
    writer.finalize().unwrap();
    looped
}

/// The level of everything in a recording (dBFS, mean square).
fn rms_dbfs(samples: &[f32]) -> f32 {
    let power = samples.iter().map(|s| s * s).sum::<f32>() / samples.len().max(1) as f32;
    10.0 * power.max(1e-12).log10()
}

fn peer_args<'a>(url: &'a str, name: &'a str, input: &'a str, output: &'a str) -> Vec<&'a str> {
    vec![
        "peer",
        "--server",
        url,
        "--room",
        "devices",
        "--name",
        name,
        "--audio-in",
        input,
        "--audio-out",
        output,
    ]
}

/// A with `input` and `output`, and B with `mic_b`'s monitor and `spk_b`, answering
/// calls by itself, each with a chat channel open to the other: A, its id, B, its id.
fn peers(
    url: &str,
    env: &[(&str, &str)],
    [input, output]: [&str; 2],
) -> (Process, String, Process, String) {
    let a = Process::spawn_with_env(&peer_args(url, "A", input, output), env);
    let a_id = connected_id(&a);
    let mut b_args = peer_args(url, "B", "device:mic_b.monitor", "device:spk_b");
    b_args.push("--auto-accept-calls");
    let b = Process::spawn_with_env(&b_args, env);
    let b_id = connected_id(&b);
    chat_open(&a, &b_id);
    chat_open(&b, &a_id);
    (a, a_id, b, b_id)
}

/// A tone's level in each 100 ms window of a recording.
fn window_levels(samples: &[f32], hz: f64) -> Vec<f32> {
    samples
        .chunks_exact(4800)
        .map(|window| goertzel_dbfs(window, hz))
        .collect()
}

/// The median of window levels, so that a device glitch here and there (a null sink on a
/// busy machine drops a few samples now and then) does not decide the result.
fn median(mut levels: Vec<f32>) -> f32 {
    levels.sort_by(f32::total_cmp);
    levels.get(levels.len() / 2).copied().unwrap_or(f32::MIN)
}

/// A tone's level in a recording: the median over 100 ms windows.
fn tone_level(samples: &[f32], hz: f64) -> f32 {
    median(window_levels(samples, hz))
}

/// A tone's median level over 100 ms windows, how many windows fell 6 dB or more below
/// it, and the silent gaps (half a millisecond or more of nothing, where a sound server
/// had no samples to play): whether a drop was everywhere or in gaps.
fn window_profile(samples: &[f32], hz: f64) -> String {
    let levels = window_levels(samples, hz);
    let windows = levels.len();
    let median = median(levels.clone());
    let low = levels.iter().filter(|l| **l < median - 6.0).count();
    let gaps: Vec<usize> = samples
        .chunk_by(|a, b| (a.abs() < 1e-4) == (b.abs() < 1e-4))
        .filter(|run| run[0].abs() < 1e-4 && run.len() >= 24)
        .map(<[f32]>::len)
        .collect();
    format!(
        "{hz} Hz {median:.1} dBFS, {low} of {windows} windows 6 dB below, {} silent gaps \
         ({:.1} ms)",
        gaps.len(),
        gaps.iter().sum::<usize>() as f64 / 48.0
    )
}

/// How `listener` played `speaker`'s voice (it hangs up, and says so on stderr: "voice
/// from ...: frames played, concealed, late, stretched"), and the last lines each wrote:
/// for the message of a level that came out wrong, so that it says whether the voice came
/// late, was lost or stretched, or left the listener whole.
fn playout_at(listener: &mut Process, speaker: &Process) -> String {
    listener.send(r#"{"cmd":"hangup"}"#);
    std::thread::sleep(Duration::from_secs(1));
    format!(
        "the listener: {}\nthe speaker: {}",
        listener.state(),
        speaker.state()
    )
}

fn level_of(e: &Value, peer: &str, above: f64) -> bool {
    e["event"] == "level" && e["peer"] == peer && e["dbfs"].as_f64().unwrap_or(-200.0) > above
}

/// A uses the system's default microphone and speaker, B names its devices. A tone played
/// into A's microphone comes out of B's speaker, and B's out of A's; A switches to another
/// microphone mid-call and B hears the new one; B turns A down; the sound server dies and
/// the call goes on.
#[test]
fn real_devices_carry_tones_both_ways_and_switch_mid_call() {
    let _turn = SOUND_SERVER.lock().unwrap_or_else(|e| e.into_inner());
    let mut pulse = Pulse::start(&["mic_a", "mic_a2", "spk_a", "mic_b", "spk_b"]);
    assert!(pulse.pactl(&["set-default-source", "mic_a.monitor"]));
    assert!(pulse.pactl(&["set-default-sink", "spk_a"]));
    let env = [("PULSE_SERVER", pulse.server.as_str())];
    let root = std::env::temp_dir().join(format!("confab-devices-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    for hz in [440, 660, 880] {
        write_tone(&root.join(format!("{hz}.wav")), f64::from(hz), 30.0);
    }
    let (_server, url) = server();
    let (mut a, a_id, mut b, b_id) = peers(&url, &env, ["default", "default"]);

    a.send(r#"{"cmd":"devices"}"#);
    let devices = a.event(WAIT, "devices", |e| e["event"] == "devices");
    let ids = |list: &str| -> Vec<(String, bool)> {
        devices[list]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| (d["id"].as_str().unwrap().to_owned(), d["default"] == true))
            .collect()
    };
    let (inputs, outputs) = (ids("inputs"), ids("outputs"));
    assert!(
        inputs.contains(&("mic_a.monitor".into(), true)),
        "{inputs:?}"
    );
    assert!(
        inputs.contains(&("spk_b.monitor".into(), false)),
        "{inputs:?}"
    );
    assert!(outputs.contains(&("spk_a".into(), true)), "{outputs:?}");
    assert_eq!(outputs.len(), 5, "{outputs:?}");

    // RNNoise takes a steady tone for noise: off, so that levels can be checked.
    for peer in [&mut a, &mut b] {
        peer.send(r#"{"cmd":"set-audio","noise_suppression":false}"#);
    }
    let mut players = vec![
        pulse.play("mic_a", &root.join("440.wav")),
        pulse.play("mic_a2", &root.join("660.wav")),
        pulse.play("mic_b", &root.join("880.wav")),
    ];
    a.send(r#"{"cmd":"call"}"#);
    b.event(WAIT, "A's tone at B", |e| level_of(e, &a_id, -30.0));
    a.event(WAIT, "B's tone at A", |e| level_of(e, &b_id, -30.0));

    let at_b = pulse.record("spk_b.monitor", 2.0);
    let at_a = pulse.record("spk_a.monitor", 2.0);
    let (b440, b880) = (tone_level(&at_b, 440.0), tone_level(&at_b, 880.0));
    let (a880, a440) = (tone_level(&at_a, 880.0), tone_level(&at_a, 440.0));
    eprintln!(
        "B's speaker: 440 Hz {b440:.1} dBFS, 880 Hz {b880:.1}; A's: 880 {a880:.1}, 440 {a440:.1}"
    );
    assert!(b440 > -25.0 && b880 < -40.0);
    assert!(a880 > -25.0 && a440 < -40.0);

    // Two busy loops per core, as a parallel build keeps a machine: each tone holds its
    // level within 3 dB. The microphones are recorded at the same time, so that a failure
    // says whether the tone was lost on its way in (the players feeding them) or in the
    // peers.
    {
        let _hogs = CpuHogs::start(2);
        std::thread::sleep(Duration::from_secs(1));
        let [at_b, at_a, mic_a, mic_b] = pulse.record_together(
            [
                "spk_b.monitor",
                "spk_a.monitor",
                "mic_a.monitor",
                "mic_b.monitor",
            ],
            2.0,
        );
        let (busy_b, busy_a) = (tone_level(&at_b, 440.0), tone_level(&at_a, 880.0));
        let profile = format!(
            "two busy loops per core: B's speaker {}; A's speaker {}; A's microphone {}; \
             B's microphone {}",
            window_profile(&at_b, 440.0),
            window_profile(&at_a, 880.0),
            window_profile(&mic_a, 440.0),
            window_profile(&mic_b, 880.0),
        );
        eprintln!("{profile}");
        assert!(
            (busy_b - b440).abs() <= 3.0,
            "{busy_b} under load, {b440} idle; {profile}"
        );
        assert!(
            (busy_a - a880).abs() <= 3.0,
            "{busy_a} under load, {a880} idle; {profile}"
        );
    }

    a.send(r#"{"cmd":"set-audio","input":"device:mic_a2.monitor"}"#);
    a.event(WAIT, "the new microphone", |e| {
        e["event"] == "audio"
            && e["input"] == "device:mic_a2.monitor"
            && e["input_name"].is_string()
    });
    std::thread::sleep(Duration::from_millis(500));
    let at_b = pulse.record("spk_b.monitor", 1.0);
    let (b660, b440) = (tone_level(&at_b, 660.0), tone_level(&at_b, 440.0));
    eprintln!(
        "after the switch, B's speaker: {}, 440 Hz {b440:.1}",
        window_profile(&at_b, 660.0)
    );
    if !(b660 > -25.0 && b440 < -40.0) {
        panic!("{}", playout_at(&mut b, &a));
    }

    // B turns A down to a quarter: 12 dB less at B's speaker.
    b.send(&format!(
        r#"{{"cmd":"volume","peer":"{a_id}","volume":0.25}}"#
    ));
    std::thread::sleep(Duration::from_millis(300));
    let at_b = pulse.record("spk_b.monitor", 1.0);
    let quieter = tone_level(&at_b, 660.0);
    eprintln!(
        "at a quarter of the volume: {}",
        window_profile(&at_b, 660.0)
    );
    if (quieter - (b660 - 12.0)).abs() >= 4.0 {
        panic!("{quieter} after {b660}: {}", playout_at(&mut b, &a));
    }

    // The sound server dies. (A device merely unplugged is not an error: PulseAudio moves
    // its streams to another device.) Both are told; the call and the peers go on, and
    // hanging up and quitting work.
    for player in &mut players {
        let _ = player.kill();
        let _ = player.wait();
    }
    pulse.kill();
    for peer in [&a, &b] {
        // In whichever order they come.
        let mut told = std::collections::BTreeSet::new();
        while told.len() < 2 {
            let error = peer.event(WAIT, "device errors", |e| {
                e["event"] == "error" && (e["code"] == "audio-in" || e["code"] == "audio-out")
            });
            eprintln!("told: {}", error["message"]);
            told.insert(error["code"].as_str().unwrap().to_owned());
        }
    }
    a.send(r#"{"cmd":"hangup"}"#);
    b.event(WAIT, "the call ended", |e| {
        e["event"] == "call-state" && e["state"] == "ended"
    });
    for peer in [&mut a, &mut b] {
        peer.send(r#"{"cmd":"quit"}"#);
        assert!(peer.child.wait().unwrap().success());
    }
    for player in &mut players {
        let _ = player.kill();
        let _ = player.wait();
    }
    let _ = std::fs::remove_dir_all(&root);
}

/// Speech, as a microphone takes it, through noise suppression, the call and B's speaker:
/// its level at B's speaker over two whole repeats, idle and with two busy loops per core,
/// within 3 dB.
#[test]
fn speech_through_real_devices_keeps_its_level_under_load() {
    let _turn = SOUND_SERVER.lock().unwrap_or_else(|e| e.into_inner());
    let mut pulse = Pulse::start(&["mic_a", "spk_a", "mic_b", "spk_b"]);
    let env = [("PULSE_SERVER", pulse.server.as_str())];
    let root = std::env::temp_dir().join(format!("confab-speech-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let speech = write_speech(&root);
    let (_server, url) = server();
    let (mut a, a_id, mut b, _) = peers(&url, &env, ["device:mic_a.monitor", "device:spk_a"]);

    let mut player = pulse.play("mic_a", &speech);
    a.send(r#"{"cmd":"call"}"#);
    b.event(WAIT, "A's speech at B", |e| level_of(e, &a_id, -40.0));
    // Past the call's first seconds, in which the frames and the buffer settle.
    std::thread::sleep(Duration::from_secs(2));
    let whole = 2.0 * SPEECH_REPEAT_S;
    let idle = pulse.record("spk_b.monitor", whole);
    let idle_level = rms_dbfs(&idle);
    let busy_level = {
        let _hogs = CpuHogs::start(2);
        std::thread::sleep(Duration::from_secs(1));
        rms_dbfs(&pulse.record("spk_b.monitor", whole))
    };
    eprintln!("speech at B's speaker: {idle_level:.1} dBFS idle, {busy_level:.1} under load");
    assert!(
        idle_level > -40.0,
        "{idle_level} dBFS: the speech was not heard"
    );
    if (busy_level - idle_level).abs() > 3.0 {
        panic!(
            "{busy_level} dBFS under load, {idle_level} idle: {}",
            playout_at(&mut b, &a)
        );
    }

    for peer in [&mut a, &mut b] {
        peer.send(r#"{"cmd":"quit"}"#);
        assert!(peer.child.wait().unwrap().success());
    }
    let _ = player.kill();
    let _ = player.wait();
    pulse.kill();
    let _ = std::fs::remove_dir_all(&root);
}

/// No sound server and no sound card: asking for the default microphone is a clear error
/// when the call needs it, and the call goes on receive-only.
#[test]
fn with_no_sound_system_a_call_goes_on_receive_only() {
    let env = [("PULSE_SERVER", "unix:/nonexistent/confab-test/native")];
    let root = std::env::temp_dir().join(format!("confab-nodev-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let rec_a = root.join("a.wav");
    let (_server, url) = server();
    let out_a = format!("wav:{}", rec_a.display());
    let mut a = Process::spawn_with_env(&peer_args(&url, "A", "default", &out_a), &env);
    let a_id = connected_id(&a);
    let out_b = format!("wav:{}", root.join("b.wav").display());
    let mut b_args = peer_args(&url, "B", "sine:880", &out_b);
    b_args.push("--auto-accept-calls");
    let mut b = Process::spawn(&b_args);
    let b_id = connected_id(&b);
    chat_open(&a, &b_id);
    chat_open(&b, &a_id);

    a.send(r#"{"cmd":"call"}"#);
    let error = a.event(WAIT, "the microphone error", |e| {
        e["event"] == "error" && e["code"] == "audio-in"
    });
    let message = error["message"].as_str().unwrap();
    eprintln!("A was told: {message}");
    assert!(message.contains("receive-only"), "{message}");
    a.event(WAIT, "B heard at A", |e| level_of(e, &b_id, -20.0));
    // B never hears A: nothing is sent.
    let quiet = std::time::Instant::now();
    while quiet.elapsed() < Duration::from_secs(1) {
        if let Some(line) = b.try_line(Duration::from_millis(100)) {
            let e: Value = serde_json::from_str(&line).unwrap();
            assert!(!level_of(&e, &a_id, -60.0), "B hears A: {line}");
        }
    }
    // Long enough a recording for A to be checked.
    std::thread::sleep(Duration::from_secs(2));
    for peer in [&mut a, &mut b] {
        peer.send(r#"{"cmd":"quit"}"#);
        assert!(peer.child.wait().unwrap().success());
    }
    assert!(tone_in_recording(&rec_a, 880.0) > -20.0);
    let _ = std::fs::remove_dir_all(&root);
}
