//! Layer-wise quantization sensitivity and mixed precision, as data: which weight matrix
//! ([`Part`]), what squeezing it alone to a low type costs ([`SensCell`]), the sweep's plan and
//! progress ([`SensEvent`], rendered live and recorded), the finished map ([`SensMap`]), and a
//! per-matrix choice of types ([`MixSpec`]) that rebuilds a mixed-precision variant.

use super::{Quant, Setting};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// The kind of a weight matrix: the embeddings, the head, or one of a layer's seven.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TensorKind {
    Embed,
    Q,
    K,
    V,
    O,
    Gate,
    Up,
    Down,
    Head,
}

impl TensorKind {
    /// A layer's matrices, in the order the heat map's columns show them.
    pub const LAYER: [TensorKind; 7] = [
        TensorKind::Q,
        TensorKind::K,
        TensorKind::V,
        TensorKind::O,
        TensorKind::Gate,
        TensorKind::Up,
        TensorKind::Down,
    ];

    /// The short name a heat map column or a table shows.
    pub fn name(self) -> &'static str {
        match self {
            TensorKind::Embed => "embed",
            TensorKind::Q => "attn q",
            TensorKind::K => "attn k",
            TensorKind::V => "attn v",
            TensorKind::O => "attn o",
            TensorKind::Gate => "mlp gate",
            TensorKind::Up => "mlp up",
            TensorKind::Down => "mlp down",
            TensorKind::Head => "head",
        }
    }

    /// The tensor's name in a GGUF file (before `.weight`; layers add `blk.N.`).
    pub fn gguf(self) -> &'static str {
        match self {
            TensorKind::Embed => "token_embd",
            TensorKind::Q => "attn_q",
            TensorKind::K => "attn_k",
            TensorKind::V => "attn_v",
            TensorKind::O => "attn_output",
            TensorKind::Gate => "ffn_gate",
            TensorKind::Up => "ffn_up",
            TensorKind::Down => "ffn_down",
            TensorKind::Head => "output",
        }
    }
}

/// One weight matrix of a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Part {
    /// The layer, for a layer's matrices; `None` for the embeddings and the head.
    pub layer: Option<usize>,
    pub kind: TensorKind,
}

impl Part {
    pub fn embed() -> Self {
        Self {
            layer: None,
            kind: TensorKind::Embed,
        }
    }

    pub fn head() -> Self {
        Self {
            layer: None,
            kind: TensorKind::Head,
        }
    }

    pub fn layer(layer: usize, kind: TensorKind) -> Self {
        Self {
            layer: Some(layer),
            kind,
        }
    }

    /// Its tensor's name in a GGUF file: `blk.3.ffn_down.weight`, `token_embd.weight`.
    pub fn gguf_name(&self) -> String {
        match self.layer {
            Some(l) => format!("blk.{l}.{}.weight", self.kind.gguf()),
            None => format!("{}.weight", self.kind.gguf()),
        }
    }

    /// The part a GGUF tensor name names (`None` for norms, biases and other tensors).
    pub fn from_gguf_name(name: &str) -> Option<Self> {
        let stem = name.strip_suffix(".weight")?;
        let kind = |s: &str| {
            [TensorKind::Embed, TensorKind::Head]
                .into_iter()
                .chain(TensorKind::LAYER)
                .find(|k| k.gguf() == s)
        };
        match stem.strip_prefix("blk.") {
            Some(rest) => {
                let (l, k) = rest.split_once('.')?;
                let kind =
                    kind(k).filter(|k| !matches!(k, TensorKind::Embed | TensorKind::Head))?;
                Some(Self::layer(l.parse().ok()?, kind))
            }
            None => kind(stem)
                .filter(|k| matches!(k, TensorKind::Embed | TensorKind::Head))
                .map(|kind| Self { layer: None, kind }),
        }
    }

    /// `L3 mlp down`, `embed`.
    pub fn label(&self) -> String {
        match self.layer {
            Some(l) => format!("L{l} {}", self.kind.name()),
            None => self.kind.name().to_string(),
        }
    }
}

/// What a sensitivity sweep will measure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SensPlan {
    pub model: String,
    /// The low types each matrix is tried at, alone.
    pub types: Vec<Quant>,
    pub layers: usize,
    /// Every cell the sweep measures, in order: a matrix at a low type.
    pub cells: Vec<(Part, Quant)>,
    /// Cells left out, with why (the type would not save a byte, or is the one loaded).
    pub skipped: Vec<(Part, Quant, String)>,
    /// Positions of the reference text scored for each cell.
    pub scored: usize,
    /// The loaded weights' perplexity on that text.
    pub perplexity: f64,
    /// Every matrix as loaded: its GGML type and bytes.
    pub loaded: Vec<(Part, String, u64)>,
    /// Bytes of the loaded weights (all of them, norms and biases included).
    pub weight_bytes: u64,
    /// Cells taken from an earlier recording of the same sweep.
    #[serde(default)]
    pub resumed: usize,
    /// Where and when it was measured (the figures' subtitle).
    #[serde(default)]
    pub stamp: Option<Box<super::Stamp>>,
}

/// One measured cell: one matrix at one low type, the rest as loaded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SensCell {
    pub part: Part,
    /// The type asked for.
    pub quant: Quant,
    /// The GGML type the matrix took (a K-quant falls back on rows it does not fit).
    pub used: String,
    pub loaded_type: String,
    pub loaded_bytes: u64,
    pub bytes: u64,
    /// Mean KL divergence from the loaded weights' next-token distributions, in nats.
    pub kl: f64,
    /// How often the most likely next token is the loaded weights' one.
    pub top1: f64,
    pub perplexity: f64,
    /// Requantising the matrix and scoring the text.
    pub took: Duration,
}

impl SensCell {
    /// Bytes this cell's type saves against the loaded matrix.
    pub fn saved(&self) -> u64 {
        self.loaded_bytes.saturating_sub(self.bytes)
    }
}

/// A sensitivity sweep's progress, one event each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SensEvent {
    Started(Box<SensPlan>),
    Cell(SensCell),
    Finished { took: Duration },
}

/// A sensitivity map: the plan and the cells measured so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SensMap {
    pub plan: SensPlan,
    pub cells: Vec<SensCell>,
    /// Whole sweep time (`None` while it runs, or for a sweep stopped part way).
    #[serde(default)]
    pub took: Option<Duration>,
}

impl SensMap {
    pub fn new(plan: SensPlan) -> Self {
        Self {
            plan,
            cells: Vec::new(),
            took: None,
        }
    }

    /// Take one event of a sweep (a `Started` begins a new map).
    pub fn apply(map: &mut Option<SensMap>, e: &SensEvent) {
        match e {
            SensEvent::Started(plan) => *map = Some(SensMap::new((**plan).clone())),
            SensEvent::Cell(c) => {
                if let Some(m) = map {
                    m.cells.retain(|x| (x.part, x.quant) != (c.part, c.quant));
                    m.cells.push(c.clone());
                }
            }
            SensEvent::Finished { took } => {
                if let Some(m) = map {
                    m.took = Some(*took);
                }
            }
        }
    }

    /// The last map the events build (a sweep's events, or a recording's).
    pub fn from_events<'a>(events: impl IntoIterator<Item = &'a SensEvent>) -> Option<SensMap> {
        let mut map = None;
        for e in events {
            Self::apply(&mut map, e);
        }
        map
    }

    pub fn cell(&self, part: Part, quant: Quant) -> Option<&SensCell> {
        self.cells
            .iter()
            .find(|c| c.part == part && c.quant == quant)
    }

    /// Cells measured of those planned.
    pub fn progress(&self) -> (usize, usize) {
        (self.cells.len(), self.plan.cells.len())
    }

    /// The time left at the pace of the cells measured so far.
    pub fn eta(&self) -> Option<Duration> {
        let (done, total) = self.progress();
        let fresh: Vec<&SensCell> = self.cells.iter().skip(self.plan.resumed).collect();
        if fresh.is_empty() || done >= total {
            return None;
        }
        let mean = fresh.iter().map(|c| c.took).sum::<Duration>() / fresh.len() as u32;
        Some(mean * (total - done) as u32)
    }

    /// The matrices in heat-map rows: the embeddings, each layer, the head.
    pub fn rows(&self) -> Vec<(String, Vec<Part>)> {
        let has = |p: Part| self.plan.loaded.iter().any(|(x, _, _)| *x == p);
        let mut rows = Vec::new();
        let globals: Vec<Part> = [Part::embed(), Part::head()]
            .into_iter()
            .filter(|p| has(*p))
            .collect();
        for l in 0..self.plan.layers {
            rows.push((
                format!("L{l}"),
                TensorKind::LAYER
                    .iter()
                    .map(|&k| Part::layer(l, k))
                    .collect(),
            ));
        }
        if !globals.is_empty() {
            rows.push(("embed/head".into(), globals));
        }
        rows
    }
}

/// A mixed-precision variant: the type each matrix takes (matrices not named stay as loaded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MixSpec {
    /// What the table shows for it: `mixed 406 MiB`.
    pub label: String,
    /// GGUF tensor name → type.
    pub types: BTreeMap<String, Quant>,
}

impl std::fmt::Display for MixSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.label, self.summary())
    }
}

impl MixSpec {
    /// The parts it names and their types; an unknown tensor name is an error that names it.
    pub fn parts(&self) -> Result<BTreeMap<Part, Quant>, String> {
        self.types
            .iter()
            .map(|(name, q)| {
                Part::from_gguf_name(name)
                    .map(|p| (p, *q))
                    .ok_or_else(|| format!("{name:?} is not a weight matrix's tensor name"))
            })
            .collect()
    }

    /// How many matrices take each type: `Q4_0 × 120, Q3_K × 24`.
    pub fn summary(&self) -> String {
        let mut by: BTreeMap<&str, usize> = BTreeMap::new();
        for q in self.types.values() {
            *by.entry(q.name()).or_default() += 1;
        }
        by.into_iter()
            .map(|(q, n)| format!("{q} × {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The sensitivity demo's numbers: the map, and mixes built from it beside the uniform types
/// whose sizes they match.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SensDemo {
    pub map: SensMap,
    /// The uniform types and the mixes, measured alike.
    pub rows: Vec<super::quant_row::QuantRow>,
    pub mixes: Vec<MixRow>,
    /// As the quantization demo's `matmul_params`.
    pub matmul_params: u64,
}

/// One mix: the size it matched, what it squeezed, and its KL predicted and measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MixRow {
    pub spec: MixSpec,
    /// What its size matches (a uniform type's name).
    pub like: String,
    /// The sum of the map's cells it took.
    pub predicted_kl: f64,
    pub measured_kl: f64,
    /// The KL of what it matched.
    pub like_kl: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gguf_names_round_trip_and_others_are_not_parts() {
        for p in [
            Part::embed(),
            Part::head(),
            Part::layer(0, TensorKind::Q),
            Part::layer(23, TensorKind::Down),
            Part::layer(7, TensorKind::O),
        ] {
            assert_eq!(Part::from_gguf_name(&p.gguf_name()), Some(p));
        }
        assert_eq!(
            Part::layer(3, TensorKind::O).gguf_name(),
            "blk.3.attn_output.weight"
        );
        for other in [
            "blk.0.attn_norm.weight",
            "blk.0.attn_q.bias",
            "output_norm.weight",
            "blk.x.attn_q.weight",
            "blk.1.token_embd.weight",
            "attn_q.weight",
        ] {
            assert_eq!(Part::from_gguf_name(other), None, "{other}");
        }
    }

    #[test]
    fn a_map_from_events_keeps_the_last_measure_of_a_cell_and_estimates_the_rest() {
        let part = Part::layer(0, TensorKind::Q);
        let plan = SensPlan {
            model: "m".into(),
            types: vec![Quant::Q4_0],
            layers: 1,
            cells: vec![
                (part, Quant::Q4_0),
                (Part::layer(0, TensorKind::K), Quant::Q4_0),
            ],
            skipped: vec![],
            scored: 10,
            perplexity: 3.0,
            loaded: vec![(part, "Q8_0".into(), 100)],
            weight_bytes: 1000,
            resumed: 0,
            stamp: None,
        };
        let cell = |kl: f64| SensCell {
            part,
            quant: Quant::Q4_0,
            used: "Q4_0".into(),
            loaded_type: "Q8_0".into(),
            loaded_bytes: 100,
            bytes: 60,
            kl,
            top1: 0.9,
            perplexity: 3.1,
            took: Duration::from_secs(2),
        };
        let events = [
            SensEvent::Started(Box::new(plan)),
            SensEvent::Cell(cell(0.5)),
            SensEvent::Cell(cell(0.25)),
        ];
        let map = SensMap::from_events(&events).unwrap();
        assert_eq!(map.progress(), (1, 2));
        assert_eq!(map.cell(part, Quant::Q4_0).unwrap().kl, 0.25);
        assert_eq!(map.cell(part, Quant::Q4_0).unwrap().saved(), 40);
        assert_eq!(map.eta(), Some(Duration::from_secs(2)));
        assert_eq!(map.took, None);
    }
}
