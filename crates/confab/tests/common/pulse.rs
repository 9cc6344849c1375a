//! A PulseAudio daemon of a test's own, with null sinks for devices: what a machine with no
//! sound card offers instead. It runs as the user the tests run as (root in CI, which
//! PulseAudio allows outside `--system` with a warning) and is killed when dropped.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static DAEMONS: AtomicUsize = AtomicUsize::new(0);

pub struct Pulse {
    child: Child,
    dir: PathBuf,
    /// `PULSE_SERVER` for its clients.
    pub server: String,
}

impl Pulse {
    /// Starts a daemon with a 48 kHz stereo null sink for each name (each with its
    /// `NAME.monitor` source).
    pub fn start(sinks: &[&str]) -> Pulse {
        let n = DAEMONS.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("confab-pulse-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // Pulse insists on a private runtime folder.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let socket = dir.join("native");
        let mut command = Command::new("pulseaudio");
        command
            .args([
                "-n",
                "--daemonize=no",
                "--exit-idle-time=-1",
                "--disallow-exit=yes",
                "--use-pid-file=no",
                "-L",
            ])
            .arg(format!(
                "module-native-protocol-unix auth-anonymous=1 socket={}",
                socket.display()
            ));
        for sink in sinks {
            command.arg("-L").arg(format!(
                "module-null-sink sink_name={sink} rate=48000 channels=2"
            ));
        }
        let log = std::fs::File::create(dir.join("log")).unwrap();
        let child = command
            .env("XDG_RUNTIME_DIR", &dir)
            .env("HOME", &dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("pulseaudio (Debian `pulseaudio`; scripts/test.sh installs it)");
        let pulse = Pulse {
            child,
            server: format!("unix:{}", socket.display()),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !pulse.pactl(&["info"]) {
            assert!(Instant::now() < deadline, "PulseAudio did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        pulse
    }

    /// Runs `pactl` against this daemon; true when it succeeded.
    pub fn pactl(&self, args: &[&str]) -> bool {
        Command::new("pactl")
            .args(args)
            .env("PULSE_SERVER", &self.server)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Kills the daemon, as a crashing sound server would go.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Plays a WAV file into a sink, in the background.
    pub fn play(&self, sink: &str, wav: &std::path::Path) -> Child {
        Command::new("paplay")
            .args(["-d", sink])
            .arg(wav)
            .env("PULSE_SERVER", &self.server)
            .spawn()
            .expect("paplay (Debian `pulseaudio-utils`)")
    }

    /// Records `seconds` of several sources over the same time.
    pub fn record_together<const N: usize>(
        &self,
        sources: [&str; N],
        seconds: f64,
    ) -> [Vec<f32>; N] {
        std::thread::scope(|scope| {
            sources
                .map(|source| scope.spawn(move || self.record(source, seconds)))
                .map(|recording| recording.join().unwrap())
        })
    }

    /// Records `seconds` of a source as 48 kHz mono samples.
    pub fn record(&self, source: &str, seconds: f64) -> Vec<f32> {
        let mut child = Command::new("pacat")
            .args([
                "--record",
                "-d",
                source,
                "--raw",
                "--format=float32le",
                "--rate=48000",
                "--channels=1",
                "--latency-msec=20",
            ])
            .env("PULSE_SERVER", &self.server)
            .stdout(Stdio::piped())
            .spawn()
            .expect("pacat (Debian `pulseaudio-utils`)");
        let mut stdout = child.stdout.take().unwrap();
        let wanted = (48_000.0 * seconds) as usize * 4;
        let mut bytes = vec![0u8; wanted];
        let read = stdout.read_exact(&mut bytes);
        let _ = child.kill();
        let _ = child.wait();
        read.unwrap();
        bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    }
}

impl Drop for Pulse {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
