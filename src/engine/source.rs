//! Where a model comes from: a local path, a file in the models directory, the Hugging Face Hub,
//! or the built-in synthetic model.

use super::error::{EngineError, Result};
use std::path::{Path, PathBuf};

/// The model labtui opens when none is named.
pub const DEFAULT_MODEL: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf";
/// Where the default model lives on the Hub.
pub const DEFAULT_HUB: &str =
    "hf:Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf";

/// What a person can do to get a model, appended to the errors of a model not found.
pub const HOW_TO_GET: &str = "pass a path to a .gguf file or a checkpoint folder, put it in the models directory \
($LABTUI_MODELS, else ./models), use hf:OWNER/REPO/FILE.gguf (a GGUF file) or hf:OWNER/REPO (a safetensors checkpoint) \
to download from the Hugging Face Hub, or use `synthetic` for the built-in tiny model";

/// The files of a Hub checkpoint that labtui reads (the weights, their index, the configuration
/// and the tokenizer): nothing else of the repository is downloaded.
pub const CHECKPOINT_FILES: [&str; 5] = [
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "*.safetensors",
    "*.safetensors.index.json",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    Synthetic,
    File(PathBuf),
    Hub {
        repo: String,
        file: String,
    },
    /// A Hugging Face checkpoint repository (config.json, tokenizer.json, safetensors).
    HubCheckpoint {
        repo: String,
    },
}

/// The models directory: `$LABTUI_MODELS`, else `./models`.
pub fn models_dir() -> PathBuf {
    std::env::var_os("LABTUI_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("models"))
}

fn hub_ref(s: &str) -> Option<(String, String)> {
    let rest = s.strip_prefix("hf:").unwrap_or(s);
    let mut parts = rest.splitn(3, '/');
    let (owner, name, file) = (parts.next()?, parts.next()?, parts.next()?);
    (!owner.is_empty() && !name.is_empty() && file.ends_with(".gguf"))
        .then(|| (format!("{owner}/{name}"), file.to_string()))
}

/// The default model: the file in the models directory when it is there, else its Hub reference.
pub fn default_spec() -> String {
    if models_dir().join(DEFAULT_MODEL).exists() {
        DEFAULT_MODEL.to_string()
    } else {
        DEFAULT_HUB.to_string()
    }
}

/// Decide where `spec` points, without reading it.
pub fn resolve(spec: &str) -> Result<ModelSource> {
    let spec = spec.trim();
    if spec.is_empty() {
        return Err(EngineError::UnknownModel {
            spec: spec.into(),
            hint: HOW_TO_GET.into(),
        });
    }
    if spec == "synthetic" {
        return Ok(ModelSource::Synthetic);
    }
    if let Some(rest) = spec.strip_prefix("hf:") {
        if let Some((repo, file)) = hub_ref(spec) {
            return Ok(ModelSource::Hub { repo, file });
        }
        return match rest.split('/').collect::<Vec<_>>().as_slice() {
            [owner, name] if !owner.is_empty() && !name.is_empty() => {
                Ok(ModelSource::HubCheckpoint { repo: rest.into() })
            }
            _ => Err(EngineError::UnknownModel {
                spec: spec.into(),
                hint: "a Hub reference is hf:OWNER/REPO/FILE.gguf (a GGUF file) or hf:OWNER/REPO \
                       (a safetensors checkpoint)"
                    .into(),
            }),
        };
    }
    let path = Path::new(spec);
    if path.exists() {
        return Ok(ModelSource::File(path.to_path_buf()));
    }
    let in_dir = models_dir().join(spec);
    if in_dir.exists() {
        return Ok(ModelSource::File(in_dir));
    }
    if !path.is_absolute() && !spec.starts_with('.') {
        if let Some((repo, file)) = hub_ref(spec) {
            return Ok(ModelSource::Hub { repo, file });
        }
    }
    Err(EngineError::NotFound {
        path: path.to_path_buf(),
        hint: format!(" (nor in {}): {HOW_TO_GET}", models_dir().display()),
    })
}

/// The local path of a model: the file or folder itself, downloaded (or found in the Hub cache)
/// for a Hub reference; `None` for the synthetic model.
pub fn fetch(
    source: &ModelSource,
    progress: impl Fn(u64, u64) + Send + Sync + 'static,
) -> Result<Option<PathBuf>> {
    Ok(match source {
        ModelSource::Synthetic => None,
        ModelSource::File(p) => Some(p.clone()),
        ModelSource::Hub { repo, file } => Some(fetch_from_hub(repo, file, progress)?),
        ModelSource::HubCheckpoint { repo } => Some(fetch_checkpoint(repo, progress)?),
    })
}

struct Report<F>(F);

impl<F: Fn(u64, u64) + Send + Sync> hf_hub::progress::ProgressHandler for Report<F> {
    fn on_progress(&self, event: &hf_hub::progress::ProgressEvent) {
        use hf_hub::progress::{DownloadEvent, ProgressEvent};
        match event {
            ProgressEvent::Download(DownloadEvent::Progress { files }) => {
                for f in files {
                    (self.0)(f.bytes_completed, f.total_bytes);
                }
            }
            ProgressEvent::Download(DownloadEvent::AggregateProgress {
                bytes_completed,
                total_bytes,
                ..
            }) => (self.0)(*bytes_completed, *total_bytes),
            _ => {}
        }
    }
}

fn hub_repo(repo: &str) -> Result<hf_hub::HFRepositorySync<hf_hub::RepoTypeModel>> {
    let (owner, name) = repo
        .split_once('/')
        .ok_or_else(|| EngineError::Hub(format!("{repo} is not OWNER/REPO")))?;
    let client = hf_hub::HFClientSync::new().map_err(|e| EngineError::Hub(e.to_string()))?;
    Ok(client.model(owner, name))
}

/// Download (or find in the Hub cache) `file` of `repo`, reporting bytes done and total.
pub fn fetch_from_hub(
    repo: &str,
    file: &str,
    progress: impl Fn(u64, u64) + Send + Sync + 'static,
) -> Result<PathBuf> {
    hub_repo(repo)?
        .download_file()
        .filename(file)
        .progress(hf_hub::progress::Progress::new(Report(progress)))
        .send()
        .map_err(|e| {
            let e = hub_error(&e);
            EngineError::Hub(format!("cannot get {file} from {repo}: {e} ({HOW_TO_GET})"))
        })
}

/// The Hub client's error with its request URL once (its words for a failed request name the
/// URL, and the transport error under them names it again) and the causes under it.
fn hub_error(e: &hf_hub::HFError) -> String {
    match e {
        hf_hub::HFError::Request { source, url } => {
            let mut why = Vec::new();
            let mut cause = std::error::Error::source(source);
            while let Some(c) = cause {
                why.push(c.to_string());
                cause = c.source();
            }
            let url = url.as_deref().map_or_else(
                || source.url().map(|u| u.to_string()).unwrap_or_default(),
                str::to_string,
            );
            if why.is_empty() {
                format!("cannot reach {url}")
            } else {
                format!("cannot reach {url}: {}", why.join(": "))
            }
        }
        e => e.to_string(),
    }
}

/// The cache folder of checkpoint `repo`'s main revision, with its [`CHECKPOINT_FILES`]:
/// downloaded (only what is missing), or, when the Hub cannot be reached (or `HF_HUB_OFFLINE`
/// is set), as the cache already holds it.
pub fn fetch_checkpoint(
    repo: &str,
    progress: impl Fn(u64, u64) + Send + Sync + 'static,
) -> Result<PathBuf> {
    let hub = hub_repo(repo)?;
    let cached = || {
        hub.snapshot_download()
            .local_files_only(true)
            .send()
            .map_err(|e| e.to_string())
    };
    let offline = std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| !v.is_empty() && v != "0");
    let dir = if offline {
        cached().map_err(|e| {
            EngineError::Hub(format!(
                "HF_HUB_OFFLINE is set and {repo} is not in the Hub cache: {e} ({HOW_TO_GET})"
            ))
        })?
    } else {
        let got = hub
            .snapshot_download()
            .allow_patterns(CHECKPOINT_FILES.map(String::from).to_vec())
            .progress(hf_hub::progress::Progress::new(Report(progress)))
            .send();
        match got {
            Ok(dir) => dir,
            Err(online) => cached().map_err(|offline| {
                EngineError::Hub(format!(
                    "cannot get {repo} from the Hub ({online}) nor from its cache ({offline}) \
                     ({HOW_TO_GET})"
                ))
            })?,
        }
    };
    if !super::hf::is_checkpoint(&dir) {
        return Err(EngineError::Hub(format!(
            "{repo} is not a checkpoint labtui reads: {} has no config.json and safetensors \
             weights ({HOW_TO_GET})",
            dir.display()
        )));
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_resolve_to_their_sources() {
        assert_eq!(resolve("synthetic").unwrap(), ModelSource::Synthetic);
        assert_eq!(
            resolve("hf:Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF/q.gguf").unwrap(),
            ModelSource::Hub {
                repo: "Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF".into(),
                file: "q.gguf".into()
            }
        );
        assert!(resolve("hf:nope").is_err());
        let err = resolve("/definitely/not/here.gguf")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("not found") && err.contains("synthetic"),
            "{err}"
        );
    }
}
