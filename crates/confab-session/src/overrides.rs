//! Switches tests may set through the environment; a user never needs them.

use confab_mesh::{SinkSpec, SourceSpec};

use crate::settings::Settings;

#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `CONFAB_LOOPBACK_ONLY=1`: gather ICE candidates on 127.0.0.1 only, with multicast
    /// DNS off, so test traffic never leaves the machine.
    pub loopback_only: bool,
    /// `CONFAB_AUDIO_IN` / `CONFAB_AUDIO_OUT`: audio forms (`sine:440`, `wav:PATH`, `none`)
    /// in place of the devices chosen in Settings, so meters move with no sound card.
    pub audio_in: Option<String>,
    pub audio_out: Option<String>,
}

impl Overrides {
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Self {
            loopback_only: var("CONFAB_LOOPBACK_ONLY").is_some_and(|v| v != "0"),
            audio_in: var("CONFAB_AUDIO_IN"),
            audio_out: var("CONFAB_AUDIO_OUT"),
        }
    }

    /// The devices a new mesh opens: Settings' choice unless a test overrides it. A form
    /// that names nothing (a hand-edited settings file) falls back to the default device.
    pub fn audio(&self, settings: &Settings) -> (SourceSpec, SinkSpec) {
        let input = self.audio_in.as_ref().unwrap_or(&settings.audio_in);
        let output = self.audio_out.as_ref().unwrap_or(&settings.audio_out);
        (
            input.parse().unwrap_or_else(|e| {
                tracing::warn!("microphone {input:?}: {e}; the default is used");
                SourceSpec::Default
            }),
            output.parse().unwrap_or_else(|e| {
                tracing::warn!("speakers {output:?}: {e}; the default is used");
                SinkSpec::Default
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_overrides_replace_the_chosen_devices() {
        let settings = Settings::default();
        let overrides = Overrides {
            audio_in: Some("sine:440".into()),
            ..Overrides::default()
        };
        let (input, output) = overrides.audio(&settings);
        assert_eq!(input, SourceSpec::Sine(440.0));
        assert_eq!(output, SinkSpec::Default);
        let broken = Settings {
            audio_out: "tape:1".into(),
            ..Settings::default()
        };
        assert_eq!(Overrides::default().audio(&broken).1, SinkSpec::Default);
    }
}
