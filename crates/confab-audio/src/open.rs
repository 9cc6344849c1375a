//! Opening voice's source and sink from their specs (`--audio-in`/`--audio-out`, the app's
//! settings): a device, a file, a tone or nothing.

use std::path::PathBuf;

use crate::AudioError;
use crate::device::{DeviceSink, DeviceSource};
use crate::dsp::Tone;
use crate::io::{Discard, Silence, Sink, Source};
use crate::wav::{WavSink, WavSource};

/// Where voice comes from, as `--audio-in` names it.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceSpec {
    /// The system's default microphone.
    Default,
    Device(String),
    None,
    Sine(f64),
    Wav(PathBuf),
}

impl std::str::FromStr for SourceSpec {
    type Err = AudioError;

    /// `default`, `device:NAME`, `none`, `sine:HZ` or `wav:PATH`.
    fn from_str(spec: &str) -> Result<Self, AudioError> {
        match spec.split_once(':') {
            _ if spec == "default" => Ok(Self::Default),
            _ if spec == "none" => Ok(Self::None),
            Some(("device", name)) if !name.is_empty() => Ok(Self::Device(name.to_owned())),
            Some(("sine", hz)) => match hz.parse::<f64>() {
                Ok(hz) if hz > 0.0 && hz < 24_000.0 => Ok(Self::Sine(hz)),
                _ => Err(AudioError::Format(format!(
                    "`{hz}` is not a frequency below 24000 Hz"
                ))),
            },
            Some(("wav", path)) if !path.is_empty() => Ok(Self::Wav(path.into())),
            _ => Err(AudioError::Format(format!(
                "unknown audio input `{spec}` (default, none, device:NAME, sine:HZ or wav:PATH)"
            ))),
        }
    }
}

impl std::fmt::Display for SourceSpec {
    /// The form it is parsed from.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Default => f.write_str("default"),
            Self::Device(name) => write!(f, "device:{name}"),
            Self::None => f.write_str("none"),
            Self::Sine(hz) => write!(f, "sine:{hz}"),
            Self::Wav(path) => write!(f, "wav:{}", path.display()),
        }
    }
}

/// Where voice goes, as `--audio-out` names it.
#[derive(Debug, Clone, PartialEq)]
pub enum SinkSpec {
    /// The system's default speaker.
    Default,
    Device(String),
    None,
    Wav(PathBuf),
}

impl std::str::FromStr for SinkSpec {
    type Err = AudioError;

    /// `default`, `device:NAME`, `none` or `wav:PATH`.
    fn from_str(spec: &str) -> Result<Self, AudioError> {
        match spec.split_once(':') {
            _ if spec == "default" => Ok(Self::Default),
            _ if spec == "none" => Ok(Self::None),
            Some(("device", name)) if !name.is_empty() => Ok(Self::Device(name.to_owned())),
            Some(("wav", path)) if !path.is_empty() => Ok(Self::Wav(path.into())),
            _ => Err(AudioError::Format(format!(
                "unknown audio output `{spec}` (default, none, device:NAME or wav:PATH)"
            ))),
        }
    }
}

impl std::fmt::Display for SinkSpec {
    /// The form it is parsed from.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Default => f.write_str("default"),
            Self::Device(name) => write!(f, "device:{name}"),
            Self::None => f.write_str("none"),
            Self::Wav(path) => write!(f, "wav:{}", path.display()),
        }
    }
}

/// Opens a source. A device blocks for up to a few seconds: call it off the async threads.
pub fn open_source(spec: &SourceSpec) -> Result<Box<dyn Source>, AudioError> {
    Ok(match spec {
        SourceSpec::Default => Box::new(DeviceSource::open(None)?),
        SourceSpec::Device(name) => Box::new(DeviceSource::open(Some(name))?),
        SourceSpec::None => Box::new(Silence),
        SourceSpec::Sine(hz) => Box::new(Tone::new(*hz)),
        SourceSpec::Wav(path) => Box::new(WavSource::open(path)?),
    })
}

/// Opens a sink. A device blocks for up to a few seconds: call it off the async threads.
pub fn open_sink(spec: &SinkSpec) -> Result<Box<dyn Sink>, AudioError> {
    Ok(match spec {
        SinkSpec::Default => Box::new(DeviceSink::open(None)?),
        SinkSpec::Device(name) => Box::new(DeviceSink::open(Some(name))?),
        SinkSpec::None => Box::new(Discard),
        SinkSpec::Wav(path) => Box::new(WavSink::create(path)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_open_what_they_name_and_refuse_the_rest() {
        let source = |spec: &str| spec.parse::<SourceSpec>().and_then(|s| open_source(&s));
        let sink = |spec: &str| spec.parse::<SinkSpec>().and_then(|s| open_sink(&s));
        assert!(source("none").is_ok());
        assert!(source("sine:440").is_ok());
        assert!(source("sine:loud").is_err());
        assert!(source("sine:-5").is_err());
        assert!(source("wav:/nonexistent/x.wav").is_err());
        assert!(source("radio:1").is_err());
        assert!(sink("none").is_ok());
        assert!(sink("tape:1").is_err());
        assert!("device:".parse::<SourceSpec>().is_err());
        assert_eq!(
            "device:Mic One".parse::<SourceSpec>().ok(),
            Some(SourceSpec::Device("Mic One".into()))
        );
        assert_eq!("default".parse::<SinkSpec>().ok(), Some(SinkSpec::Default));
    }

    #[test]
    fn specs_read_back_as_they_were_written() {
        for spec in [
            "default",
            "none",
            "device:Mic One",
            "sine:440",
            "sine:440.5",
            "wav:/tmp/a b.wav",
        ] {
            assert_eq!(
                spec.parse::<SourceSpec>()
                    .map(|s| s.to_string())
                    .ok()
                    .as_deref(),
                Some(spec)
            );
        }
        for spec in ["default", "none", "device:Speakers", "wav:/tmp/out.wav"] {
            assert_eq!(
                spec.parse::<SinkSpec>()
                    .map(|s| s.to_string())
                    .ok()
                    .as_deref(),
                Some(spec)
            );
        }
    }
}
