//! Recordings: a session's events written to RON as they happen, one line each, after a header.
//!
//! Each line is a complete RON value and is flushed to the file when written, so a process killed
//! at any moment leaves a file that loads, losing at most the line being written. The loader
//! accepts an incomplete last line (and says so) but reports any other broken line with its line
//! and column, as it does a number out of range ([`check`]).

pub mod check;

use crate::protocol::{DraftMode, KPolicy, ModelInfo, Quant, Stamped};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The version of the recording format this build writes and reads.
pub const FORMAT: u32 = 1;

pub use crate::protocol::Machine;

/// The first line of a recording.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub format: u32,
    pub labtui: String,
    /// Seconds since the Unix epoch when recording started.
    pub started_unix: u64,
    pub machine: Machine,
    /// The model loaded when recording started, if any (later loads are in the events).
    pub model: Option<ModelInfo>,
    pub quantization: Quant,
    pub draft_mode: DraftMode,
    pub k: KPolicy,
}

impl Header {
    pub fn new(
        model: Option<ModelInfo>,
        quantization: Quant,
        draft_mode: DraftMode,
        k: KPolicy,
    ) -> Self {
        let started_unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Self {
            format: FORMAT,
            labtui: env!("CARGO_PKG_VERSION").to_string(),
            started_unix,
            machine: crate::sysmon::this_machine(),
            model,
            quantization,
            draft_mode,
            k,
        }
    }
}

/// One line of a recording file (parsed one at a time, so its size does not matter).
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Line {
    Header(Header),
    Event(Stamped),
}

/// Writes a recording as the session goes.
pub struct Recorder {
    file: std::fs::File,
    path: PathBuf,
    line: String,
}

impl Recorder {
    pub fn create(path: &Path, header: Header) -> Result<Self> {
        let file = std::fs::File::create(path)
            .with_context(|| format!("cannot create the recording {}", path.display()))?;
        let mut r = Self {
            file,
            path: path.to_path_buf(),
            line: String::new(),
        };
        r.write(&Line::Header(header))?;
        Ok(r)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append one event; it is in the file (the kernel's cache) when this returns.
    pub fn event(&mut self, e: &Stamped) -> Result<()> {
        self.write(&Line::Event(e.clone()))
    }

    fn write(&mut self, line: &Line) -> Result<()> {
        self.line.clear();
        self.line.push_str(&ron::to_string(line)?);
        self.line.push('\n');
        // One write per line: a kill leaves whole lines and at most one partial last line.
        self.file
            .write_all(self.line.as_bytes())
            .with_context(|| format!("cannot write to {}", self.path.display()))
    }
}

/// A loaded recording.
#[derive(Debug, Clone, PartialEq)]
pub struct Recording {
    pub header: Header,
    pub events: Vec<Stamped>,
    /// The last line was incomplete (the recorder was killed while writing it) and was skipped.
    pub truncated: bool,
}

/// Read a recording, naming the file, line and column of anything broken.
pub fn load(path: &Path) -> Result<Recording> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot open the recording {}", path.display()))?;
    let name = path.display().to_string();
    parse(&lines(&bytes, &name)?, &name)
}

/// The lines of a recording's bytes. A recorder killed inside a multi-byte character leaves part
/// of it at the end: that last line is kept (it fails to parse, as any cut line does); a line that
/// is not UTF-8 elsewhere is reported with its line and column.
pub fn lines(bytes: &[u8], name: &str) -> Result<Vec<String>> {
    let raw: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    let last = raw.iter().rposition(|l| !l.trim_ascii().is_empty());
    let mut lines = Vec::with_capacity(raw.len());
    for (i, l) in raw.iter().enumerate() {
        let l = l.strip_suffix(b"\r").unwrap_or(l);
        match std::str::from_utf8(l) {
            Ok(s) => lines.push(s.to_string()),
            Err(_) if Some(i) == last => lines.push(String::from_utf8_lossy(l).into_owned()),
            Err(e) => {
                let col = String::from_utf8_lossy(&l[..e.valid_up_to()])
                    .chars()
                    .count()
                    + 1;
                bail!("{name}:{}:{col}: not UTF-8 text", i + 1)
            }
        }
    }
    Ok(lines)
}

pub fn parse(lines: &[String], name: &str) -> Result<Recording> {
    let mut header = None;
    let mut events = Vec::with_capacity(lines.len());
    let mut truncated = false;
    let last = lines.iter().rposition(|l| !l.trim().is_empty());
    let mut checker = check::Checker::default();
    let refuse = |i: usize, text: &str, bad: check::Bad| {
        anyhow::anyhow!(
            "{name}:{}:{}: {}",
            i + 1,
            check::column(text, &bad.field),
            bad.why
        )
    };
    for (i, text) in lines.iter().enumerate() {
        if text.trim().is_empty() {
            continue;
        }
        let parsed: std::result::Result<Line, _> = ron::from_str(text);
        if header.is_none() {
            match parsed {
                Ok(Line::Header(h)) => {
                    if h.format > FORMAT {
                        bail!("{name}: recording format {} is newer than this labtui reads ({FORMAT}): update labtui", h.format);
                    }
                    if let Some(m) = &h.model {
                        check::model(m).map_err(|bad| refuse(i, text, bad))?;
                    }
                    header = Some(h);
                    continue;
                }
                Ok(_) => bail!("{name}:{}:1: the first line is not a recording header (is this a labtui recording?)", i + 1),
                Err(e) => bail!(
                    "{name}:{}:{}: the first line is not a recording header (is this a labtui recording?): {}",
                    i + 1,
                    e.span.start.col,
                    e.code
                ),
            }
        }
        match parsed {
            Ok(Line::Header(_)) => bail!("{name}:{}: a second header", i + 1),
            Ok(Line::Event(e)) => {
                checker.stamped(&e).map_err(|bad| refuse(i, text, bad))?;
                events.push(e)
            }
            Err(_) if Some(i) == last => truncated = true,
            Err(e) => bail!(
                "{name}:{}:{}: not a recording line: {}",
                i + 1,
                e.span.start.col,
                e.code
            ),
        }
    }
    let Some(header) = header else {
        bail!("{name}: empty file, not a recording")
    };
    Ok(Recording {
        header,
        events,
        truncated,
    })
}

/// A file name for a new recording in the current folder.
pub fn default_path() -> PathBuf {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    PathBuf::from(format!("labtui-{secs}.ron"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header with the default settings.
    fn plain_header() -> Header {
        Header::new(
            None,
            Default::default(),
            Default::default(),
            Default::default(),
        )
    }
    use crate::protocol::Event;
    use std::time::Duration;

    fn sample() -> Vec<Stamped> {
        (0..20)
            .map(|i| Stamped {
                at: Duration::from_millis(i),
                event: Event::Notice {
                    message: format!("n{i} \"quoted\"\nline"),
                },
            })
            .collect()
    }

    #[test]
    fn record_then_load_gives_the_same_events() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.ron");
        let mut r = Recorder::create(&p, plain_header()).unwrap();
        for e in sample() {
            r.event(&e).unwrap();
        }
        drop(r);
        let rec = load(&p).unwrap();
        assert_eq!(rec.events, sample());
        assert!(!rec.truncated);
        assert_eq!(rec.header.format, FORMAT);
    }

    #[test]
    fn a_file_cut_anywhere_in_its_last_line_still_loads() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.ron");
        let mut r = Recorder::create(&p, plain_header()).unwrap();
        for e in sample() {
            r.event(&e).unwrap();
        }
        let bytes = std::fs::read(&p).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        let last_start = text.trim_end().rfind('\n').unwrap() + 1;
        for cut in last_start + 1..bytes.len() - 1 {
            let lines: Vec<String> = String::from_utf8_lossy(&bytes[..cut])
                .lines()
                .map(str::to_string)
                .collect();
            let rec = parse(&lines, "cut").unwrap();
            assert_eq!(rec.events.len(), 19, "cut at {cut}");
            assert!(rec.truncated);
        }
    }

    #[test]
    fn a_file_cut_inside_a_multibyte_character_still_loads() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.ron");
        let mut r = Recorder::create(&p, plain_header()).unwrap();
        let wide = |i: u64| Stamped {
            at: Duration::from_millis(i),
            event: Event::Notice {
                message: format!("{i}: é € 😀 日本語"),
            },
        };
        for i in 0..5 {
            r.event(&wide(i)).unwrap();
        }
        drop(r);
        let bytes = std::fs::read(&p).unwrap();
        let text = std::str::from_utf8(&bytes).unwrap();
        let last_start = text.trim_end().rfind('\n').unwrap() + 1;
        let mut inside = 0;
        for cut in last_start + 1..bytes.len() - 1 {
            inside += usize::from(!text.is_char_boundary(cut));
            let cut_file = dir.path().join("cut.ron");
            std::fs::write(&cut_file, &bytes[..cut]).unwrap();
            let rec = load(&cut_file).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
            assert_eq!(
                rec.events,
                (0..4).map(wide).collect::<Vec<_>>(),
                "cut at {cut}"
            );
            assert!(rec.truncated);
        }
        assert!(inside >= 10, "cuts inside characters: {inside}");
        // Elsewhere, bytes that are not UTF-8 are an error with their line and column.
        let mut broken = bytes.clone();
        let second = text.find('\n').unwrap() + 1;
        broken[second + 3] = 0xff;
        std::fs::write(&p, &broken).unwrap();
        let err = load(&p).unwrap_err().to_string();
        assert!(err.ends_with(":2:4: not UTF-8 text"), "{err}");
    }

    #[test]
    fn numbers_out_of_range_are_refused_with_line_column_and_field() {
        let header = ron::to_string(&Line::Header(Header::new(
            None,
            Quant::AsLoaded,
            DraftMode::None,
            KPolicy::Fixed(1),
        )))
        .unwrap();
        let step = crate::protocol::SpecStep {
            run: 1,
            k: 2,
            drafted: vec![1, 2],
            drafted_text: vec!["a".into(), "b".into()],
            accepted: 1_000_000_000_000,
            token: 3,
            draft: Duration::ZERO,
            verify: Duration::ZERO,
            live_speedup: None,
            predicted_speedup: None,
            plain_steps: 0,
            plain_time: Duration::ZERO,
        };
        let line = ron::to_string(&Line::Event(Stamped {
            at: Duration::ZERO,
            event: Event::SpecStep(step),
        }))
        .unwrap();
        let col = line.find("accepted").unwrap() + 1;
        let err = parse(&[header, line], "big.ron").unwrap_err().to_string();
        assert_eq!(
            err,
            format!("big.ron:2:{col}: accepted = 1000000000000 is out of range (0 to 2)")
        );
    }

    #[test]
    fn broken_lines_are_reported_with_line_and_column() {
        let lines: Vec<String> = vec![
            ron::to_string(&Line::Header(Header::new(
                None,
                Quant::Q4K,
                DraftMode::None,
                KPolicy::Fixed(1),
            )))
            .unwrap(),
            "Event((at:oops))".into(),
            "Event(x)".into(),
        ];
        let err = parse(&lines, "bad.ron").unwrap_err().to_string();
        assert!(err.starts_with("bad.ron:2:"), "{err}");
        let err = parse(&["(a:1)".to_string()], "x.ron")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("x.ron:1") && err.contains("not a recording header"),
            "{err}"
        );
    }
}
