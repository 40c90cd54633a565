//! The live view (ratatui on crossterm): reads `/metrics` every `--interval`; `s` cycles the
//! sort column, arrows or `j`/`k` move through the ports, `q` or Esc quits.

use super::model::{Snapshot, SortKey, View};
use super::plain::{
    DROP_HEADER, FLOW_HEADER, HEALTH_HEADER, PORT_HEADER, drop_cells, flow_cells, health_cells,
    port_cells,
};
use super::{Client, TopArgs, TopError};
use crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::Frame;
use ratatui::layout::{Constraint, Flex, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::widgets::{Block, Paragraph, Row, Table, TableState};
use std::time::Instant;

/// What the screen shows, and what it was computed from (a new sort recomputes it).
#[derive(Debug, Default)]
pub struct Screen {
    pub sort: SortKey,
    prev: Option<(Snapshot, Instant)>,
    cur: Option<(Snapshot, Instant)>,
    pub view: View,
    pub ports: TableState,
    /// The last read's error, shown in the header (the last good view stays).
    pub error: Option<String>,
}

/// What a key asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Quit,
    Sort,
    Up,
    Down,
    None,
}

pub fn action(code: KeyCode, modifiers: KeyModifiers) -> Action {
    match code {
        KeyCode::Char('q') | KeyCode::Esc => Action::Quit,
        KeyCode::Char('c') if modifiers.contains(KeyModifiers::CONTROL) => Action::Quit,
        KeyCode::Char('s') => Action::Sort,
        KeyCode::Up | KeyCode::Char('k') => Action::Up,
        KeyCode::Down | KeyCode::Char('j') => Action::Down,
        _ => Action::None,
    }
}

impl Screen {
    /// A new read.
    pub fn update(&mut self, snapshot: Snapshot, at: Instant) {
        self.prev = self.cur.take();
        self.cur = Some((snapshot, at));
        self.error = None;
        self.recompute();
    }

    fn recompute(&mut self) {
        let Some((cur, at)) = &self.cur else {
            return;
        };
        let prev = self.prev.as_ref();
        let secs = prev.map_or(0.0, |(_, p)| at.duration_since(*p).as_secs_f64());
        self.view = View::new(prev.map(|(s, _)| s), cur, secs, self.sort);
        let n = self.view.ports.len();
        match self.ports.selected() {
            None if n > 0 => self.ports.select(Some(0)),
            Some(i) if i >= n => self.ports.select(n.checked_sub(1)),
            _ => {}
        }
    }

    /// Applies a key; false to quit.
    pub fn key(&mut self, a: Action) -> bool {
        match a {
            Action::Quit => return false,
            Action::Sort => {
                self.sort = self.sort.next();
                self.recompute();
            }
            Action::Up => {
                let i = self.ports.selected().unwrap_or(0);
                self.ports.select(Some(i.saturating_sub(1)));
            }
            Action::Down => {
                let n = self.view.ports.len();
                let i = self.ports.selected().map_or(0, |i| i + 1);
                self.ports.select((n > 0).then(|| i.min(n - 1)));
            }
            Action::None => {}
        }
        true
    }
}

pub fn run(
    args: &TopArgs,
    runtime: &tokio::runtime::Runtime,
    client: &Client,
) -> Result<(), TopError> {
    let mut terminal = ratatui::try_init().map_err(TopError::Terminal)?;
    let result = event_loop(args, runtime, client, &mut terminal);
    ratatui::restore();
    result
}

fn event_loop(
    args: &TopArgs,
    runtime: &tokio::runtime::Runtime,
    client: &Client,
    terminal: &mut ratatui::DefaultTerminal,
) -> Result<(), TopError> {
    let mut screen = Screen::default();
    let mut next_read = Instant::now();
    loop {
        if Instant::now() >= next_read {
            let at = Instant::now();
            match runtime.block_on(client.snapshot()) {
                Ok(s) => screen.update(s, at),
                Err(e) => screen.error = Some(e.to_string()),
            }
            next_read = at + args.interval;
        }
        terminal
            .draw(|f| draw(f, args, &mut screen))
            .map_err(TopError::Terminal)?;
        let wait = next_read.saturating_duration_since(Instant::now());
        if event::poll(wait).map_err(TopError::Terminal)?
            && let Event::Key(k) = event::read().map_err(TopError::Terminal)?
            && k.kind == KeyEventKind::Press
            && !screen.key(action(k.code, k.modifiers))
        {
            return Ok(());
        }
    }
}

fn header_row<const N: usize>(h: [&'static str; N]) -> Row<'static> {
    Row::new(h).style(Style::new().add_modifier(Modifier::BOLD | Modifier::REVERSED))
}

pub fn draw(f: &mut Frame, args: &TopArgs, screen: &mut Screen) {
    let v = &screen.view;
    let bottom = (v.drops.len().max(v.health.len()).min(8) + 3) as u16;
    let [head, ports, flows, low] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Percentage(40),
        Constraint::Fill(1),
        Constraint::Length(bottom),
    ])
    .areas(f.area());
    let status = match &screen.error {
        Some(e) => format!("  ERROR: {e}"),
        None => String::new(),
    };
    let title = format!(
        "dataplane-collector top  {}  every {:?}  sort: {} (s)  q: quit{status}",
        args.url,
        args.interval,
        screen.sort.label()
    );
    f.render_widget(Paragraph::new(title), head);

    let rows: Vec<Row> = v.ports.iter().map(|r| Row::new(port_cells(r))).collect();
    let table = Table::new(
        rows,
        [
            Constraint::Length(12),
            Constraint::Length(16),
            Constraint::Length(28),
            Constraint::Length(9),
            Constraint::Length(9),
            Constraint::Length(8),
            Constraint::Length(8),
            Constraint::Length(9),
            Constraint::Length(6),
        ],
    )
    .flex(Flex::Start)
    .header(header_row(PORT_HEADER))
    .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED))
    .block(Block::bordered().title(format!(" Ports and pods ({}) ", v.ports.len())));
    f.render_stateful_widget(table, ports, &mut screen.ports);

    let rows: Vec<Row> = v.flows.iter().map(|r| Row::new(flow_cells(r))).collect();
    let table = Table::new(
        rows,
        [
            Constraint::Length(12),
            Constraint::Length(5),
            Constraint::Length(5),
            Constraint::Length(10),
            Constraint::Length(9),
            Constraint::Length(8),
            Constraint::Length(9),
            Constraint::Length(9),
            Constraint::Fill(2),
            Constraint::Fill(1),
        ],
    )
    .header(header_row(FLOW_HEADER))
    .block(Block::bordered().title(format!(" OpenFlow flows ({}) ", v.flows.len())));
    f.render_widget(table, flows);

    let [drops, health] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(low);
    let rows: Vec<Row> = v.drops.iter().map(|r| Row::new(drop_cells(r))).collect();
    let table = Table::new(
        rows,
        [
            Constraint::Fill(1),
            Constraint::Length(9),
            Constraint::Length(9),
        ],
    )
    .header(header_row(DROP_HEADER))
    .block(Block::bordered().title(" Drops "));
    f.render_widget(table, drops);
    let rows: Vec<Row> = v.health.iter().map(|r| Row::new(health_cells(r))).collect();
    let table = Table::new(
        rows,
        [
            Constraint::Fill(1),
            Constraint::Length(8),
            Constraint::Length(8),
            Constraint::Length(7),
            Constraint::Length(6),
            Constraint::Length(6),
            Constraint::Length(6),
        ],
    )
    .header(header_row(HEALTH_HEADER))
    .block(Block::bordered().title(" Datapaths "));
    f.render_widget(table, health);
}

#[cfg(test)]
mod tests {
    use super::super::prom;
    use super::*;
    use ratatui::backend::TestBackend;
    use std::time::Duration;

    fn snap(t: &str) -> Snapshot {
        Snapshot::from_samples(&prom::parse(t, super::super::model::wanted, 100_000).expect("ok"))
    }

    #[test]
    fn keys_sort_move_and_quit_and_the_screen_draws() {
        let args = super::super::test_args(&[]);
        let mut screen = Screen::default();
        let t0 = Instant::now();
        screen.update(
            snap(include_str!("../../tests/fixtures/top/before.txt")),
            t0,
        );
        screen.update(
            snap(include_str!("../../tests/fixtures/top/after.txt")),
            t0 + Duration::from_secs(2),
        );
        assert_eq!(screen.view.ports[0].pod, "shop/web-0");
        assert_eq!(screen.ports.selected(), Some(0));
        assert!(screen.key(action(KeyCode::Char('j'), KeyModifiers::NONE)));
        assert!(screen.key(action(KeyCode::Down, KeyModifiers::NONE)));
        assert_eq!(screen.ports.selected(), Some(2));
        assert!(screen.key(action(KeyCode::Up, KeyModifiers::NONE)));
        assert_eq!(screen.ports.selected(), Some(1));
        assert!(screen.key(action(KeyCode::Char('s'), KeyModifiers::NONE)));
        assert_eq!(screen.sort, SortKey::Packets);
        for _ in 0..100 {
            screen.key(Action::Down);
        }
        assert_eq!(screen.ports.selected(), Some(screen.view.ports.len() - 1));
        assert!(!screen.key(action(KeyCode::Char('q'), KeyModifiers::NONE)));
        assert_eq!(action(KeyCode::Esc, KeyModifiers::NONE), Action::Quit);
        assert_eq!(
            action(KeyCode::Char('c'), KeyModifiers::CONTROL),
            Action::Quit
        );

        let mut terminal = ratatui::Terminal::new(TestBackend::new(160, 50)).expect("terminal");
        terminal
            .draw(|f| draw(f, &args, &mut screen))
            .expect("draws");
        let buf = terminal.backend().buffer();
        let text: String = (0..buf.area.height)
            .map(|y| {
                (0..buf.area.width)
                    .map(|x| buf[(x, y)].symbol())
                    .collect::<String>()
                    + "\n"
            })
            .collect();
        assert!(text.starts_with("dataplane-collector top  http://127.0.0.1:9477/metrics"));
        assert!(text.contains("sort: packets/s"), "{text}");
        for want in [
            "shop/web-0",
            "0x2100",
            "drop_action_of_pipeline",
            "ovs-system",
        ] {
            assert!(text.contains(want), "{want} in\n{text}");
        }
    }
}
