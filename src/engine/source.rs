//! Where a model comes from: a local path, a file in the models directory, the Hugging Face Hub,
//! or the built-in synthetic model.

use super::error::{EngineError, Result};
use std::path::{Path, PathBuf};

/// The model labtui opens when none is named.
pub const DEFAULT_MODEL: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf";
/// Where the default model lives on the Hub.
pub const DEFAULT_HUB: &str =
    "hf:Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf";

const HOW_TO_GET: &str = "pass a path to a .gguf file, put it in the models directory ($LABTUI_MODELS, else ./models), \
use hf:OWNER/REPO/FILE.gguf to download from the Hugging Face Hub, or use `synthetic` for the built-in tiny model";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    Synthetic,
    File(PathBuf),
    Hub { repo: String, file: String },
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
    if spec.starts_with("hf:") {
        let (repo, file) = hub_ref(spec).ok_or_else(|| EngineError::UnknownModel {
            spec: spec.into(),
            hint: "a Hub reference is hf:OWNER/REPO/FILE.gguf".into(),
        })?;
        return Ok(ModelSource::Hub { repo, file });
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

/// Download (or find in the Hub cache) `file` of `repo`, reporting bytes done and total.
pub fn fetch_from_hub(
    repo: &str,
    file: &str,
    progress: impl Fn(u64, u64) + Send + Sync + 'static,
) -> Result<PathBuf> {
    use hf_hub::progress::{DownloadEvent, Progress, ProgressEvent, ProgressHandler};
    struct Report<F>(F);
    impl<F: Fn(u64, u64) + Send + Sync> ProgressHandler for Report<F> {
        fn on_progress(&self, event: &ProgressEvent) {
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
    let (owner, name) = repo
        .split_once('/')
        .ok_or_else(|| EngineError::Hub(format!("{repo} is not OWNER/REPO")))?;
    let client = hf_hub::HFClientSync::new().map_err(|e| EngineError::Hub(e.to_string()))?;
    client
        .model(owner, name)
        .download_file()
        .filename(file)
        .progress(Progress::new(Report(progress)))
        .send()
        .map_err(|e| EngineError::Hub(format!("cannot get {file} from {repo}: {e} ({HOW_TO_GET})")))
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
