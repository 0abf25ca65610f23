//! The whole dashboard in process, as gitui tests itself: the app loop takes keys from a channel
//! this test drives, worker events from a real worker on the synthetic model and its own frame
//! ticks, and draws to ratatui's `TestBackend`. One session: type a prompt, run it, change K and
//! the draft mode, run again speculatively, open the help, quit — no terminal anywhere.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use labtui::protocol::{DraftMode, KPolicy};
use labtui::state::Focus;
use labtui::tui::{App, Input, Start};
use labtui::worker::Options;
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use std::time::Duration;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

fn key(code: KeyCode) -> std::io::Result<Input> {
    Ok(Input::Key(KeyEvent::new(code, KeyModifiers::NONE)))
}

/// What the loop showed after a frame: the screen's text and the facts the test waits on.
#[derive(Debug, Clone)]
struct Frame {
    screen: String,
    finished_runs: usize,
    running: bool,
    focus: Focus,
    draft_mode: DraftMode,
    k: KPolicy,
    help: bool,
}

struct Driver {
    keys: UnboundedSender<std::io::Result<Input>>,
    frames: UnboundedReceiver<Frame>,
    last: Option<Frame>,
}

impl Driver {
    fn press(&self, code: KeyCode) {
        self.keys.send(key(code)).unwrap();
    }

    fn type_text(&self, text: &str) {
        text.chars().for_each(|c| self.press(KeyCode::Char(c)));
    }

    /// Frames until one satisfies `pred` (or fail after 60 s with the last screen).
    async fn until(&mut self, what: &str, pred: impl Fn(&Frame) -> bool) -> Frame {
        let wait = async {
            while let Some(f) = self.frames.recv().await {
                let ok = pred(&f);
                self.last = Some(f.clone());
                if ok {
                    return Some(f);
                }
            }
            None
        };
        match tokio::time::timeout(Duration::from_secs(60), wait).await {
            Ok(Some(f)) => f,
            _ => panic!(
                "no frame with {what}; last screen:\n{}",
                self.last.as_ref().map_or("(none)", |f| f.screen.as_str())
            ),
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_whole_session_on_the_synthetic_model_with_no_terminal() {
    let (key_tx, key_rx) = unbounded_channel();
    let (frame_tx, frame_rx) = unbounded_channel();
    let mut app = App::new(
        Start::local(Some("synthetic".into())),
        Options {
            sample_every: None,
            ..Options::default()
        },
    );
    let mut terminal = Terminal::new(TestBackend::new(160, 50)).unwrap();
    let inputs = tokio_stream_of(key_rx);
    let session = async move {
        app.run(
            &mut terminal,
            inputs,
            Duration::from_millis(5),
            move |state, buf| {
                let screen = labtui::tui::shot::text(buf);
                let _ = frame_tx.send(Frame {
                    screen,
                    finished_runs: state.store.history.len(),
                    running: state.store.running(),
                    focus: state.ui.view.focus,
                    draft_mode: state.ui.asked.draft_mode,
                    k: state.ui.asked.k,
                    help: state.ui.help_open(),
                });
            },
        )
        .await
        .unwrap();
        app
    };
    let mut d = Driver {
        keys: key_tx,
        frames: frame_rx,
        last: None,
    };
    let script = async move {
        d.until("the model loaded", |f| f.screen.contains("synthetic-qwen2"))
            .await;
        d.type_text("Count to ten.");
        d.until("the typed prompt", |f| f.screen.contains("Count to ten."))
            .await;
        d.press(KeyCode::Enter);
        let first = d.until("a finished run", |f| f.finished_runs == 1).await;
        assert!(first.screen.contains("decode"), "{}", first.screen);
        assert!(first.screen.contains("run 1 done"), "{}", first.screen);

        // Leave the prompt; letters become commands.
        d.press(KeyCode::Tab);
        d.until("the tape in focus", |f| f.focus == Focus::Tape)
            .await;
        d.press(KeyCode::Char(']'));
        d.press(KeyCode::Char(']'));
        let f = d.until("K 6", |f| f.k == KPolicy::Fixed(6)).await;
        assert!(f.screen.contains("K 6"), "{}", f.screen);
        d.press(KeyCode::Char('d'));
        d.press(KeyCode::Char('d'));
        let f = d
            .until("prompt-lookup drafts", |f| {
                f.draft_mode == DraftMode::PromptLookup
            })
            .await;
        assert!(f.screen.contains("draft prompt-lookup"), "{}", f.screen);
        // A lossy acceptance policy is named so in the header.
        d.press(KeyCode::Char('a'));
        d.until("a lossy policy", |f| f.screen.contains("tau=0.3 (lossy)"))
            .await;

        // The second run speculates with what was chosen.
        d.press(KeyCode::Char('r'));
        let second = d
            .until("a second finished run", |f| {
                f.finished_runs == 2 && !f.running
            })
            .await;
        assert!(
            second.screen.contains("run prompt-lookup"),
            "{}",
            second.screen
        );

        d.press(KeyCode::Char('?'));
        let help = d.until("the help", |f| f.help).await;
        assert!(
            help.screen.contains("keys · ? or Esc closes"),
            "{}",
            help.screen
        );
        d.press(KeyCode::Esc);
        d.until("the help closed", |f| !f.help).await;
        d.press(KeyCode::Char('q'));
    };
    let (app, ()) = tokio::join!(session, script);
    assert!(app.state.ui.quit);
    assert_eq!(app.state.store.history.len(), 2);
    let last = app.state.store.current.as_ref().unwrap();
    assert_eq!(last.draft_mode, DraftMode::PromptLookup);
    assert_eq!(last.k, KPolicy::Fixed(6));
    // The second run verified by the lossy policy chosen before it, and says so.
    assert_eq!(last.policy, labtui::protocol::AcceptPolicy::Threshold(300));
}

/// The dashboard on a served model: the mock's name in the panes, its tokens on the tape and a
/// finished run, with no local model anywhere.
#[tokio::test(flavor = "current_thread")]
async fn a_session_on_a_remote_endpoint_shows_its_tokens() {
    use labtui::serve::mock::{Mock, Script};
    let mock = Mock::start(Script::paced(
        Duration::from_millis(5),
        Duration::from_millis(5),
        12,
    ))
    .unwrap();
    let (key_tx, key_rx) = unbounded_channel();
    let (frame_tx, frame_rx) = unbounded_channel();
    let mut app = App::new(
        Start::remote(mock.endpoint(labtui::serve::Api::Chat)),
        Options {
            sample_every: None,
            ..Options::default()
        },
    );
    let mut terminal = Terminal::new(TestBackend::new(160, 50)).unwrap();
    let inputs = tokio_stream_of(key_rx);
    let session = async move {
        app.run(
            &mut terminal,
            inputs,
            Duration::from_millis(5),
            move |state, buf| {
                let _ = frame_tx.send(Frame {
                    screen: labtui::tui::shot::text(buf),
                    finished_runs: state.store.history.len(),
                    running: state.store.running(),
                    focus: state.ui.view.focus,
                    draft_mode: state.ui.asked.draft_mode,
                    k: state.ui.asked.k,
                    help: state.ui.help_open(),
                });
            },
        )
        .await
        .unwrap();
        app
    };
    let mut d = Driver {
        keys: key_tx,
        frames: frame_rx,
        last: None,
    };
    let script = async move {
        d.until("the served model", |f| f.screen.contains("mock-model"))
            .await;
        d.type_text("Hello there");
        d.until("the typed prompt", |f| f.screen.contains("Hello there"))
            .await;
        d.press(KeyCode::Enter);
        let done = d
            .until("a finished run", |f| f.finished_runs == 1 && !f.running)
            .await;
        assert!(done.screen.contains("w0"), "{}", done.screen);
        assert!(done.screen.contains("w11"), "{}", done.screen);
        d.press(KeyCode::Tab);
        d.press(KeyCode::Char('q'));
    };
    let (app, ()) = tokio::join!(session, script);
    assert!(app.state.ui.quit);
    let run = app.state.store.history.last().unwrap();
    assert_eq!(run.generated_tokens, 12);
}

/// The receiver as a stream the loop reads.
fn tokio_stream_of(
    mut rx: UnboundedReceiver<std::io::Result<Input>>,
) -> impl futures::Stream<Item = std::io::Result<Input>> + Unpin {
    Box::pin(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)))
}
