//! The A/B race: each side gives its tokens alone while the two take turns step by step; the
//! worker's race fills both sides of the dashboard's view and stops between steps; the
//! headless command records it and `report --diff` reads the summary back; the view at two
//! sizes from a fixed event stream.

mod common;

use common::engine::synthetic;
use common::OutputWithin;
use labtui::engine::race::{race, Side};
use labtui::engine::spec::{Drafter, Speculator};
use labtui::engine::{generate, Engine, Prompt, RunRequest, StepControl};
use labtui::protocol::race::{summarize, Lane, RaceConfig, RaceEvent, RaceSide, RaceSideSummary};
use labtui::protocol::{
    Command, DraftMode, Event, FinishReason, GenParams, KPolicy, Phase, Quant, RunSettings,
    RunSummary, Stamped, TokenEvent,
};
use labtui::state::AppState;
use labtui::worker::{Options, Worker};
use std::time::Duration;

fn greedy(n: usize) -> GenParams {
    GenParams {
        max_tokens: n,
        ignore_eos: true,
        ..GenParams::default()
    }
}

fn request(run: u64, prompt: &str, p: &GenParams, spec: &Speculator) -> RunRequest {
    let settings = RunSettings {
        params: p.clone(),
        quantization: Quant::AsLoaded,
        draft_mode: spec.drafter.mode(),
        k: spec.controller.policy(),
        policy: Default::default(),
    };
    RunRequest::new(run, Prompt::Text(prompt.into()), settings)
}

/// `e`'s tokens for `prompt` run alone with `spec`.
fn alone(e: &mut Engine, spec: &mut Speculator, prompt: &str, p: &GenParams) -> Vec<u32> {
    let r = request(9, prompt, p, spec);
    let mut ids = Vec::new();
    let mut emit = |ev| {
        if let Event::Token(t) = ev {
            ids.push(t.id)
        }
    };
    generate(e, spec, &r, &mut emit, &mut || StepControl::Continue).unwrap();
    ids
}

/// Race `a` against `b`: each side's token ids and the lane of every token event, in order.
fn race_of(
    (ea, sa): (&mut Engine, &mut Speculator),
    (eb, sb): (&mut Engine, &mut Speculator),
    prompt: &str,
    p: &GenParams,
) -> ([Vec<u32>; 2], Vec<Lane>) {
    let (ra, rb) = (request(1, prompt, p, sa), request(2, prompt, p, sb));
    let mut ids: [Vec<u32>; 2] = Default::default();
    let mut lanes = Vec::new();
    let mut emit = |lane: Lane, ev| {
        if let Event::Token(t) = ev {
            ids[lane.index()].push(t.id);
            lanes.push(lane);
        }
    };
    let raced = race(
        Side {
            engine: ea,
            spec: sa,
            request: &ra,
        },
        Side {
            engine: eb,
            spec: sb,
            request: &rb,
        },
        &mut emit,
        &mut || false,
    )
    .unwrap();
    for (i, s) in raced.summaries.iter().enumerate() {
        assert_eq!(s.generated_tokens, ids[i].len());
        assert_eq!(raced.texts[i].len(), ids[i].len());
        // One interval per token after the first.
        assert_eq!(raced.itl[i].len(), ids[i].len() - 1);
    }
    (ids, lanes)
}

/// Baseline against Q4_0 weights, and plain decoding against prompt lookup: each side's tokens
/// are its tokens alone; with one token a step on both sides, the tokens alternate A, B, A, B.
#[test]
fn each_side_keeps_its_tokens_alone_and_the_sides_take_turns() {
    let prompt = "the cat sat on the mat and the cat sat on the";
    let p = greedy(24);
    let mut a = synthetic();
    let mut b = a.twin();
    b.set_quant(Quant::Q4_0, &mut |_, _| {}).unwrap();
    let (mut sa, mut sb) = (Speculator::none(), Speculator::none());
    let want = [
        alone(&mut a, &mut sa, prompt, &p),
        alone(&mut b, &mut sb, prompt, &p),
    ];
    assert!(
        b.model.weight_bytes() < a.model.weight_bytes(),
        "B runs other weights"
    );
    let (ids, lanes) = race_of((&mut a, &mut sa), (&mut b, &mut sb), prompt, &p);
    assert_eq!(ids, want);
    let strict: Vec<Lane> = (0..48)
        .map(|i| if i % 2 == 0 { Lane::A } else { Lane::B })
        .collect();
    assert_eq!(lanes, strict);
    // A twin shares the loaded weights: the baseline still runs them.
    assert_eq!(a.quant, Quant::AsLoaded);

    let mut lookup = Speculator::new(Drafter::PromptLookup, KPolicy::Fixed(4));
    let mut c = a.twin();
    let plain = alone(&mut a, &mut Speculator::none(), prompt, &p);
    let (ids, lanes) = race_of(
        (&mut a, &mut Speculator::none()),
        (&mut c, &mut lookup),
        prompt,
        &p,
    );
    assert_eq!(
        ids,
        [plain.clone(), plain],
        "lossless lookup is plain decoding"
    );
    // Lookup's steps give several tokens: B ends in fewer turns, and A's tokens follow alone.
    let b_turns = lanes
        .windows(2)
        .filter(|w| w[1] == Lane::B && w[0] == Lane::A)
        .count();
    assert!(b_turns < 24, "{b_turns} turns of B");
}

/// The worker's race: both sides' runs fill the store's race view, the summary matches them,
/// and a stop between steps ends both sides with the summary still sent.
#[test]
fn the_workers_race_fills_both_sides_and_stops_between_steps() {
    let mut w = Worker::spawn(Options::default());
    w.send(Command::LoadModel {
        spec: "synthetic".into(),
    });
    let sides = [
        RaceConfig::default(),
        RaceConfig::parse("draft=prompt-lookup,k=3").unwrap(),
    ];
    let race_cmd = |n: usize| Command::Race {
        prompt: "one two three one two three one two".into(),
        params: greedy(n),
        a: sides[0].clone(),
        b: sides[1].clone(),
    };
    let mut s = AppState::new("synthetic", "");
    let until = |w: &mut Worker, s: &mut AppState| loop {
        let ev = w.events.blocking_recv().expect("the worker answers");
        s.apply(&ev);
        match &ev.event {
            Event::ModelLoaded(_) => w.send(race_cmd(40)),
            Event::Race(RaceEvent::Finished(_)) => return,
            Event::Error { message } => panic!("{message}"),
            _ => {}
        }
    };
    until(&mut w, &mut s);
    let race = s.store.race.clone().expect("a race view");
    let summary = race.summary.clone().expect("a summary");
    assert_eq!(race.sides[0].label, "baseline");
    assert_eq!(race.sides[1].label, "prompt-lookup K=3");
    assert!(race.turns && !race.running() && !s.store.running());
    for (i, side) in [&summary.a, &summary.b].into_iter().enumerate() {
        let run = race.runs[i].as_ref().expect("a run view");
        assert_eq!(run.tokens.len(), 40);
        assert_eq!(side.run.generated_tokens, 40);
        assert_eq!(run.text(), side.run.text);
        assert_eq!(run.summary.as_ref(), Some(&side.run));
    }
    assert_eq!((summary.first_diff, summary.agreement), (None, 1.0));
    assert!(summary.speed_ratio > 0.0 && summary.ratio_low <= summary.ratio_high);
    assert_eq!(summary.windows, 39 / 16);
    assert!(s.ui.race_shown(&s.store));

    // A stop sent with the race ends it, in its set-up or between its steps, and the worker
    // races again afterwards.
    w.send(race_cmd(400));
    w.send(Command::Stop);
    let ended = loop {
        let ev = w.events.blocking_recv().expect("the worker answers");
        s.apply(&ev);
        match ev.event {
            Event::Race(RaceEvent::Finished(f)) => break Some(f),
            Event::Note(labtui::protocol::Notice::Stopped(labtui::protocol::Job::Race)) => {
                break None
            }
            Event::Error { message } => panic!("{message}"),
            _ => {}
        }
    };
    if let Some(f) = ended {
        for side in [&f.a, &f.b] {
            assert_eq!(side.run.reason, FinishReason::Stopped);
            assert!(side.run.generated_tokens < 400);
        }
    }
    assert!(!s.store.running(), "a stopped race is over");
    w.send(race_cmd(40));
    until(&mut w, &mut s);
    let race = s.store.race.as_ref().unwrap();
    assert_eq!(race.summary.as_ref().unwrap().a.run.generated_tokens, 40);
}

/// A stop between steps ends both sides, each with the tokens it had, as stopped.
#[test]
fn a_stop_between_steps_ends_both_sides() {
    let prompt = "one two three one two three";
    let p = greedy(200);
    let mut a = synthetic();
    let mut b = a.twin();
    let (mut sa, mut sb) = (Speculator::none(), Speculator::none());
    let (ra, rb) = (request(1, prompt, &p, &sa), request(2, prompt, &p, &sb));
    let mut asked = 0;
    let raced = race(
        Side {
            engine: &mut a,
            spec: &mut sa,
            request: &ra,
        },
        Side {
            engine: &mut b,
            spec: &mut sb,
            request: &rb,
        },
        &mut |_, _| {},
        &mut || {
            asked += 1;
            asked > 9
        },
    )
    .unwrap();
    // Asked before each side's steps, A's first: A took 5 decode steps and B 4, then the
    // tenth question stopped B and, without asking again, A.
    assert_eq!(asked, 10);
    for (s, n) in raced.summaries.iter().zip([6, 5]) {
        assert_eq!(s.reason, FinishReason::Stopped);
        assert_eq!(s.generated_tokens, n);
    }
}

/// `labtui race` records the race; `report --diff` prints its summary rows from the recording;
/// a recording cut in the middle still loads and replays both sides; bad settings say why.
#[test]
fn the_race_command_records_and_report_diff_reads_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("race.ron");
    let out = common::labtui_cmd()
        .args([
            "race",
            "--model",
            "synthetic",
            "--b",
            "quant=q4_0",
            "--alone",
        ])
        .args(["-p", "the cat sat on the mat", "-n", "40", "--ignore-eos"])
        .args(["--format", "json", "--record"])
        .arg(&rec)
        .output_bounded();
    let v = race_json(&out);
    assert_eq!(v["race"]["a"]["label"], "baseline");
    assert_eq!(v["race"]["b"]["label"], "Q4_0");
    assert_eq!(v["race"]["b"]["run"]["generated_tokens"], 40);
    let alone = v["alone"].as_array().unwrap();
    assert_eq!(alone.len(), 2);
    assert!(alone
        .iter()
        .all(|c| c["alone_tok_s"].as_f64().unwrap() > 0.0));
    // Q4_0 weights are smaller than the synthetic model's f32 ones.
    let bytes = |s: &str| v["race"][s]["weight_bytes"].as_u64().unwrap();
    assert!(bytes("b") < bytes("a"));

    let report = common::labtui_cmd()
        .args(["report", "--diff"])
        .arg(&rec)
        .output_bounded();
    let text = String::from_utf8_lossy(&report.stdout);
    assert!(report.status.success(), "{text}");
    assert!(text.contains("A: baseline · B: Q4_0"), "{text}");
    assert!(text.contains("| decode tok/s |"), "{text}");
    assert!(text.contains("B's decode speed over A's"), "{text}");

    // Cut the recording in the middle of the race: it loads, and the view has both sides.
    let whole = std::fs::read_to_string(&rec).unwrap();
    let lines: Vec<&str> = whole.lines().collect();
    let end = lines.iter().position(|l| l.contains("Finished(")).unwrap();
    let first_b = lines.iter().position(|l| l.contains("lane:B")).unwrap();
    let cut = dir.path().join("cut.ron");
    let at = (first_b + end) / 2;
    std::fs::write(
        &cut,
        format!("{}\n{}", lines[..at].join("\n"), &lines[at][..9]),
    )
    .unwrap();
    let loaded = labtui::record::load(&cut).unwrap();
    let mut s = AppState::new("synthetic", "");
    for e in &loaded.events {
        s.apply(e);
    }
    let race = s.store.race.expect("the race's start was recorded");
    assert!(race.running() && race.runs.iter().all(|r| r.is_some()));

    let bad = common::labtui_cmd()
        .args(["race", "--model", "synthetic", "--b", "speed=9", "-p", "x"])
        .output_bounded();
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        !bad.status.success() && err.contains("unknown race setting"),
        "{err}"
    );
    assert!(err.contains("quant, kv, draft, k, policy"), "{err}");
}

/// A race's events with fixed numbers: A decodes a token every 20 ms, B every 12.5 ms, and
/// their texts part at token 5; `finished` adds the ends and the summary.
#[allow(clippy::needless_range_loop)]
fn race_events(finished: bool) -> Vec<Stamped> {
    let words = |b: bool| -> Vec<String> {
        let mut w: Vec<String> = "fn add(a: i32, b: i32) -> i32 { a + b }\n"
            .split_inclusive(' ')
            .map(String::from)
            .collect();
        if b {
            w[5] = "u64, ".into();
        }
        w.extend((0..24).map(|i| format!("x{i} ")));
        w
    };
    let side = |label: &str, config: &str, weights: u64| RaceSide {
        label: label.into(),
        config: RaceConfig::parse(config).unwrap(),
        model: "synthetic-qwen2".into(),
        weight_bytes: weights,
    };
    let mut out = vec![Event::Race(RaceEvent::Started {
        a: Box::new(side("baseline", "", 373_000_000)),
        b: Box::new(side("Q4_0", "quant=q4_0", 210_000_000)),
        turns: true,
    })];
    let step = [Duration::from_millis(20), Duration::from_micros(12_500)];
    let lane = |l: Lane, e: Event| {
        Event::Race(RaceEvent::Lane {
            lane: l,
            event: Box::new(e),
        })
    };
    let texts = [words(false), words(true)];
    let n = if finished { texts[0].len() } else { 12 };
    for l in Lane::BOTH {
        out.push(lane(
            l,
            Event::RunStarted {
                run: l.index() as u64 + 1,
                prompt_tokens: 30,
                settings: RunSettings {
                    params: greedy(n),
                    quantization: Quant::AsLoaded,
                    draft_mode: DraftMode::None,
                    k: KPolicy::Fixed(4),
                    policy: Default::default(),
                },
                prompt: "write add".into(),
            },
        ));
        out.push(lane(
            l,
            Event::PrefillDone {
                run: l.index() as u64 + 1,
                tokens: 30,
                duration: Duration::from_millis(90 + 30 * l.index() as u64),
            },
        ));
    }
    for i in 0..n {
        for l in Lane::BOTH {
            let t = TokenEvent {
                index: i,
                id: i as u32,
                text: texts[l.index()][i].clone(),
                phase: if i == 0 {
                    Phase::Prefill
                } else {
                    Phase::Decode
                },
                prob: 0.9,
                // The first token comes at the prefill's end, the rest a step apart.
                elapsed: Duration::from_millis(90 + 30 * l.index() as u64)
                    + step[l.index()] * i as u32,
                step: step[l.index()],
                kv_tokens: 30 + i,
                kv_bytes: 12_288 * (30 + i) as u64,
            };
            out.push(lane(l, Event::Token(t)));
        }
    }
    if finished {
        let summary = |l: Lane| RunSummary {
            reason: FinishReason::MaxTokens,
            prompt_tokens: 30,
            generated_tokens: n,
            ttft: Duration::from_millis(90 + 30 * l.index() as u64),
            prefill: Duration::from_millis(90 + 30 * l.index() as u64),
            prefill_tok_s: 300.0,
            decode: step[l.index()] * (n as u32 - 1),
            decode_tok_s: 1.0 / step[l.index()].as_secs_f64(),
            itl_p50: step[l.index()],
            itl_p90: step[l.index()],
            itl_p99: step[l.index()],
            end_to_end: Duration::from_secs(1),
            kv_tokens: 30 + n,
            kv_bytes: 12_288 * (30 + n) as u64,
            text: texts[l.index()][..n].concat(),
            spec: None,
        };
        for l in Lane::BOTH {
            out.push(lane(
                l,
                Event::RunFinished {
                    run: l.index() as u64 + 1,
                    summary: summary(l),
                },
            ));
        }
        let itl: Vec<Vec<Duration>> = step.iter().map(|s| vec![*s; n - 1]).collect();
        let s = summarize(
            RaceSideSummary {
                label: "baseline".into(),
                run: summary(Lane::A),
                weight_bytes: 373_000_000,
            },
            RaceSideSummary {
                label: "Q4_0".into(),
                run: summary(Lane::B),
                weight_bytes: 210_000_000,
            },
            [&texts[0][..n], &texts[1][..n]],
            [&itl[0], &itl[1]],
        );
        out.push(Event::Race(RaceEvent::Finished(Box::new(s))));
    }
    out.into_iter()
        .enumerate()
        .map(|(i, event)| Stamped {
            at: Duration::from_millis(10 * i as u64),
            event,
        })
        .collect()
}

/// The race's view at 160×50 and 100×30, running and finished: both columns, the parted tokens,
/// the summary row.
#[test]
fn the_race_view_at_two_sizes() {
    use ratatui::{backend::TestBackend, Terminal};
    for finished in [false, true] {
        let mut s = AppState::new("synthetic", "write add");
        for e in race_events(finished) {
            s.apply(&e);
        }
        for (w, h) in [(160, 50), (100, 30)] {
            let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
            t.draw(|f| labtui::tui::view::render(&s, f.area(), f.buffer_mut()))
                .unwrap();
            let screen = format!("{:?}", t.backend());
            assert!(screen.contains("A · baseline") && screen.contains("B · Q4_0"));
            if finished {
                assert!(screen.contains("1.60×"), "B/A decode: {screen}");
                assert!(screen.contains("they part at token 5"), "{screen}");
            } else {
                assert!(screen.contains("racing … A 12 tokens, B 12"), "{screen}");
            }
            let state = if finished { "finished" } else { "running" };
            insta::assert_snapshot!(format!("race_{state}_{w}x{h}"), t.backend());
        }
    }
}

/// `e` on a finished race explains its figures, A's and B's of a kind together, then the
/// summary row's; at 100×30 they do not fit, and ↓ scrolls to the rest.
#[test]
fn e_explains_the_race_at_two_sizes() {
    use labtui::state::Action;
    use ratatui::{backend::TestBackend, Terminal};
    let mut s = AppState::new("synthetic", "write add");
    for e in race_events(true) {
        s.apply(&e);
    }
    s.update(Action::Explain);
    for (w, h) in [(160, 50), (100, 30)] {
        let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
        t.draw(|f| labtui::tui::view::render(&s, f.area(), f.buffer_mut()))
            .unwrap();
        let screen = format!("{:?}", t.backend());
        assert!(screen.contains("explain · A/B race"), "{screen}");
        assert!(screen.contains("A TTFT = 90.0 ms"), "{screen}");
        if w == 160 {
            assert!(screen.contains("tok/s B ÷ "), "{screen}");
        } else {
            assert!(screen.contains("more lines"), "{screen}");
            assert!(!screen.contains("agree ="), "{screen}");
        }
        insta::assert_snapshot!(format!("explain_race_{w}x{h}"), t.backend());
    }
    // ↓ to the end (and past it: the last line stays at the bottom), ↑ back.
    for _ in 0..100 {
        s.update(Action::ScrollUp);
    }
    let mut t = Terminal::new(TestBackend::new(100, 30)).unwrap();
    t.draw(|f| labtui::tui::view::render(&s, f.area(), f.buffer_mut()))
        .unwrap();
    let screen = format!("{:?}", t.backend());
    assert!(screen.contains("agree = 97%"), "{screen}");
    assert!(screen.contains("↑ earlier"), "{screen}");
    assert!(!screen.contains("A TTFT ="), "{screen}");
    s.update(Action::ScrollDown);
    assert_eq!(
        s.ui.view.explain_scroll, 99,
        "the tape's scroll is not touched"
    );
    assert_eq!(s.ui.view.scroll, 0);
}

/// The local engine against a server (a scripted mock on loopback): the sides run at once (the
/// server's run starts before the local one's 160 tokens end), the server's tokens and times are its
/// stream's, the summary compares them; a stop ends the server's stream too.
#[test]
fn a_race_against_a_server_runs_both_sides_at_once() {
    use labtui::serve::mock::{Mock, Script, MODEL};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _guard = rt.enter();
    let ms = Duration::from_millis;
    let mock = Mock::start(Script::paced(ms(30), ms(5), 1000)).unwrap();
    let mut w = Worker::spawn(Options {
        sample_every: None,
        ..Options::default()
    });
    w.send(Command::LoadModel {
        spec: "synthetic".into(),
    });
    let server = RaceConfig::parse(&format!("endpoint={}", mock.url())).unwrap();
    assert!(
        RaceConfig::parse(&format!("endpoint={},quant=q4_0", mock.url()))
            .unwrap_err()
            .contains("takes no model or engine settings")
    );
    let race_cmd = |n: usize| Command::Race {
        prompt: "one two three".into(),
        params: greedy(n),
        a: RaceConfig::default(),
        b: server.clone(),
    };
    let mut s = AppState::new("synthetic", "");
    let mut order = Vec::new();
    loop {
        let ev = w.events.blocking_recv().expect("the worker answers");
        s.apply(&ev);
        match &ev.event {
            Event::ModelLoaded(_) => w.send(race_cmd(160)),
            Event::Race(RaceEvent::Lane { lane, event }) => match **event {
                Event::RunStarted { .. } => order.push((*lane, "started")),
                Event::RunFinished { .. } => order.push((*lane, "finished")),
                _ => {}
            },
            Event::Race(RaceEvent::Finished(_)) => break,
            Event::Error { message } => panic!("{message}"),
            _ => {}
        }
    }
    let started_b = order
        .iter()
        .position(|o| *o == (Lane::B, "started"))
        .unwrap();
    let finished_a = order
        .iter()
        .position(|o| *o == (Lane::A, "finished"))
        .unwrap();
    assert!(
        started_b < finished_a,
        "the server's run starts while the local one runs: {order:?}"
    );
    let race = s.store.race.clone().unwrap();
    assert!(!race.turns, "a server's side runs at once, not in turns");
    assert_eq!(race.sides[1].label, format!("server {}", mock.url()));
    assert_eq!(race.sides[1].model, MODEL);
    let summary = race.summary.clone().unwrap();
    assert_eq!(summary.b.run.generated_tokens, 160);
    assert_eq!(race.runs[1].as_ref().unwrap().tokens.len(), 160);
    // The server's gaps are its script's 5 ms (and more), measured at the client.
    assert!(
        summary.b.run.itl_p50 >= ms(4),
        "{:?}",
        summary.b.run.itl_p50
    );
    assert!(summary.speed_ratio > 0.0);
    let mut t = ratatui::Terminal::new(ratatui::backend::TestBackend::new(160, 50)).unwrap();
    t.draw(|f| labtui::tui::view::render(&s, f.area(), f.buffer_mut()))
        .unwrap();
    let screen = format!("{:?}", t.backend());
    assert!(screen.contains("both sides run at once"), "{screen}");
    assert!(
        screen.contains("KV not known for a remote server"),
        "{screen}"
    );

    // A stop ends the server's 1000-token stream too, long before it would end.
    let began = std::time::Instant::now();
    w.send(race_cmd(1000));
    let ended = loop {
        let ev = w.events.blocking_recv().expect("the worker answers");
        match ev.event {
            Event::Race(RaceEvent::Lane {
                lane: Lane::B,
                event,
            }) if matches!(*event, Event::Token(_)) => w.send(Command::Stop),
            Event::Race(RaceEvent::Finished(f)) => break f,
            Event::Error { message } => panic!("{message}"),
            _ => {}
        }
    };
    assert_eq!(ended.b.run.reason, FinishReason::Stopped);
    assert!(ended.b.run.generated_tokens < 1000);
    assert!(
        began.elapsed() < Duration::from_secs(4),
        "{:?}",
        began.elapsed()
    );
}

/// The JSON `labtui race --format json` printed, once it succeeded.
fn race_json(out: &std::process::Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A preset can name a race: `labtui race --preset` runs its sides on its first prompt, and
/// picking it in the dashboard sends the race (once a model is loaded, if none is yet).
#[test]
fn a_preset_names_a_race_headless_and_in_the_dashboard() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("race-lookup.ron");
    std::fs::write(
        &path,
        r#"(format: 1, name: "race-lookup", description: "plain against lookup",
            prompts: ["one two three one two three one two"], params: (max_tokens: 24),
            race: Some((b: "draft=prompt-lookup,k=3")))"#,
    )
    .unwrap();
    let out = common::labtui_cmd()
        .args(["--model", "synthetic", "--preset"])
        .arg(&path)
        .args(["race", "--format", "json"])
        .output_bounded();
    let v = race_json(&out);
    assert_eq!(v["race"]["a"]["label"], "baseline");
    assert_eq!(v["race"]["b"]["label"], "prompt-lookup K=3");
    assert_eq!(v["race"]["b"]["run"]["generated_tokens"], 24);

    // A broken side is refused when the preset loads, naming the file.
    let bad = dir.path().join("bad.ron");
    std::fs::write(
        &bad,
        r#"(format: 1, name: "bad", description: "", prompts: ["x"], race: Some((b: "speed=9")))"#,
    )
    .unwrap();
    let err = labtui::preset::load(bad.to_str().unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("bad.ron") && err.contains("race: unknown race setting"),
        "{err}"
    );

    // The dashboard: picked before a model is loaded, the race waits for it.
    let preset = labtui::preset::load(path.to_str().unwrap()).unwrap();
    let mut s = AppState::new("synthetic", "");
    let cmds = s.ui.apply_preset(&s.store, &preset);
    assert!(
        !cmds.iter().any(|c| matches!(c, Command::Race { .. })),
        "{cmds:?}"
    );
    let mut w = Worker::spawn(Options {
        sample_every: None,
        ..Options::default()
    });
    w.send(Command::LoadModel {
        spec: "synthetic".into(),
    });
    loop {
        let ev = w.events.blocking_recv().expect("the worker answers");
        for cmd in s.apply(&ev) {
            w.send(cmd);
        }
        match &ev.event {
            Event::Race(RaceEvent::Finished(_)) => break,
            Event::Error { message } => panic!("{message}"),
            _ => {}
        }
    }
    let race = s.store.race.as_ref().unwrap();
    assert_eq!(race.sides[1].label, "prompt-lookup K=3");
    assert_eq!(s.ui.prompt, "one two three one two three one two");
    assert!(s.ui.race_shown(&s.store));
}
