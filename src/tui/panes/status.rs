//! The status bar: model, architecture, quantization, device, threads, draft mode, K, recording,
//! and the message line with the keys that matter now. The message line's words are made here,
//! and only here, from the typed [`Status`] the state holds ([`words`]; headless commands print
//! the worker's notices with [`notice`]).

use crate::protocol::{Applies, Job, Notice, SettingChange, Unserved};
use crate::state::{Action, AppState, Focus, Happened, Status, UiNotice};
use ratatui::prelude::*;
use ratatui::widgets::Paragraph;

pub fn render_top(state: &AppState, area: Rect, buf: &mut Buffer) {
    let model = match (&state.store.model, &state.store.loading) {
        // A server's threads and engine are its own.
        (Some(m), _) if m.is_remote() => format!(" {} · {}", m.name, m.device),
        (Some(m), _) => format!(
            " {} · {} · {} · {} thr",
            m.name, m.arch, m.device, m.threads
        ),
        (None, Some((spec, done, total))) if *total > 0 => format!(
            " loading {spec} {:.0}%",
            *done as f64 * 100.0 / *total as f64
        ),
        (None, Some((spec, _, _))) => format!(" loading {spec} …"),
        (None, None) if state.store.serve.active() => " serving benchmark".into(),
        (None, None) => " no model".into(),
    };
    let line = Line::from(vec![
        Span::styled(
            " labtui ",
            Style::default()
                .fg(Color::Black)
                .bg(Color::Cyan)
                .add_modifier(Modifier::BOLD),
        ),
        Span::styled(model, Style::default().fg(Color::White)),
        Span::styled(settings(state), Style::default().fg(Color::Gray)),
    ]);
    Paragraph::new(line)
        .style(Style::default().bg(Color::Rgb(30, 30, 40)))
        .render(area, buf);
}

/// The engine's settings and whether the session records; a serving benchmark has no engine
/// settings to show.
fn settings(state: &AppState) -> String {
    let rec = if state.ui.recording.is_some() {
        "ON"
    } else {
        "off"
    };
    let remote = state.store.model.as_ref().is_some_and(|m| m.is_remote());
    if remote || (state.store.serve.active() && state.store.model.is_none()) {
        return format!("  rec {rec}");
    }
    let policy = state.ui.asked.policy;
    let lossy = if policy.is_lossy() {
        format!(" · {}", policy.label())
    } else {
        String::new()
    };
    format!(
        "  quant {} · draft {} · K {}{lossy} · rec {rec}",
        state.ui.asked.quant, state.ui.asked.draft_mode, state.ui.asked.k
    )
}

/// The keys that matter in the current state, named from the binding table.
pub fn hints(state: &AppState) -> String {
    use crate::tui::keys::{key, key_in, When::*};
    let help = format!("{} help", key(&Action::ToggleHelp));
    let quit = format!("{} quit", key(&Action::Quit));
    let ctrl_quit = format!("{} quit", key_in(Anywhere, &Action::Quit));
    let run = format!("{} run", key_in(Anywhere, &Action::Run));
    let next = key(&Action::FocusNext);
    if state.store.serve.active() && state.ui.demo.is_none() {
        return format!("{quit} · {help}");
    }
    match (state.ui.view.focus, state.store.running()) {
        (_, true) => format!("{} stop · {ctrl_quit} · {help}", key(&Action::Escape)),
        (Focus::Prompt, false) => format!("{run} · {next} leave prompt · {ctrl_quit} · {help}"),
        (_, false) if state.ui.view.zoom => format!(
            "{} / {} unzoom · {next} next pane · {} screenshot · {quit} · {help}",
            key(&Action::ToggleZoom),
            key_in(Zoomed, &Action::ToggleZoom),
            key(&Action::Screenshot),
        ),
        (_, false) => format!(
            "{run} · {next} / {} focus · {} zoom · {} shot · {}/{} token · {} · {quit} · {help}",
            key(&Action::Focus(Focus::Tape)),
            key(&Action::ToggleZoom),
            key(&Action::Screenshot),
            key_in(Anywhere, &Action::SelectPrev),
            key_in(Anywhere, &Action::SelectNext),
            SETTINGS.map(|a| key(&a)).join(" "),
        ),
    }
}

/// The settings' keys, named together in the hints.
const SETTINGS: [Action; 11] = [
    Action::CycleDraftMode,
    Action::KDown,
    Action::KUp,
    Action::CycleQuant,
    Action::MaxTokensUp,
    Action::MaxTokensDown,
    Action::TempDown,
    Action::TempUp,
    Action::CycleKvDtype,
    Action::CycleContext,
    Action::CycleBatch,
];

pub fn render_bottom(state: &AppState, area: Rect, buf: &mut Buffer) {
    let line = Line::from(vec![
        Span::styled(
            format!(" {} ", words(&state.ui.status)),
            Style::default().fg(Color::White),
        ),
        Span::styled(
            format!("  {}", hints(state)),
            Style::default().fg(Color::DarkGray),
        ),
    ]);
    Paragraph::new(line)
        .style(Style::default().bg(Color::Rgb(30, 30, 40)))
        .render(area, buf);
}

/// The status line's words for `status`.
pub fn words(status: &Status) -> String {
    match status {
        Status::Welcome => "type a prompt, Enter runs it · ? help".into(),
        Status::Worker(h) => happened(h),
        Status::Ui(n) => answer(n),
    }
}

fn happened(h: &Happened) -> String {
    match h {
        Happened::Loading { spec } => format!("loading {spec} …"),
        Happened::Loaded { name, took } => format!(
            "{name} loaded in {:.1} s · Enter runs the prompt",
            took.as_secs_f64()
        ),
        Happened::Requantizing { quant, done, total } => {
            format!("requantising to {quant}: {done} of {total} matrices …")
        }
        Happened::Switched {
            weights,
            weight_bytes,
            kv_dtype,
            took,
        } => format!(
            "weights {weights} ({}) · KV {kv_dtype}{} · Enter runs",
            crate::stats::human_bytes(*weight_bytes),
            if took.is_zero() {
                String::new()
            } else {
                format!(" · switched in {:.1} s", took.as_secs_f64())
            }
        ),
        Happened::Quality(q) => format!(
            "{} · KV {}: perplexity {:.3}, mean KL {:.4}, top-1 {:.1}% ({} positions)",
            q.mix.clone().unwrap_or_else(|| q.quant.to_string()),
            q.kv_dtype,
            q.perplexity,
            q.mean_kl,
            q.top1 * 100.0,
            q.scored
        ),
        Happened::RunStarted { run, prompt_tokens } => {
            format!("run {run}: prefill of {prompt_tokens} tokens …")
        }
        Happened::Decoding { run } => format!("run {run}: decoding …"),
        Happened::RunDone {
            run,
            reason,
            tokens,
            decode_tok_s,
        } => {
            format!("run {run} done ({reason:?}): {tokens} tokens, decode {decode_tok_s:.1} tok/s")
        }
        Happened::DemoMeasured { demo, model } => {
            format!("demo {demo} measured on {model}: n / N step through the narration")
        }
        Happened::StreamDone(d) => format!(
            "stream done: {} requests, {} tokens in {:.1} s, {} preemptions",
            d.requests,
            d.tokens,
            d.took.as_secs_f64(),
            d.preemptions
        ),
        Happened::BatchDone(d) => format!(
            "batch of {}: {} tokens in {:.1} s, {:.1} tok/s in all; \
             {} distinct continuation{}; #0: {}",
            d.batch,
            d.tokens,
            d.took.as_secs_f64(),
            d.tok_s(),
            d.distinct,
            if d.distinct == 1 { "" } else { "s" },
            crate::protocol::one_line(&d.first, 60)
        ),
        Happened::Notice(n) => notice(n),
        Happened::Text(t) => t.clone(),
        Happened::Error => "error: see above · fix it and press Enter to try again".into(),
        Happened::FallingBack => "no real model: loading the built-in synthetic model …".into(),
    }
}

/// The words of a worker's notice.
pub fn notice(n: &Notice) -> String {
    match n {
        Notice::SettingTaken(c) => taken(c),
        Notice::Stopped(job) => match job {
            Job::Loading => "loading stopped: no model is loaded".into(),
            Job::Requantizing => "requantising stopped: the loaded weights run".into(),
            Job::Quality => "the quality measurement stopped".into(),
            Job::Stream => "stream stopped".into(),
            Job::Batch => "batch run stopped".into(),
            Job::Race => "the race stopped before it started".into(),
            Job::Demo(kind) => format!("demo {kind} stopped"),
        },
        Notice::QualityStarted { quant, tokens } => {
            format!("measuring {quant} on {tokens} tokens of the reference text …")
        }
        Notice::QualityPass { done, total } => {
            format!("measuring quality: pass {done} of {total}")
        }
        Notice::DraftLoading { spec } => format!(
            "loading the draft model {} …",
            spec.as_deref().unwrap_or("(picked beside the target)")
        ),
        Notice::DraftReady { draft, target } => format!("draft model {draft} drafts for {target}"),
        Notice::ServerUnnamed { why: Some(why), .. } => {
            format!("the server did not name its model: {why}")
        }
        Notice::ServerUnnamed { why: None, waited } => {
            format!("the server did not name its model within {waited:?}; give --model NAME")
        }
        Notice::RemoteModel { url, spec } => format!(
            "the model is served remotely by {url}: {spec} is not loaded here \
             (start labtui without --endpoint to run a local model)"
        ),
        Notice::NotRemote { asked, url } => {
            let what = match asked {
                Unserved::Setting(c) => c.name(),
                Unserved::Quality => "measuring quality",
                Unserved::Demos => "the demos",
                Unserved::Streams => "simulated request streams",
                Unserved::Batches => "batch runs",
                Unserved::Races => "A/B races",
            };
            format!("{what} does not apply to a remote server ({url})")
        }
    }
}

/// A setting taken, and from when it applies: every setting's words come from its row in the
/// settings table.
fn taken(c: &SettingChange) -> String {
    let when = match c.applies() {
        Applies::NextStep => "from the next step",
        Applies::NextRun => "from the next run",
        Applies::BetweenRuns => "when no run is in progress",
        Applies::NextUse => "when it is next used",
    };
    format!("{} = {}: {when}", c.name(), c.value())
}

/// The words of an answer to a person's action, or of the terminal loop's doing.
fn answer(n: &UiNotice) -> String {
    use UiNotice as U;
    match n {
        U::Running => "running …".into(),
        U::BatchRunning(b) => format!("batch of {b} running · b changes the count · Esc stops"),
        U::RunInProgress => "a run is in progress: Esc stops it".into(),
        U::NoModel => "no model loaded".into(),
        U::StillLoading => "the model is still loading".into(),
        U::EmptyPrompt => "the prompt is empty: type something first".into(),
        U::Stopping => "stopping …".into(),
        U::StoppingJob => "stopping the worker's job, if one runs …".into(),
        U::QualityQueued => "quality measurement queued …".into(),
        U::MaxTokens(m) => format!("max tokens {m}"),
        U::Temperature(t) if *t == 0.0 => "temperature 0 (greedy)".into(),
        U::Temperature(t) => format!("temperature {t:.1}"),
        U::BatchSize(b) => {
            format!("batch {b}: the KV what-if, and B runs the prompt as that many sequences")
        }
        U::SchedClosed => "scheduler view closed · B runs a batch again".into(),
        U::Racing { a, b } => format!("racing A {a} against B {b} …"),
        U::RaceNeedsChange => "A races the baseline (as loaded, plain decoding) against the \
                               settings asked for: change one first (u, d, V, a)"
            .into(),
        U::RaceClosed => "race view closed · A races again".into(),
        U::ZoomNeedsPane => "focus a pane to zoom it: Tab, or its number 2–6".into(),
        U::Zoomed(f) => format!("pane {} zoomed · z or Esc unzooms", f.name()),
        U::Unzoomed => "unzoomed".into(),
        _ => files(n),
    }
}

/// The words of the pickers', the files' and the replay's notices.
fn files(n: &UiNotice) -> String {
    use UiNotice as U;
    match n {
        U::ModelAlready(name) => format!("{name} is the model already"),
        U::DraftPicked(name) => format!(
            "draft model {name}: loaded when the draft-model mode runs (d cycles the modes)"
        ),
        U::ModelPicked(name) => format!("loading {name} …"),
        U::DemoPicked(name) => {
            format!("demo {name}: measuring … n / N step through the narration")
        }
        U::PresetPicked(name) => format!("preset {name} loaded: Enter runs its first prompt"),
        U::NoPresets => "no presets: none are built in and the presets folder has none".into(),
        U::BrokenPresets(why) => {
            format!("skipped {} broken preset(s): {}", why.len(), why.join("; "))
        }
        U::RecentNotRead(why) => {
            format!("recent models not read ({why}): the next pick starts a new list")
        }
        U::RecentNotSaved { path, why } => format!("recent models not saved to {path}: {why}"),
        U::Screenshot { svg, txt } => format!("screenshot: {svg} and {txt}"),
        U::NoScreenshot(why) => format!("no screenshot: {why}"),
        U::Recording(path) => format!("recording to {path} (R stops)"),
        U::RecordingSaved(path) => format!("recording saved to {path}"),
        U::CannotRecord(why) => format!("cannot record: {why}"),
        U::RecordingStopped(why) => format!("recording stopped: {why}"),
        U::ReplayAt { speed } => {
            format!("replay at {speed}x · space pause · . step · + - speed · q quit")
        }
        U::ReplayStep {
            speed,
            paused,
            done,
            total,
        } => format!(
            "replay {speed}x{} · event {done}/{total} · space pause · . step · + - speed",
            if *paused { " (paused)" } else { "" }
        ),
        U::ReplayOf { name, at } => format!("replay of {name} at {at:.1} s"),
        U::NoEngine { watching: true } => "the dashboard only watches this benchmark: there is \
                                           no engine to run (q quits and stops it)"
            .into(),
        U::NoEngine { watching: false } => "replay: there is no engine to run".into(),
        U::Feed(line) => line.clone(),
        _ => unreachable!("answer() words the rest"),
    }
}
