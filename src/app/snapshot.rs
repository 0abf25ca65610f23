//! `labtui replay FILE --snapshot-at SECONDS --out FILE.svg`: a recording drawn headless, as the
//! dashboard shows it that far into the replay, written as a screenshot (SVG, or text for a
//! `.txt` name). The README's screens are made this way, from real recordings.

use crate::record::Recording;
use crate::tui::{shot, App, Start};
use anyhow::{Context, Result};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use std::path::Path;
use std::time::Duration;

/// The screen of `rec` replayed up to `at` seconds, `size` columns × rows.
pub fn screen(rec: Recording, at: f64, size: (u16, u16), name: &str) -> Buffer {
    let mut app = App::new(
        Start::replay(rec, 1.0),
        crate::worker::Options {
            sample_every: None,
            ..Default::default()
        },
    );
    app.tick(Duration::from_secs_f64(at));
    app.state.ui.say(crate::state::UiNotice::ReplayOf {
        name: name.to_string(),
        at,
    });
    let area = Rect::new(0, 0, size.0, size.1);
    let mut buf = Buffer::empty(area);
    app.draw(area, &mut buf);
    buf
}

/// Write the snapshot of `file` at `at` seconds to `out`.
pub fn run(file: &Path, at: f64, size: (u16, u16), out: &Path) -> Result<()> {
    let rec = crate::record::load(file)?;
    let last = rec.events.last().map_or(0.0, |e| e.at.as_secs_f64());
    if at > last {
        eprintln!(
            "note: {} ends at {last:.1} s; the snapshot at {at} s shows its end",
            file.display()
        );
    }
    let name = file.file_name().map_or_else(
        || file.display().to_string(),
        |n| n.to_string_lossy().into(),
    );
    let buf = screen(rec, at, size, &name);
    let text = if out.extension().is_some_and(|e| e == "txt") {
        shot::text(&buf)
    } else {
        shot::svg(&buf)
    };
    std::fs::write(out, text).with_context(|| format!("cannot write {}", out.display()))?;
    eprintln!(
        "wrote {} ({}×{} at {at} s of {})",
        out.display(),
        size.0,
        size.1,
        file.display()
    );
    Ok(())
}
